import * as fsPromises from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Manifest } from '../delivery/manifest.js';

/** The file system calls a receiver makes, injectable so a test can see their order. */
export type ReceiverFs = Pick<typeof fsPromises, 'open' | 'rename' | 'rm' | 'mkdir' | 'readdir' | 'readFile' | 'writeFile' | 'stat'>;

export const defaultFs: ReceiverFs = fsPromises;

/**
 * Partial images live under `<outDir>/.partial/<node>/`: `<filename>.part` holds the chunks at their
 * offsets, `<filename>.json` the manifest and which chunks are known to be on disk. Hidden, and
 * outside the folders images are shown in, so a partial file is never listed as an image.
 */
export const PARTIAL_DIR = '.partial';

export interface PartialPaths {
  part: string;
  state: string;
}

export function partialPaths(outDir: string, nodeId: string, filename: string): PartialPaths {
  const dir = join(outDir, PARTIAL_DIR, nodeId);
  return { part: join(dir, `${filename}.part`), state: join(dir, `${filename}.json`) };
}

export interface PartialState {
  manifest: Manifest;
  /** The request the image belongs to (its shot), which a resend's manifest does not carry. */
  request_id: string | null;
  /** Bitmap of the chunks fsynced into the part file, base64. */
  have: string;
}

/** fsyncs a directory, so a rename or a new file in it survives a power cut. */
export async function syncDir(fs: ReceiverFs, dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Writes `data` to `path` so that, after a crash, the path holds either the old or the new content:
 * a temp file beside it, fsynced, renamed over it, and the directory fsynced.
 */
export async function writeFileDurably(fs: ReceiverFs, path: string, data: string): Promise<void> {
  const temp = `${path}.tmp`;
  const handle = await fs.open(temp, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(temp, path);
  await syncDir(fs, dirname(path));
}

/** Every partial image left by an earlier run (a kill -9, a power cut), with its state file's path. */
export async function findPartials(fs: ReceiverFs, outDir: string): Promise<Array<{ nodeId: string; filename: string; state: string }>> {
  const root = join(outDir, PARTIAL_DIR);
  const found: Array<{ nodeId: string; filename: string; state: string }> = [];
  const nodes = await fs.readdir(root).catch(() => [] as string[]);
  for (const nodeId of nodes) {
    const files = await fs.readdir(join(root, nodeId)).catch(() => [] as string[]);
    for (const file of files) {
      if (file.endsWith('.json')) found.push({ nodeId, filename: file.slice(0, -'.json'.length), state: join(root, nodeId, file) });
    }
  }
  return found;
}

/** A chunk bitmap: 0 not here, 1 being written, 2 on disk. */
export type ChunkMap = Uint8Array;

export function encodeHave(map: ChunkMap): string {
  const bits = Buffer.alloc(Math.ceil(map.length / 8));
  for (let i = 0; i < map.length; i += 1) if (map[i] === 2) bits[i >> 3] = (bits[i >> 3] ?? 0) | (1 << (i & 7));
  return bits.toString('base64');
}

export function decodeHave(have: string, chunks: number): ChunkMap {
  const bits = Buffer.from(have, 'base64');
  const map = new Uint8Array(chunks);
  for (let i = 0; i < chunks; i += 1) if ((bits[i >> 3] ?? 0) & (1 << (i & 7))) map[i] = 2;
  return map;
}
