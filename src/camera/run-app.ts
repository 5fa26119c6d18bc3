import { execa, type Result } from 'execa';
import type { AppInvocation } from './backend.js';
import { listCamerasArgs } from './args.js';
import { describeAppFailure, MAX_APP_OUTPUT_BYTES } from './app-output.js';
import { parseListCameras, saysNoCameras } from './list-cameras.js';
import type { CameraDescriptor } from './types.js';

/** Grace between SIGTERM and SIGKILL when a camera process has to go. */
export const DEFAULT_KILL_GRACE_MS = 2000;

/** `--list-cameras` opens every camera once; on a healthy Pi it takes well under a second. */
export const PROBE_TIMEOUT_MS = 10_000;

export interface RunAppOptions {
  timeoutMs: number;
  /** Aborting it kills the app (SIGTERM, then SIGKILL after the grace). */
  signal: AbortSignal;
  env: Record<string, string> | undefined;
  killGraceMs: number;
}

const RUN_OPTIONS = {
  reject: false,
  stdin: 'ignore',
  encoding: 'utf8',
  stripFinalNewline: true,
  maxBuffer: MAX_APP_OUTPUT_BYTES,
  killSignal: 'SIGTERM',
} as const;

export type AppResult = Result<
  typeof RUN_OPTIONS & { timeout: number; cancelSignal: AbortSignal; forceKillAfterDelay: number; env: Record<string, string> }
>;

/**
 * Runs the camera app once and resolves when the process is gone, whatever happened (never rejects:
 * the caller reads `timedOut`, `isCanceled`, `exitCode`, ... from the result). Argument array only, no
 * shell; stdin closed; stdout/stderr kept but bounded. execa extends process.env with `env`.
 */
export function runApp(invocation: AppInvocation, args: readonly string[], options: RunAppOptions): Promise<AppResult> {
  return execa(invocation.file, [...invocation.prefixArgs, ...args], {
    ...RUN_OPTIONS,
    timeout: options.timeoutMs,
    cancelSignal: options.signal,
    forceKillAfterDelay: options.killGraceMs,
    env: options.env ?? {},
  });
}

/** A spawn failure (ENOENT, EACCES...) has an errno code and no exit code. */
export function spawnFailure(result: AppResult): string | null {
  if (result.exitCode !== undefined || result.signal !== undefined || !result.failed) return null;
  const code = result.code;
  return code ? `could not run the camera app (${code})` : null;
}

export type ProbeOutcome = { kind: 'cameras'; cameras: CameraDescriptor[] } | { kind: 'failed'; error: string } | { kind: 'canceled' };

/**
 * Runs `--list-cameras` and reads the answer. The app exits 0 with or without cameras, so stdout
 * decides; the exit status only matters when stdout says nothing we recognise.
 */
export async function listCameras(invocation: AppInvocation, options: RunAppOptions): Promise<ProbeOutcome> {
  const result = await runApp(invocation, listCamerasArgs(), options);
  if (result.isCanceled) return { kind: 'canceled' };
  if (result.timedOut) return { kind: 'failed', error: `camera check exceeded ${options.timeoutMs} ms; killed` };
  const spawnError = spawnFailure(result);
  if (spawnError !== null) return { kind: 'failed', error: spawnError };
  const cameras = parseListCameras(result.stdout);
  if (cameras.length > 0 || saysNoCameras(result.stdout)) return { kind: 'cameras', cameras };
  if (result.exitCode === 0) return { kind: 'failed', error: 'camera check: unrecognised --list-cameras output' };
  return { kind: 'failed', error: `camera check failed: ${describeAppFailure(result)}` };
}
