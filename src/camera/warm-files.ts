import { watch, type FSWatcher } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { CapturePaths } from './args.js';
import { checkDng } from './warm-dng.js';

/**
 * The warm app's folder: its frames appear here and are moved to the caller's output paths once
 * complete. It holds a pid file so that an app left running by a crashed daemon (it never exits on
 * its own with `-t 0`, and it holds the camera) is found and ended at the next start.
 */
const PID_FILE = 'app.pid';

/** Polling interval while a frame is written, as a backstop to the directory watch. */
const POLL_MS = 25;

/**
 * How long to wait for the metadata file after the DNG is complete. rpicam-still writes it right
 * after closing the DNG, so it normally appears at once; an app that writes none costs this once.
 */
export const METADATA_GRACE_MS = 250;

/**
 * Without a metadata file to prove the DNG closed, the DNG must look the same again this much later:
 * briefly when its structure shows the app's last write (colour), longer when it cannot (mono: the
 * EXIF IFD and IFD0's rewrite may still come).
 */
const CONFIRM_MS = 5;
const SETTLE_MS = 250;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function pidMentioning(pid: number, text: string): Promise<boolean> {
  try {
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').some((arg) => arg.includes(text));
  } catch {
    return false;
  }
}

function signalPid(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Ends an app a previous run left behind (only if that pid's command line still names this warm
 * dir: a pid may have been reused), then empties the folder.
 */
export async function prepareWarmDir(dir: string, graceMs: number, logger: Logger): Promise<void> {
  let stale: number | null = null;
  try {
    const pid = Number((await readFile(join(dir, PID_FILE), 'utf8')).trim());
    if (Number.isSafeInteger(pid) && pid > 1 && pid !== process.pid && (await pidMentioning(pid, dir))) stale = pid;
  } catch {
    // no pid file: nothing was left running
  }
  if (stale !== null) {
    logger.warn({ pid: stale }, 'ending a warm camera app left running by an earlier run');
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      if (!signalPid(stale, signal)) break;
      const deadline = Date.now() + graceMs;
      while (Date.now() < deadline && (await pidMentioning(stale, dir))) await sleep(20);
      if (!(await pidMentioning(stale, dir))) break;
    }
  }
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
}

export async function writePidFile(dir: string, pid: number | undefined): Promise<void> {
  if (pid === undefined) return;
  const path = join(dir, PID_FILE);
  await writeFile(`${path}.partial`, `${pid}\n`);
  await rename(`${path}.partial`, path);
}

export async function removePidFile(dir: string): Promise<void> {
  await rm(join(dir, PID_FILE), { force: true });
}

/** Removes every frame and metadata file except the pid file: leftovers of abandoned captures. */
export async function sweepFrames(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  await Promise.all(names.filter((name) => name !== PID_FILE).map((name) => rm(join(dir, name), { force: true })));
}

export type FrameOutcome =
  | { kind: 'done'; dngBytes: number; final: boolean }
  | { kind: 'exited' }
  | { kind: 'timeout' }
  | { kind: 'aborted' };

/** Changes in the warm dir, as wake-ups. Set up before the trigger, so nothing but the signal happens at the instant. */
export interface DirWatch {
  /** Resolves at the next change in the folder, or after `ms`. */
  next(ms: number): Promise<void>;
  close(): void;
}

export function watchDir(dir: string): DirWatch {
  let wake: (() => void) | null = null;
  // A change that came while nobody waited: the next wait returns at once.
  let changed = false;
  let watcher: FSWatcher | null = null;
  try {
    watcher = watch(dir, { persistent: false }, () => {
      if (wake) wake();
      else changed = true;
    });
    watcher.on('error', () => undefined);
  } catch {
    // No watch on this file system: polling alone then.
    watcher = null;
  }
  return {
    next(ms) {
      if (changed) {
        changed = false;
        return Promise.resolve();
      }
      return new Promise<void>((resolve) => {
        const timer = setTimeout(done, ms);
        function done(): void {
          clearTimeout(timer);
          wake = null;
          resolve();
        }
        wake = done;
      });
    },
    close() {
      wake?.();
      watcher?.close();
    },
  };
}

export interface AwaitFrameOptions {
  watch: DirWatch;
  dngPath: string;
  deadline: number;
  signal: AbortSignal;
  /** Resolves when the app is gone. */
  exited: Promise<unknown>;
  alive: () => boolean;
}

/**
 * Waits until the frame's DNG is complete by its TIFF structure, woken by changes in the folder
 * (with polling as a backstop: a watch can miss events on some file systems).
 */
export async function awaitFrame(options: AwaitFrameOptions): Promise<FrameOutcome> {
  let stopWaiting: (() => void) | null = null;
  const onAbort = (): void => stopWaiting?.();
  options.signal.addEventListener('abort', onAbort);
  try {
    for (;;) {
      if (options.signal.aborted) return { kind: 'aborted' };
      const check = await checkDng(options.dngPath);
      if (check.complete) return { kind: 'done', dngBytes: check.size, final: check.final };
      if (!options.alive()) {
        // The app may have finished the file just before it exited: look once more.
        const last = await checkDng(options.dngPath);
        return last.complete ? { kind: 'done', dngBytes: last.size, final: last.final } : { kind: 'exited' };
      }
      const left = options.deadline - Date.now();
      if (left <= 0) return { kind: 'timeout' };
      await Promise.race([
        options.watch.next(Math.min(POLL_MS, left)),
        options.exited,
        new Promise<void>((resolve) => {
          stopWaiting = resolve;
        }),
      ]);
      stopWaiting = null;
    }
  } finally {
    options.signal.removeEventListener('abort', onAbort);
  }
}

async function readJsonObject(path: string): Promise<Record<string, unknown> | null> {
  try {
    const parsed: unknown = JSON.parse(await readFile(path, 'utf8'));
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** The metadata the app wrote after the frame, waiting up to `graceMs` for it; null if none came. */
export async function collectMetadata(path: string, graceMs: number): Promise<Record<string, unknown> | null> {
  const deadline = Date.now() + graceMs;
  for (;;) {
    const metadata = await readJsonObject(path);
    if (metadata !== null || Date.now() >= deadline) return metadata;
    await sleep(5);
  }
}

/** A second look at a DNG judged complete, for apps that write no metadata after it. */
export async function confirmDng(path: string, bytes: number, final: boolean): Promise<boolean> {
  await sleep(final ? CONFIRM_MS : SETTLE_MS);
  const again = await checkDng(path);
  return again.complete && again.size === bytes;
}

async function move(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    await copyFile(from, to);
    await rm(from, { force: true });
  }
}

/** Moves a finished frame to the caller's paths; the JPEG only if the app wrote one. */
export async function moveFrame(
  frame: CapturePaths,
  to: CapturePaths,
  metadata: Record<string, unknown> | null,
): Promise<{ jpeg: boolean }> {
  await move(frame.dngPath, to.dngPath);
  let jpeg = true;
  try {
    await move(frame.jpegPath, to.jpegPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    jpeg = false;
  }
  if (metadata !== null) await writeFile(to.metadataPath, JSON.stringify(metadata));
  await rm(frame.metadataPath, { force: true });
  return { jpeg };
}
