import { access, rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { sensorTimestampOf, type BootClock } from './boottime.js';
import { NodeError } from '../errors.js';
import { preciseNow, waitUntil } from '../schedule/clock.js';
import { capturePaths, type CapturePaths } from './args.js';
import type { CaptureOutput, CaptureRequest } from './types.js';
import type { WarmApp } from './warm-app.js';
import {
  awaitFrame,
  collectMetadata,
  confirmDng,
  METADATA_GRACE_MS,
  moveFrame,
  sweepFrames,
  watchDir,
  type FrameOutcome,
} from './warm-files.js';

/**
 * How long after the trigger the warm dir is first looked at. No frame can be ready within a
 * viewfinder frame period; stepping aside meanwhile leaves a machine that fires many nodes at one
 * instant (the fleet benchmark) free to spend it on the triggers.
 */
const FIRST_LOOK_MS = 5;

const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

/** `exited.wrote`: whether the app wrote any of the frame before it died (if not, the trigger never took). */
export type FrameResult =
  | { kind: 'done'; output: CaptureOutput }
  | { kind: 'exited'; wrote: boolean }
  | { kind: 'timeout' }
  | { kind: 'aborted' };

const exists = (path: string): Promise<boolean> =>
  access(path).then(
    () => true,
    () => false,
  );

export interface TakeFrameOptions {
  app: WarmApp;
  dir: string;
  request: CaptureRequest;
  signal: AbortSignal;
  timeoutMs: number;
  logger: Logger;
  boot: BootClock;
}

/**
 * One capture from a ready warm app: everything is prepared before the instant (`request.at`), so
 * that at the instant only SIGUSR1 goes out; then the frame is awaited, checked and moved to the
 * request's paths. What went wrong with the app (it exited, it hung) is the caller's to handle;
 * on any outcome but `done` nothing is left at the request's paths.
 */
export async function takeFrame(options: TakeFrameOptions): Promise<FrameResult> {
  const { app, dir, request, signal } = options;
  const out = capturePaths(resolve(request.outputBase));
  await sweepFrames(dir);
  const watch = watchDir(dir);
  let triggeredAt: number;
  let frame: CapturePaths;
  let outcome: FrameOutcome;
  try {
    if (request.at !== undefined) {
      try {
        await waitUntil(request.at, signal);
      } catch {
        return { kind: 'aborted' };
      }
    }
    triggeredAt = preciseNow();
    frame = app.trigger();
    await sleep(FIRST_LOOK_MS);
    outcome = await awaitFrame({
      watch,
      dngPath: frame.dngPath,
      deadline: Date.now() + options.timeoutMs,
      signal,
      exited: app.exited,
      alive: () => app.alive(),
    });
  } finally {
    watch.close();
  }
  if (outcome.kind === 'exited') return { kind: 'exited', wrote: (await exists(frame.jpegPath)) || (await exists(frame.dngPath)) };
  if (outcome.kind !== 'done') return outcome;
  try {
    const metadata = await collectMetadata(frame.metadataPath, app.writesMetadata === false ? 0 : METADATA_GRACE_MS);
    // The metadata file is written after the DNG is closed; without one, look at the DNG once more.
    if (metadata === null && !(await confirmDng(frame.dngPath, outcome.dngBytes, outcome.final))) {
      throw new NodeError('camera_failed', 'capture failed: the DNG changed after it looked complete');
    }
    app.writesMetadata = metadata !== null;
    const sensorTimestamp = sensorTimestampOf(metadata);
    const exposureStartedAt = sensorTimestamp === null ? null : options.boot.toEpochMs(sensorTimestamp);
    const { jpeg } = await moveFrame(frame, out, metadata);
    const completedAt = preciseNow();
    options.logger.info(
      { duration_ms: Math.round(completedAt - triggeredAt), dng_bytes: outcome.dngBytes, jpeg, metadata: metadata !== null },
      'capture done',
    );
    return {
      kind: 'done',
      output: { dngPath: out.dngPath, jpegPath: jpeg ? out.jpegPath : null, metadata, triggeredAt, completedAt, exposureStartedAt },
    };
  } catch (err) {
    await sweepFrames(dir);
    await Promise.all([out.dngPath, out.jpegPath, out.metadataPath].map((path) => rm(path, { force: true })));
    throw err;
  }
}
