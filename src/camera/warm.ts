import { resolve } from 'node:path';
import { NodeError } from '../errors.js';
import { describeAppFailure, isNoCameraError, lastErrorLine, stderrTail } from './app-output.js';
import { CameraAppMissingError, resolveBackend, type AppInvocation } from './backend.js';
import { createBootClock } from './boottime.js';
import { backendOptions, createCamera, linkedController } from './camera.js';
import { DEFAULT_KILL_GRACE_MS } from './run-app.js';
import type { Camera, CameraInfo, CameraOptions, CaptureOutput, CaptureRequest, CaptureSettings } from './types.js';
import { settingsKey, startWarmApp, warmDirFits, type WarmApp, type WarmExit } from './warm-app.js';
import { prepareWarmDir, removePidFile, writePidFile } from './warm-files.js';
import { takeFrame } from './warm-frame.js';
import { createSerialRunner } from './serial.js';

export interface WarmCameraOptions extends CameraOptions {
  /** Folder for the warm app's frames: on the same file system as the capture outputs (frames are renamed). */
  warmDir: string;
  /** Unexpected exits of the app tolerated within `restartWindowMs` before falling back to cold captures. */
  maxRestarts?: number;
  restartWindowMs?: number;
  /** After a fallback, try the warm app again this long later (0 = never). */
  retryWarmAfterMs?: number;
  /** Backoff before restart n is n × this (default 500 ms). */
  restartDelayMs?: number;
  /** Run the app with `--zsl` (zero shutter lag): more CMA memory, a capture takes the next frame. */
  zsl?: boolean;
}

/**
 * Three restarts in a minute: a camera app that dies more often than that is not going to settle
 * (no camera, camera busy, a broken install), and each attempt costs a camera start.
 */
const DEFAULT_MAX_RESTARTS = 3;
const DEFAULT_RESTART_WINDOW_MS = 60_000;
/** Ten minutes: long enough not to thrash, short enough that a transient fault does not cost a day. */
const DEFAULT_RETRY_WARM_MS = 10 * 60_000;
/** Backoff before restart n is n × this. */
const DEFAULT_RESTART_DELAY_MS = 500;

type Mode = CameraInfo['mode'];

/**
 * The warm camera: one camera app kept running in signal mode, one SIGUSR1 per capture, so the
 * camera start (1–3 s on a Pi) is paid once instead of per capture. Each frame is taken when its
 * DNG is structurally complete (warm-dng.ts) and moved to the caller's paths: the same contract as
 * the cold camera. The app is restarted when it exits; when it cannot be kept running the camera
 * falls back to cold captures (logged, `mode` becomes `cold`) and tries warm again later.
 *
 * The app runs with fixed settings; a capture asking for other settings restarts it with those.
 */
export function createWarmCamera(options: WarmCameraOptions): Camera {
  const logger = options.logger.child({ part: 'camera', camera_mode: 'warm' });
  const killGraceMs = options.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
  const maxRestarts = options.maxRestarts ?? DEFAULT_MAX_RESTARTS;
  const restartWindowMs = options.restartWindowMs ?? DEFAULT_RESTART_WINDOW_MS;
  const retryWarmAfterMs = options.retryWarmAfterMs ?? DEFAULT_RETRY_WARM_MS;
  const restartDelayMs = options.restartDelayMs ?? DEFAULT_RESTART_DELAY_MS;
  const dir = resolve(options.warmDir);
  const boot = options.bootClock ?? createBootClock();
  // Probes, size estimates and the fallback: the cold camera over the same app.
  const cold = createCamera({ ...options, probeIntervalMs: 0 });
  const lifetime = new AbortController();
  const listeners = new Set<(info: CameraInfo) => void>();
  const handledExits = new WeakSet<WarmApp>();
  let invocation: AppInvocation | null = null;
  let active: Mode = 'warm';
  let warmError: string | null = null;
  let app: WarmApp | null = null;
  let appSettings: CaptureSettings = {};
  let generation = 0;
  let failures: number[] = [];
  let restartTimer: NodeJS.Timeout | null = null;
  let retryTimer: NodeJS.Timeout | null = null;
  let probeTimer: NodeJS.Timeout | null = null;
  let started: Promise<void> | null = null;
  const runs = createSerialRunner();
  let lastShown = '';
  // Apps on their way out. The camera is one device: nothing new may open it until they are gone.
  let retiring: Promise<void> = Promise.resolve();

  function endApp(which: WarmApp, stuck = false): void {
    // Resolves to nothing: a chain that kept each exit (and its stderr) would grow with every restart.
    retiring = Promise.all([retiring, which.stop({ stuck })]).then(() => undefined);
  }

  function info(): CameraInfo {
    const base = cold.info();
    return { ...base, mode: active, last_error: warmError ?? base.last_error };
  }

  function notify(): void {
    const current = info();
    const shown = JSON.stringify([current.connected, current.sensor, current.mode, current.last_error, current.backend]);
    if (shown === lastShown) return;
    lastShown = shown;
    for (const listener of listeners) {
      try {
        listener(info());
      } catch (err) {
        logger.error({ err }, 'camera change listener failed');
      }
    }
  }

  function setWarmError(message: string | null): void {
    warmError = message;
    notify();
  }

  function launch(settings: CaptureSettings): WarmApp {
    if (!invocation) throw new NodeError('camera_unavailable', 'camera app unavailable');
    generation += 1;
    appSettings = settings;
    const next = startWarmApp({
      invocation,
      dir,
      generation,
      settings,
      cameraIndex: options.cameraIndex,
      rawMode: cold.rawMode(),
      zsl: options.zsl ?? false,
      env: options.env,
      killGraceMs,
      logger,
    });
    app = next;
    writePidFile(dir, next.pid).catch((err: unknown) => logger.warn({ err }, 'cannot write the warm camera pid file'));
    void next.exited.then((exit) => handleExit(next, exit));
    return next;
  }

  /** Waits until `which` catches SIGUSR1; a start that hangs is killed (and counts as a failure). */
  async function becomeReady(which: WarmApp, signal: AbortSignal): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new NodeError('camera_timeout', `the warm camera app was not ready within ${options.captureTimeoutMs} ms`)),
        options.captureTimeoutMs,
      );
    });
    // Removed again whatever the outcome: `signal` is often the camera's lifetime, which outlives
    // every app, so a listener left on it per start would pile up with each restart.
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal.reason);
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
    aborted.catch(() => undefined);
    try {
      await Promise.race([which.ready, timeout, aborted]);
    } catch (err) {
      if (err instanceof NodeError && err.code === 'camera_timeout') retire(which, err.message);
      else if (!which.alive()) handleExit(which, await which.exited);
      throw err;
    } finally {
      clearTimeout(timer);
      if (onAbort) signal.removeEventListener('abort', onAbort);
    }
  }

  function handleExit(which: WarmApp, exit: WarmExit): void {
    if (handledExits.has(which)) return;
    handledExits.add(which);
    if (which !== app) return; // replaced, retired or stopped on purpose
    app = null;
    if (lifetime.signal.aborted || active === 'cold') return;
    logger.warn({ exit_code: exit.exitCode, signal: exit.signal, stderr: stderrTail(exit.stderr) }, 'warm camera app exited');
    recordFailure(`warm camera app exited: ${describeAppFailure(exit)}`);
  }

  /** Takes a misbehaving app out of service at once (the next capture starts another) and ends it. */
  function retire(which: WarmApp, reason: string): void {
    handledExits.add(which);
    if (which === app) app = null;
    endApp(which, true);
    if (!lifetime.signal.aborted && active === 'warm') recordFailure(reason);
  }

  /** One more failure in the window: restart after a backoff, or fall back when there were too many. */
  function recordFailure(reason: string): void {
    const now = Date.now();
    failures = failures.filter((at) => now - at < restartWindowMs);
    failures.push(now);
    setWarmError(reason);
    if (failures.length > maxRestarts) {
      fallBack(`the warm camera app failed ${failures.length} times within ${restartWindowMs / 1000} s (last: ${reason})`);
      return;
    }
    scheduleRestart(restartDelayMs * failures.length);
  }

  function scheduleRestart(delayMs: number): void {
    if (restartTimer) clearTimeout(restartTimer);
    restartTimer = setTimeout(() => {
      restartTimer = null;
      runs
        .run(async () => {
          await retiring;
          if (app || active === 'cold' || lifetime.signal.aborted) return;
          const next = launch(appSettings);
          await becomeReady(next, lifetime.signal);
          logger.info({ pid: next.pid }, 'warm camera app restarted');
        })
        .catch(() => undefined); // a failed restart is handled by handleExit
    }, delayMs);
  }

  function fallBack(reason: string, retry = true): void {
    if (active === 'cold') return;
    active = 'cold';
    if (restartTimer) clearTimeout(restartTimer);
    restartTimer = null;
    const old = app;
    app = null;
    if (old) endApp(old);
    logger.error({ reason, retry_in_s: retryWarmAfterMs / 1000 }, 'the warm camera cannot be kept running; falling back to cold captures');
    setWarmError(`warm camera unavailable, using cold captures: ${reason}`);
    if (retry) armRetry();
  }

  /** The camera app, or null when it is missing (a Raspberry Pi without rpicam-apps: the node runs degraded). */
  async function findApp(): Promise<AppInvocation | null> {
    try {
      return await resolveBackend(options.backend, backendOptions(options, logger));
    } catch (err) {
      if (err instanceof CameraAppMissingError) return null;
      throw err;
    }
  }

  function armRetry(): void {
    if (retryWarmAfterMs <= 0 || lifetime.signal.aborted) return;
    retryTimer = setTimeout(() => {
      retryTimer = null;
      runs
        .run(async () => {
          if (active === 'warm' || lifetime.signal.aborted) return;
          invocation ??= await findApp();
          if (!invocation) {
            armRetry();
            return;
          }
          await retiring;
          const next = launch(appSettings);
          try {
            await becomeReady(next, lifetime.signal);
          } catch (err) {
            if (app === next) app = null;
            await next.stop();
            logger.warn({ err }, 'the warm camera app still cannot start; staying with cold captures');
            armRetry();
            return;
          }
          failures = [];
          active = 'warm';
          logger.info({ pid: next.pid }, 'warm camera app running again; back to warm captures');
          setWarmError(null);
        })
        .catch((err: unknown) => logger.error({ err }, 'warm camera retry failed'));
    }, retryWarmAfterMs);
    retryTimer.unref();
  }

  function appFailure(which: WarmApp, what: string): NodeError {
    const message = lastErrorLine(which.stderr());
    if (isNoCameraError(message)) return new NodeError('camera_unavailable', 'no camera connected (camera app: no cameras available)');
    return new NodeError('camera_failed', `${what}${message ? `: ${message}` : ''}`);
  }

  function abortError(signal: AbortSignal): NodeError {
    if (lifetime.signal.aborted) return new NodeError('shutting_down', 'capture aborted: the camera is stopping');
    const reason: unknown = signal.reason;
    return reason instanceof NodeError ? reason : new NodeError('camera_failed', 'capture aborted');
  }

  /** The running app with `settings`, started (or restarted with them) when needed. */
  async function appFor(settings: CaptureSettings, signal: AbortSignal): Promise<WarmApp> {
    const key = settingsKey(settings);
    let current = app;
    if (current && current.settingsKey !== key) {
      logger.info({ settings }, 'restarting the warm camera app with new settings');
      app = null;
      await current.stop();
      current = null;
    }
    if (!current) {
      if (restartTimer) clearTimeout(restartTimer);
      restartTimer = null;
      await retiring;
      current = launch(settings);
    }
    await becomeReady(current, signal);
    return current;
  }

  async function coldCapture(request: CaptureRequest): Promise<CaptureOutput> {
    await retiring;
    return cold.capture(request);
  }

  async function warmCapture(request: CaptureRequest, signal: AbortSignal, retried = false): Promise<CaptureOutput> {
    if (signal.aborted) throw abortError(signal);
    let current: WarmApp;
    try {
      current = await appFor(request.settings, signal);
    } catch (err) {
      if (signal.aborted) throw abortError(signal);
      // The app failed to start often enough to fall back: this capture goes cold.
      if (active === 'cold') return coldCapture(request);
      if (err instanceof NodeError && err.code === 'camera_timeout') throw err;
      const failed = app ?? null;
      throw failed
        ? appFailure(failed, 'the warm camera app failed to start')
        : new NodeError('camera_failed', `the warm camera app failed to start: ${err instanceof Error ? err.message : String(err)}`);
    }
    const result = await takeFrame({ app: current, dir, request, signal, timeoutMs: options.captureTimeoutMs, logger, boot });
    switch (result.kind) {
      case 'done':
        failures = [];
        if (warmError !== null) setWarmError(null);
        return result.output;
      case 'aborted':
        throw abortError(signal);
      case 'timeout':
        logger.error({ timeout_ms: options.captureTimeoutMs, stderr: current.stderr() }, 'warm capture timed out; restarting the app');
        retire(current, `warm capture exceeded ${options.captureTimeoutMs} ms`);
        throw new NodeError('camera_timeout', `capture exceeded ${options.captureTimeoutMs} ms; the warm camera app is restarted`);
      case 'exited': {
        const error = appFailure(current, 'capture failed: the warm camera app exited');
        handleExit(current, await current.exited);
        // It died before the trigger reached it (nothing of the frame was written): no picture was
        // taken, so taking it on a fresh app cannot make two. Once, so a failing app fails fast.
        if (!result.wrote && !retried && active === 'warm') {
          logger.warn('the warm camera app was gone when triggered; taking the capture on a new one');
          return warmCapture(request, signal, true);
        }
        throw error;
      }
    }
  }

  return {
    start() {
      started ??= (async () => {
        if (lifetime.signal.aborted) throw new NodeError('shutting_down', 'the camera is stopped');
        cold.onChange(() => notify());
        await cold.start();
        boot.nowNs(); // calibrates the boot clock now, not during a capture
        invocation = await findApp();
        if (!invocation) {
          fallBack(cold.info().last_error ?? 'no camera app found');
          return;
        }
        if (options.probeIntervalMs > 0) {
          probeTimer = setInterval(() => {
            // The running app is the connection check; probe only when cold (or between apps) and idle.
            if (runs.pending() > 0 || app?.alive()) return;
            runs.run(() => cold.probe()).catch((err: unknown) => logger.error({ err }, 'camera re-check failed'));
          }, options.probeIntervalMs);
          probeTimer.unref();
        }
        if (!warmDirFits(dir)) {
          fallBack(`the warm dir path is too long for the camera app (${dir})`, false);
          return;
        }
        await prepareWarmDir(dir, killGraceMs, logger);
        const first = launch({});
        const startedAt = Date.now();
        try {
          await becomeReady(first, lifetime.signal);
          logger.info({ pid: first.pid, start_ms: Date.now() - startedAt }, 'warm camera app ready');
        } catch (err) {
          logger.warn({ err }, 'the warm camera app did not start; retrying');
        }
        notify();
      })().catch((err: unknown) => {
        started = null;
        throw err;
      });
      return started;
    },

    async stop() {
      for (const timer of [restartTimer, retryTimer]) if (timer) clearTimeout(timer);
      if (probeTimer) clearInterval(probeTimer);
      restartTimer = retryTimer = probeTimer = null;
      if (!lifetime.signal.aborted) lifetime.abort(new NodeError('shutting_down', 'the camera is stopping'));
      await runs.idle();
      const current = app;
      app = null;
      if (current) endApp(current);
      await retiring;
      await cold.stop();
      await removePidFile(dir).catch(() => undefined);
    },

    probe() {
      return runs.run(async () => {
        // While the app runs it holds the camera, and it running is the proof the camera is there.
        if (!app?.alive()) {
          await retiring;
          await cold.probe();
        }
        return info();
      });
    },

    info,

    async capture(request) {
      if (lifetime.signal.aborted) throw new NodeError('shutting_down', 'the camera is stopping');
      const link = linkedController([lifetime.signal, request.signal]);
      try {
        return await runs.run(() => (active === 'cold' ? coldCapture(request) : warmCapture(request, link.signal)));
      } finally {
        link.dispose();
      }
    },

    expectedDngBytes: () => cold.expectedDngBytes(),

    onChange(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
  };
}
