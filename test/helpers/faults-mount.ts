import { mkdir, mkdtemp, open, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

export const isRoot = (): boolean => process.getuid?.() === 0;

export async function mountTmpfs(dir: string, sizeMb: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  await execa('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m,mode=0755`, 'tmpfs', dir]);
}

export async function remount(dir: string, mode: 'ro' | 'rw'): Promise<void> {
  await execa('mount', ['-o', `remount,${mode}`, dir]);
}

export async function unmount(dir: string): Promise<void> {
  await execa('umount', [dir]).catch(() => execa('umount', ['-l', dir]));
}

/** Why a small tmpfs cannot be mounted (and remounted read-only) here, or null when it can. */
export async function tmpfsProblem(): Promise<string | null> {
  if (!isRoot()) return 'mounting a tmpfs needs root';
  const dir = await mkdtemp(join(tmpdir(), 'camera-node-mount-check-'));
  try {
    await mountTmpfs(dir, 1);
    try {
      await remount(dir, 'ro');
    } finally {
      await unmount(dir);
    }
    return null;
  } catch (err) {
    return `cannot mount a tmpfs here: ${(err as Error).message.split('\n')[0]}`;
  } finally {
    await rmdir(dir).catch(() => undefined);
  }
}

/** Writes zeros into `path` until the file system is full; returns the bytes written. */
export async function fillDisk(path: string): Promise<number> {
  const handle = await open(path, 'w');
  const block = Buffer.alloc(16 * 1024);
  let written = 0;
  try {
    for (;;) {
      const { bytesWritten } = await handle.write(block);
      written += bytesWritten;
      if (bytesWritten < block.length) return written;
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
    return written;
  } finally {
    await handle.close();
  }
}

export const removeFile = (path: string): Promise<void> => rm(path, { force: true });
