import { readFile, rm, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { NodeError } from '../errors.js';
import { preciseNow, waitUntil } from '../schedule/clock.js';
import { capturePaths, coldCaptureArgs, MAX_OUTPUT_PATH_BYTES, outputFormat, type CapturePaths, type RawMode } from './args.js';
import { describeAppFailure, isNoCameraError, lastErrorLine, stderrTail } from './app-output.js';
import { CameraAppMissingError, resolveBackend, type AppInvocation, type ResolveBackendOptions } from './backend.js';
import { DEFAULT_KILL_GRACE_MS, listCameras, PROBE_TIMEOUT_MS, runApp, spawnFailure, type AppResult } from './run-app.js';
import { createBootClock, sensorTimestampOf } from './boottime.js';
import { createCameraState } from './state.js';
import { createSerialRunner } from './serial.js';
import type { Camera, CameraInfo, CameraOptions, CaptureOutput, CaptureRequest } from './types.js';

async function fileSize(path: string): Promise<number | null> {
  try {
    const info = await stat(path);
    return info.isFile() ? info.size : null;
  } catch {
    return null;
  }
}

/** The `--metadata` JSON, or null when it is missing or not a JSON object (it is a nicety, not the capture). */
async function readMetadata(path: string): Promise<Record<string, unknown> | null> {
  try {
    const parsed: unknown = JSON.parse(await readFile(path, 'utf8'));
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/**
 * An AbortController that follows `sources`, unlinked by `dispose()`. Used instead of AbortSignal.any
 * because combining the camera's long-lived signal per capture leaks on Node 20 (nodejs/node#55351):
 * a daemon capturing every minute for months would keep every combined signal alive.
 */
export function linkedController(sources: ReadonlyArray<AbortSignal | undefined>): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const linked: Array<{ source: AbortSignal; onAbort: () => void }> = [];
  for (const source of sources) {
    if (!source) continue;
    if (source.aborted) {
      controller.abort(source.reason);
      break;
    }
    const onAbort = (): void => controller.abort(source.reason);
    source.addEventListener('abort', onAbort, { once: true });
    linked.push({ source, onAbort });
  }
  return {
    signal: controller.signal,
    dispose: () => {
      for (const { source, onAbort } of linked) source.removeEventListener('abort', onAbort);
    },
  };
}

/** The backend resolution options a camera's options imply. */
export function backendOptions(options: CameraOptions, logger: Logger): ResolveBackendOptions {
  return {
    ...(options.command ? { command: options.command } : {}),
    ...(options.deviceModelPath ? { deviceModelPath: options.deviceModelPath } : {}),
    ...(options.searchPath !== undefined ? { searchPath: options.searchPath } : {}),
    logger,
  };
}

async function removeOutputs(paths: CapturePaths): Promise<void> {
  await Promise.all([paths.jpegPath, paths.dngPath, paths.metadataPath].map((path) => rm(path, { force: true })));
}

/**
 * The cold camera: one `rpicam-still` process per capture, which opens the camera, captures a RAW
 * frame, writes JPEG + DNG + metadata and exits. Slow (the camera is opened every time) but simple and
 * robust: no state survives a failed capture. A warm, signal-mode camera can implement `Camera` beside
 * this file with the same args/backend/run-app/state modules.
 *
 * Only one camera process runs at a time: `--list-cameras` acquires the camera too, so a probe and a
 * capture must not overlap. Captures are serialised by the caller (CaptureQueue); probes and captures
 * are serialised here.
 */
/** The cold camera, which also tells the warm one the sensor mode its probes saw. */
export interface ColdCamera extends Camera {
  /** The selected sensor's full-resolution mode as last probed, null before any probe saw it. */
  rawMode(): RawMode | null;
}

export function createCamera(options: CameraOptions): ColdCamera {
  const logger = options.logger.child({ part: 'camera' });
  const killGraceMs = options.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
  const state = createCameraState({ backend: options.backend, cameraIndex: options.cameraIndex, mode: 'cold', logger });
  // Aborted by stop(): kills whatever camera process is running and refuses new work.
  const lifetime = new AbortController();
  let invocation: Promise<AppInvocation> | null = null;
  let started: Promise<void> | null = null;
  let probing: Promise<CameraInfo> | null = null;
  let probeTimer: NodeJS.Timeout | null = null;
  // The chain of camera-process runs (probes and captures), one after the other.
  const runs = createSerialRunner();
  const boot = options.bootClock ?? createBootClock();

  function backend(): Promise<AppInvocation> {
    invocation ??= resolveBackend(options.backend, backendOptions(options, logger)).then(
      (resolved) => {
        state.setBackend(resolved);
        logger.info({ backend: resolved.backend, command: resolved.command, simulated: resolved.simulated }, 'camera backend resolved');
        return resolved;
      },
      (err: unknown) => {
        invocation = null; // a later start() may find the app installed by then
        throw err;
      },
    );
    return invocation;
  }

  const runOptions = (timeoutMs: number, signal: AbortSignal) => ({ timeoutMs, signal, env: options.env, killGraceMs });

  /** The backend, or null when the camera app is missing (recorded as the camera's error). */
  async function backendOrMissing(): Promise<AppInvocation | null> {
    try {
      return await backend();
    } catch (err) {
      if (!(err instanceof CameraAppMissingError)) throw err;
      if (state.info().last_error !== err.message) logger.error({ err }, 'no camera app: the camera is unavailable');
      state.recordFailure(err.message, true);
      return null;
    }
  }

  async function runProbe(): Promise<CameraInfo> {
    if (lifetime.signal.aborted) return state.info();
    const app = await backendOrMissing();
    if (!app) return state.info();
    const outcome = await listCameras(app, runOptions(PROBE_TIMEOUT_MS, lifetime.signal));
    state.applyProbe(outcome);
    if (outcome.kind === 'failed') logger.warn({ error: outcome.error }, 'camera check failed');
    else if (outcome.kind === 'cameras') logger.debug({ cameras: outcome.cameras }, 'camera check');
    return state.info();
  }

  function probe(): Promise<CameraInfo> {
    // One probe at a time: a caller arriving while one is queued or running shares its answer.
    probing ??= runs.run(runProbe).finally(() => {
      probing = null;
    });
    return probing;
  }

  function reprobeSoon(reason: string): void {
    if (lifetime.signal.aborted) return;
    probe().catch((err: unknown) => logger.error({ err, reason }, 'camera re-check failed'));
  }

  /** The NodeError a capture that did not produce a DNG ends with, and whether the camera is gone. */
  function captureFailure(result: AppResult, signal: AbortSignal): { error: NodeError; cameraFault: boolean; disconnected: boolean } {
    if (result.isCanceled) {
      if (lifetime.signal.aborted)
        return {
          error: new NodeError('shutting_down', 'capture aborted: the camera is stopping'),
          cameraFault: false,
          disconnected: false,
        };
      const reason: unknown = signal.reason;
      const error = reason instanceof NodeError ? reason : new NodeError('camera_failed', 'capture aborted');
      return { error, cameraFault: false, disconnected: false };
    }
    if (result.timedOut) {
      return {
        error: new NodeError('camera_timeout', `capture exceeded ${options.captureTimeoutMs} ms; killed`),
        cameraFault: true,
        disconnected: false,
      };
    }
    const spawnError = spawnFailure(result);
    if (spawnError !== null) return { error: new NodeError('camera_failed', spawnError), cameraFault: true, disconnected: false };
    if (result.isMaxBuffer) {
      return {
        error: new NodeError('camera_failed', 'camera app output exceeded its limit; killed'),
        cameraFault: true,
        disconnected: false,
      };
    }
    const message = lastErrorLine(result.stderr);
    if (result.exitCode === 255 && isNoCameraError(message)) {
      return {
        error: new NodeError('camera_unavailable', 'no camera connected (camera app: no cameras available)'),
        cameraFault: true,
        disconnected: true,
      };
    }
    return {
      error: new NodeError('camera_failed', `capture failed: ${describeAppFailure(result)}`),
      cameraFault: true,
      disconnected: false,
    };
  }

  async function runCapture(app: AppInvocation, request: CaptureRequest, signal: AbortSignal): Promise<CaptureOutput> {
    if (lifetime.signal.aborted) throw new NodeError('shutting_down', 'the camera is stopping');
    if (signal.aborted)
      throw signal.reason instanceof NodeError ? signal.reason : new NodeError('camera_failed', 'capture aborted before it started');
    // Absolute, so no path handed to the app can begin with `-`.
    const paths = capturePaths(resolve(request.outputBase));
    if (Buffer.byteLength(outputFormat(paths.jpegPath)) > MAX_OUTPUT_PATH_BYTES) {
      throw new NodeError('camera_failed', `output path too long for the camera app (over ${MAX_OUTPUT_PATH_BYTES} bytes)`, {
        details: { path: paths.jpegPath },
      });
    }
    const args = coldCaptureArgs({
      outputBase: resolve(request.outputBase),
      settings: request.settings,
      immediate: options.immediate,
      cameraIndex: options.cameraIndex,
      rawMode: state.rawMode(),
    });
    if (request.at !== undefined) {
      // A scheduled capture: the app is started at that instant (its own start cost comes after).
      await waitUntil(request.at, signal).catch(() => {
        throw lifetime.signal.aborted
          ? new NodeError('shutting_down', 'capture aborted: the camera is stopping')
          : signal.reason instanceof NodeError
            ? signal.reason
            : new NodeError('camera_failed', 'capture aborted');
      });
    }
    const triggeredAt = preciseNow();
    logger.debug({ file: app.file, args }, 'capture starting');
    const result = await runApp(app, args, runOptions(options.captureTimeoutMs, signal));
    try {
      const dngBytes = result.exitCode === 0 ? await fileSize(paths.dngPath) : null;
      if (result.exitCode !== 0 || dngBytes === null || dngBytes === 0) {
        const failure =
          result.exitCode === 0
            ? {
                error: new NodeError(
                  'camera_failed',
                  `capture failed: the camera app exited 0 but wrote ${dngBytes === 0 ? 'an empty' : 'no'} DNG`,
                ),
                cameraFault: true,
                disconnected: false,
              }
            : captureFailure(result, signal);
        const fields = {
          code: failure.error.code,
          exit_code: result.exitCode,
          signal: result.signal,
          duration_ms: Date.now() - triggeredAt,
          stderr: stderrTail(result.stderr),
        };
        if (failure.cameraFault) {
          logger.error(fields, 'capture failed');
          state.recordFailure(failure.error.message, failure.disconnected);
          if (failure.disconnected) reprobeSoon('no camera');
        } else {
          logger.warn(fields, 'capture aborted');
        }
        throw failure.error;
      }
      const jpegBytes = await fileSize(paths.jpegPath);
      const metadata = await readMetadata(paths.metadataPath);
      const sensorTimestamp = sensorTimestampOf(metadata);
      const exposureStartedAt = sensorTimestamp === null ? null : boot.toEpochMs(sensorTimestamp);
      const completedAt = Date.now();
      logger.info(
        { duration_ms: completedAt - triggeredAt, dng_bytes: dngBytes, jpeg_bytes: jpegBytes, metadata: metadata !== null },
        'capture done',
      );
      state.recordSuccess();
      // A DNG proves the camera is there; let a probe fill in which one if the last check said otherwise.
      if (!state.info().connected) reprobeSoon('capture worked while marked disconnected');
      return {
        dngPath: paths.dngPath,
        jpegPath: jpegBytes === null ? null : paths.jpegPath,
        metadata,
        triggeredAt,
        completedAt,
        exposureStartedAt,
      };
    } catch (err) {
      // The app is gone (execa resolved after it exited), so nothing writes these any more.
      await removeOutputs(paths);
      throw err;
    }
  }

  return {
    start() {
      started ??= (async () => {
        if (lifetime.signal.aborted) throw new NodeError('shutting_down', 'the camera is stopped');
        boot.nowNs(); // calibrates the boot clock now, not during a capture
        // A Raspberry Pi without a camera app starts degraded (the probes look for the app again).
        if (await backendOrMissing()) await probe();
        if (options.probeIntervalMs > 0 && !lifetime.signal.aborted) {
          probeTimer = setInterval(() => {
            // Never queue a check behind a capture: the capture itself says whether the camera works.
            if (runs.pending() > 0) return;
            reprobeSoon('periodic');
          }, options.probeIntervalMs);
          probeTimer.unref();
        }
      })().catch((err: unknown) => {
        started = null;
        throw err;
      });
      return started;
    },

    async stop() {
      if (probeTimer) clearInterval(probeTimer);
      probeTimer = null;
      if (!lifetime.signal.aborted) lifetime.abort(new NodeError('shutting_down', 'the camera is stopping'));
      // Wait until every queued or running camera process is gone (the abort kills them).
      await runs.idle();
    },

    probe,

    info: () => state.info(),

    async capture(request) {
      if (lifetime.signal.aborted) throw new NodeError('shutting_down', 'the camera is stopping');
      let app: AppInvocation;
      try {
        app = await backend();
      } catch (err) {
        throw new NodeError('camera_unavailable', err instanceof Error ? err.message : 'camera app unavailable', { cause: err });
      }
      const link = linkedController([lifetime.signal, request.signal]);
      try {
        return await runs.run(() => runCapture(app, request, link.signal));
      } finally {
        link.dispose();
      }
    },

    expectedDngBytes: () => state.expectedDngBytes(),

    rawMode: () => state.rawMode(),

    onChange: (listener) => state.onChange(listener),
  };
}
