import { createHash } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join, relative } from 'node:path';

/** Polls `read` until it returns something other than null; rejects naming `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, read: () => Promise<T | null> | T | null, timeoutMs = 20_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** `value`, or an error naming `what` when it is missing (a reply, a record, a URL). */
export function defined<T>(value: T | null | undefined, what: string): T {
  if (value === null || value === undefined) throw new Error(`missing: ${what}`);
  return value;
}

export async function sha256Of(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

/** Every entry under `root` (relative path → kind, size, mode, content hash or link target). */
export type TreeSnapshot = Map<string, string>;

/**
 * What is under `root`, deep, except the subtrees in `skip` (relative paths). Compared before and
 * after a run, it proves that nothing there was created, changed, moved or removed.
 */
export async function snapshotTree(root: string, skip: readonly string[] = []): Promise<TreeSnapshot> {
  const snapshot: TreeSnapshot = new Map();
  async function walk(dir: string): Promise<void> {
    let found: Dirent[];
    try {
      found = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of found) {
      const path = join(dir, entry.name);
      const name = relative(root, path);
      if (skip.includes(name)) {
        snapshot.set(name, 'skipped');
        continue;
      }
      const stats = await lstat(path);
      const mode = (stats.mode & 0o7777).toString(8);
      if (stats.isSymbolicLink()) snapshot.set(name, `link ${await readlink(path)}`);
      else if (stats.isDirectory()) {
        snapshot.set(name, `dir ${mode}`);
        await walk(path);
      } else if (stats.isFile()) snapshot.set(name, `file ${mode} ${stats.size} ${await sha256Of(path)}`);
      else snapshot.set(name, `other ${mode}`);
    }
  }
  await walk(root);
  return snapshot;
}

/** Human-readable differences between two snapshots (empty when equal). */
export function diffTrees(before: TreeSnapshot, after: TreeSnapshot): string[] {
  const changes: string[] = [];
  for (const [name, was] of before) {
    const now = after.get(name);
    if (now === undefined) changes.push(`removed ${name}`);
    else if (now !== was) changes.push(`changed ${name}: ${was} -> ${now}`);
  }
  for (const name of after.keys()) if (!before.has(name)) changes.push(`created ${name}`);
  return changes;
}

/** Image files in a capture dir (what the node would list), name → size. */
export async function imagesOnDisk(captureDir: string): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  for (const entry of await readdir(captureDir, { withFileTypes: true })) {
    if (entry.isFile() && !entry.name.startsWith('.')) found.set(entry.name, (await lstat(join(captureDir, entry.name))).size);
  }
  return found;
}

/** Entries of a dir, or [] when it does not exist. */
export async function entries(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

/** Pids of live processes whose command line mentions `needle` (e.g. a test's own temp dir). */
export async function processesMentioning(needle: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await entries('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmdline = (await readFile(`/proc/${name}/cmdline`, 'utf8')).replaceAll('\0', ' ');
      const state = (await readFile(`/proc/${name}/stat`, 'utf8')).split(') ')[1]?.[0];
      if (cmdline.includes(needle) && state !== 'Z') pids.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** GET/POST/DELETE a node's HTTP API and read the JSON answer. */
export async function api<T = Record<string, unknown>>(
  baseUrl: string,
  path: string,
  init: { method?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: T; headers: Headers }> {
  const response = await fetch(`${baseUrl}${path}`, { method: init.method ?? 'GET', ...(init.headers ? { headers: init.headers } : {}) });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: kept as text for the assertion message
  }
  return { status: response.status, body: body as T, headers: response.headers };
}

export interface ListedImage {
  filename: string;
  size: number;
  delivered: string[];
}

export async function listImages(baseUrl: string, headers?: Record<string, string>): Promise<ListedImage[]> {
  const { status, body } = await api<ListedImage[]>(baseUrl, '/images', headers ? { headers } : {});
  if (status !== 200) throw new Error(`GET /images answered ${status}`);
  return body;
}

/** `work`, or a rejection naming `what` once `ms` have passed (the timer never outlives the wait). */
export async function within<T>(what: string, work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
