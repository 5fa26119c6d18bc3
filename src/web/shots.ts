import { open, readdir, readFile, realpath, type FileHandle } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { shotFolder } from '../client/receiver.js';
import type { ShotReport } from '../client/shot.js';
import { NodeError } from '../errors.js';

/** One folder level of DIR: a shot id, a node id or a file name. No dot first, so never `..` nor a hidden file. */
const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
/** The newest reports the page lists. */
const MAX_SHOTS = 50;

/** A report as the page gets it: `shot.json` (schemas/shot.schema.json) and the folder under DIR its files are in. */
export type ShotView = ShotReport & { folder: string };

export const shotView = (report: ShotReport, folder = shotFolder(report.shot_id)): ShotView => ({ ...report, folder });

async function readReport(dir: string, folder: string): Promise<ShotView | null> {
  try {
    const report = JSON.parse(await readFile(join(dir, folder, 'shot.json'), 'utf8')) as Partial<ShotReport> | null;
    // Read leniently (the page copes with a field missing), but only what is a report at all.
    if (typeof report?.shot_id === 'string' && Array.isArray(report.nodes)) return shotView(report as ShotReport, folder);
  } catch {
    // Missing or not (yet) readable: a shot still being written is listed once its report is complete.
  }
  return null;
}

/** The reports under DIR (`DIR/<shot id>/shot.json`), newest first. */
export async function listShots(outDir: string): Promise<ShotView[]> {
  let entries: string[];
  try {
    entries = (await readdir(outDir, { withFileTypes: true })).filter((e) => e.isDirectory() && SEGMENT.test(e.name)).map((e) => e.name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const reports = (await Promise.all(entries.map((name) => readReport(outDir, name)))).filter((r): r is ShotView => r !== null);
  return reports.sort((a, b) => String(b.created_at ?? '').localeCompare(String(a.created_at ?? ''))).slice(0, MAX_SHOTS);
}

/**
 * Opens `DIR/<shot>/<node>/<file>` for download. Each part must be one plain segment and the result
 * must still lie under DIR: nothing else on the operator's machine can be reached through it.
 */
export async function openShotFile(outDir: string, parts: string[]): Promise<{ handle: FileHandle; size: number; filename: string }> {
  if (parts.length !== 3 || !parts.every((part) => SEGMENT.test(part))) throw new NodeError('invalid_filename', 'not a file of a shot');
  let handle: FileHandle;
  try {
    // Through the real paths: a symbolic link inside DIR must not lead out of it either.
    const root = await realpath(outDir);
    const path = await realpath(resolve(root, ...parts));
    if (!path.startsWith(root + sep)) throw new NodeError('not_found', `no such file: ${parts.join('/')}`);
    handle = await open(path, 'r');
  } catch (err) {
    if (err instanceof NodeError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NodeError('not_found', `no such file: ${parts.join('/')}`);
    throw err;
  }
  const stats = await handle.stat();
  if (!stats.isFile()) {
    await handle.close();
    throw new NodeError('not_found', `no such file: ${parts.join('/')}`);
  }
  return { handle, size: stats.size, filename: parts[2] ?? '' };
}
