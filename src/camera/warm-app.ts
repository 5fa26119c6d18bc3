import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import type { Logger } from 'pino';
import { MAX_OUTPUT_PATH_BYTES, outputFormat, previewArgs, settingArgs, type CapturePaths, type RawMode } from './args.js';
import { describeAppFailure, stderrTail } from './app-output.js';
import type { AppInvocation } from './backend.js';
import type { CaptureSettings } from './types.js';

/**
 * One long-running camera app in signal mode (`-t 0 --signal`): the camera is opened once, a
 * viewfinder runs, and each SIGUSR1 makes it save the next frame (JPEG, then DNG, then the metadata
 * file). Frame n of generation g is `w<g>-<n, 6 digits>.jpg/.dng` in the warm dir; the metadata file
 * has one fixed name that the app rewrites after every capture.
 */

/** SIGUSR1 is signal 10: bit 9 of the `SigCgt` mask in /proc/<pid>/status. */
const SIGUSR1_MASK = 1n << 9n;

/**
 * What the app prints once its camera is open and its signal handler installed: libcamera logs the
 * stream configuration right after (rpicam-still installs the handler between opening the camera and
 * configuring the viewfinder), and the simulator imitates that line.
 */
export const READY_LINE = /configuring streams/i;

/** How often readiness is polled while the app starts. */
const READY_POLL_MS = 10;

/** Where /proc cannot tell (not Linux), the app is taken as ready after this long. */
const READY_FALLBACK_MS = 3000;

/** Lines of stderr kept for error messages: the app's error is its last line. */
const STDERR_LINES = 40;

export interface WarmExit {
  exitCode: number | undefined;
  signal: string | undefined;
  stderr: string;
}

export interface WarmAppOptions {
  invocation: AppInvocation;
  /** Absolute folder the app writes into. */
  dir: string;
  generation: number;
  settings: CaptureSettings;
  cameraIndex: number;
  /** The sensor's full-resolution mode, for a small preview JPEG (previewArgs). */
  rawMode: RawMode | null;
  /** Zero shutter lag (`--zsl`): every stream configured at once, a capture takes the next frame. */
  zsl: boolean;
  env: Record<string, string> | undefined;
  killGraceMs: number;
  logger: Logger;
}

export interface WarmApp {
  readonly pid: number | undefined;
  readonly generation: number;
  /** The settings as command-line options: a capture asking for other settings needs a new app. */
  readonly settingsKey: string;
  /** Whether this app writes a metadata file after each frame: unknown (null) until its first capture. */
  writesMetadata: boolean | null;
  /** Resolves once the app catches SIGUSR1; rejects with its exit when it dies first. */
  readonly ready: Promise<void>;
  /** Resolves (never rejects) when the process is gone. */
  readonly exited: Promise<WarmExit>;
  alive(): boolean;
  /** Sends SIGUSR1 and returns the paths of the frame it will write. */
  trigger(): CapturePaths;
  /** The frame the next trigger writes. */
  nextFrame(): number;
  stderr(): string;
  /**
   * SIGUSR2 (the app's clean exit), then SIGTERM, then SIGKILL, each after the kill grace. An app
   * that is stuck cannot act on SIGUSR2 (the app reads signals between frames): `stuck` skips it.
   */
  stop(options?: { stuck?: boolean }): Promise<WarmExit>;
}

export const settingsKey = (settings: CaptureSettings): string => settingArgs(settings).join(' ');

const framePrefix = (generation: number): string => `w${generation}-`;

export function framePaths(dir: string, generation: number, frame: number): CapturePaths {
  const base = join(dir, `${framePrefix(generation)}${String(frame).padStart(6, '0')}`);
  return { jpegPath: `${base}.jpg`, dngPath: `${base}.dng`, metadataPath: join(dir, `${framePrefix(generation)}meta.json`) };
}

/** Whether a warm dir is short enough for the app's 128-byte file name buffer, even with a 10-digit counter. */
export function warmDirFits(dir: string, generation = 999_999): boolean {
  return Buffer.byteLength(`${join(dir, `${framePrefix(generation)}0000000000`)}.dng`) <= MAX_OUTPUT_PATH_BYTES;
}

export interface WarmArgsInput {
  settings: CaptureSettings;
  cameraIndex: number;
  rawMode: RawMode | null;
  zsl: boolean;
}

export function warmAppArgs(dir: string, generation: number, input: WarmArgsInput): string[] {
  const { settings, cameraIndex } = input;
  if (!Number.isSafeInteger(cameraIndex) || cameraIndex < 0) throw new TypeError('cameraIndex: not a non-negative integer');
  const { metadataPath } = framePaths(dir, generation, 0);
  return [
    '-n',
    '-t',
    '0',
    '--signal',
    ...(input.zsl ? ['--zsl'] : []),
    '-r',
    '-o',
    `${outputFormat(join(dir, framePrefix(generation)))}%06d.jpg`,
    ...previewArgs(input.rawMode),
    '--metadata',
    metadataPath,
    '--camera',
    String(cameraIndex),
    ...settingArgs(settings),
  ];
}

/** Whether the process has a SIGUSR1 handler installed; null where /proc cannot say. */
async function catchesSigusr1(pid: number): Promise<boolean | null> {
  let status: string;
  try {
    status = await readFile(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const match = /^SigCgt:\s*([0-9a-f]+)/im.exec(status);
  return match?.[1] ? (BigInt(`0x${match[1]}`) & SIGUSR1_MASK) !== 0n : null;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export function startWarmApp(options: WarmAppOptions): WarmApp {
  const { invocation, dir, generation, logger } = options;
  const args = warmAppArgs(dir, generation, options);
  logger.debug({ file: invocation.file, args }, 'warm camera app starting');
  const child: ResultPromise = execa(invocation.file, [...invocation.prefixArgs, ...args], {
    reject: false,
    buffer: false,
    stdin: 'ignore',
    stdout: 'ignore',
    stderr: 'pipe',
    env: options.env ?? {},
  });
  const lines: string[] = [];
  let partial = '';
  let sawReadyLine = false;
  let wakeReady: (() => void) | null = null;
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    const parts = (partial + chunk).split(/\r?\n/);
    partial = parts.pop() ?? '';
    if (partial.length > 4096) partial = partial.slice(-4096);
    for (const line of parts) {
      if (line.trim() === '') continue;
      if (!sawReadyLine && READY_LINE.test(line)) {
        sawReadyLine = true;
        wakeReady?.();
      }
      lines.push(line.length > 1000 ? `${line.slice(0, 999)}…` : line);
      if (lines.length > STDERR_LINES) lines.shift();
      logger.trace({ line }, 'warm camera app');
    }
  });
  const stderr = (): string => stderrTail([...lines, partial].filter((line) => line !== '').join('\n'));

  let gone = false;
  const exited: Promise<WarmExit> = child.then(
    (result) => ({ exitCode: result.exitCode, signal: result.signal, stderr: stderr() }),
    (err: unknown) => ({
      exitCode: undefined,
      signal: undefined,
      stderr: `${stderr()}\n${err instanceof Error ? err.message : String(err)}`.trim(),
    }),
  );
  void exited.then(() => {
    gone = true;
  });

  // The real app installs its SIGUSR1 handler once the camera is open: the kernel's signal mask says
  // when. Not so the simulator: Node catches SIGUSR1 from its first instant (to open the inspector), so
  // the mask says nothing and a signal sent early would open a debugger port instead of capturing;
  // for it only the ready line counts.
  const useSignalMask = !invocation.simulated;
  const ready = (async () => {
    const started = Date.now();
    for (;;) {
      if (gone) {
        const exit = await exited;
        throw new Error(`the camera app exited before it was ready: ${describeAppFailure(exit)}`);
      }
      if (sawReadyLine) return;
      const pid = child.pid;
      if (useSignalMask && pid !== undefined) {
        const catches = await catchesSigusr1(pid);
        if (catches === true || (catches === null && Date.now() - started >= READY_FALLBACK_MS)) {
          if (!gone) return;
          continue;
        }
      }
      await Promise.race([
        sleep(READY_POLL_MS),
        exited,
        new Promise<void>((resolve) => {
          wakeReady = resolve;
        }),
      ]);
      wakeReady = null;
    }
  })();
  // The caller may never wait for readiness (an app replaced before it was used).
  ready.catch(() => undefined);

  let frame = 0;
  let stopping: Promise<WarmExit> | null = null;

  return {
    pid: child.pid,
    generation,
    settingsKey: settingsKey(options.settings),
    writesMetadata: null,
    ready,
    exited,
    alive: () => !gone,
    nextFrame: () => frame,
    trigger() {
      const paths = framePaths(dir, generation, frame);
      frame += 1;
      child.kill('SIGUSR1');
      return paths;
    },
    stderr,
    stop(stopOptions = {}) {
      stopping ??= (async () => {
        const signals = stopOptions.stuck ? (['SIGTERM', 'SIGKILL'] as const) : (['SIGUSR2', 'SIGTERM', 'SIGKILL'] as const);
        for (const signal of signals) {
          if (gone) break;
          child.kill(signal);
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, options.killGraceMs)))]);
          clearTimeout(timer);
        }
        return exited;
      })();
      return stopping;
    },
  };
}
