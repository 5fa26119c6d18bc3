import { type FileHandle, open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { LogEntry } from './types.js';

/** Read size when walking a file backwards: a few hundred log lines per read. */
export const TAIL_BLOCK_BYTES = 64 * 1024;
/**
 * A "line" longer than this is not one pino wrote (it is corruption or a foreign file); it is skipped
 * without being buffered, so a file with no newlines cannot make tail() read and hold all of it.
 */
export const MAX_LINE_BYTES = 1024 * 1024;

const NEWLINE = 0x0a;

/**
 * The log files of `<dir>/<name>`, newest first. the rotating file (rotate.ts) names them `<name>.<n>.log` and writes to the
 * highest n, so the order comes from the numbers rather than from mtimes (which ties within a second).
 * A missing folder means no logs yet.
 */
export async function listLogFiles(dir: string, name: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const prefix = `${name}.`;
  const numbered: Array<{ file: string; n: number }> = [];
  for (const file of names) {
    if (!file.startsWith(prefix) || !file.endsWith('.log')) continue;
    const digits = file.slice(prefix.length, -'.log'.length);
    if (/^\d+$/.test(digits)) numbered.push({ file, n: Number(digits) });
  }
  return numbered.sort((a, b) => b.n - a.n).map(({ file }) => join(dir, file));
}

/** A complete JSON object line, or null for anything else (partial writes, blank lines, foreign text). */
export function parseLogLine(line: Buffer): LogEntry | null {
  if (line.length === 0) return null;
  try {
    const value: unknown = JSON.parse(line.toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as LogEntry) : null;
  } catch {
    return null;
  }
}

/**
 * Up to `wanted` entries from the end of one file, newest first. Reads backwards in fixed blocks and
 * stops as soon as it has enough, so the cost follows `wanted`, not the file's size. A file that
 * vanishes (rotated away meanwhile) yields nothing.
 */
export async function readLastEntries(file: string, wanted: number, blockBytes = TAIL_BLOCK_BYTES): Promise<LogEntry[]> {
  const entries: LogEntry[] = [];
  if (wanted <= 0) return entries;
  let handle: FileHandle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return entries;
    throw err;
  }
  try {
    let position = (await handle.stat()).size;
    // Bytes before the first newline seen so far: the end of a line whose start lies further back.
    let pending: Buffer = Buffer.alloc(0);
    // True while skipping an over-long line until its start (the previous newline) is found.
    let skipping = false;
    while (position > 0 && entries.length < wanted) {
      const length = Math.min(blockBytes, position);
      position -= length;
      const block = Buffer.allocUnsafe(length);
      const { bytesRead } = await handle.read(block, 0, length, position);
      const data = skipping ? block.subarray(0, bytesRead) : Buffer.concat([block.subarray(0, bytesRead), pending]);
      let end = data.length;
      let newline = end > 0 ? data.lastIndexOf(NEWLINE, end - 1) : -1;
      while (newline >= 0 && entries.length < wanted) {
        if (skipping) skipping = false;
        else pushEntry(entries, data.subarray(newline + 1, end));
        end = newline;
        newline = end > 0 ? data.lastIndexOf(NEWLINE, end - 1) : -1;
      }
      if (entries.length >= wanted) break;
      pending = skipping ? Buffer.alloc(0) : Buffer.from(data.subarray(0, end));
      if (pending.length > MAX_LINE_BYTES) {
        pending = Buffer.alloc(0);
        skipping = true;
      }
    }
    // The file's first line has no newline before it.
    if (position === 0 && !skipping && entries.length < wanted) pushEntry(entries, pending);
  } finally {
    await handle.close();
  }
  return entries;
}

function pushEntry(entries: LogEntry[], line: Buffer): void {
  const entry = parseLogLine(line);
  if (entry) entries.push(entry);
}

/** The last `lines` entries across the current file and the rotated ones before it, oldest first. */
export async function tailLogs(dir: string, name: string, lines: number): Promise<LogEntry[]> {
  const newestFirst: LogEntry[] = [];
  for (const file of await listLogFiles(dir, name)) {
    if (newestFirst.length >= lines) break;
    newestFirst.push(...(await readLastEntries(file, lines - newestFirst.length)));
  }
  return newestFirst.reverse();
}
