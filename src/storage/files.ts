import { link, lstat, open, rename, unlink } from 'node:fs/promises';

/** The errno code of a failed fs call, if it has one. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}

/** Flushes a file's data and metadata to the device, so a rename of it cannot outlive its content. */
export async function syncFile(path: string): Promise<{ size: number; mtime: Date }> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
    const stats = await handle.stat();
    return { size: stats.size, mtime: stats.mtime };
  } finally {
    await handle.close();
  }
}

/** Makes a rename/link/unlink in `dir` durable: without it a power cut can undo the entry. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch (err) {
    // Some file systems (and non-Linux platforms) refuse fsync on a directory; nothing more we can do.
    if (errnoCode(err) !== 'EINVAL' && errnoCode(err) !== 'EISDIR' && errnoCode(err) !== 'EPERM') throw err;
  } finally {
    await handle.close();
  }
}

/** Hard links are missing on FAT/exFAT (a USB stick as capture dir); there, check-then-rename. */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

/**
 * Moves `from` to `to` (same file system) unless `to` exists; false when it does. rename() would
 * silently replace a file dropped into the folder under that name, so the move is a link (atomic,
 * fails with EEXIST) followed by an unlink of the source. A crash between the two leaves a complete
 * file under `to` and a leftover in the temp dir, which start() removes.
 */
export async function moveNoClobber(from: string, to: string): Promise<boolean> {
  try {
    await link(from, to);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'EEXIST') return false;
    if (code === undefined || !NO_HARD_LINKS.has(code)) throw err;
    // Not atomic, but only this store writes final names, so nothing of ours can slip in between.
    if (await exists(to)) return false;
    await rename(from, to);
    return true;
  }
  // The image is committed at this point. A leftover source is only a second name for the same
  // inode (no extra space) and lives in the temp dir, which the caller's discard() and start() empty.
  await unlink(from).catch(() => undefined);
  return true;
}

export async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return false;
    throw err;
  }
}

/** Replaces `path` with `content` so that a reader (or a restart) sees the old or the new file, never a mix. */
export async function writeFileAtomic(path: string, tempPath: string, dir: string, content: string): Promise<void> {
  const handle = await open(tempPath, 'w');
  try {
    await handle.writeFile(content, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tempPath, path);
  await syncDir(dir);
}
