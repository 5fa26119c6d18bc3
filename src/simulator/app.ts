import { createInterface } from 'node:readline';
import { Options, parseArgs } from './args.js';
import { AppError, captureStill, hang, processedSize, sleep, type SimulatedCamera } from './capture.js';
import { firstFrame, nextDelivery, sleepUntil, startStream, type Stream } from './frames.js';
import { failure, readKnobs } from './knobs.js';
import { createLog, type Log } from './log.js';
import { listCamerasText, rawFormat, rawModeFor } from './sensors.js';
import { stillSettings } from './settings.js';
import { HELP_TEXT, VERSION_TEXT } from './texts.js';

/**
 * The simulated rpicam-still: parses the real app's command line, pretends to open the camera
 * (CAMERA_SIM_* knobs set the sensor, the delays and the failures), and writes what the real app
 * writes. Resolves with the exit status; errors end as `ERROR: *** … ***` and status 255.
 */

/** What the app does on SIGUSR1/SIGUSR2 (or Enter / `x` in keypress mode): capture, or quit. */
type Trigger = 'capture' | 'quit';

/**
 * The app's signal handling: the handler only records the last signal (later ones overwrite it), and
 * the app looks at it when the next frame reaches it.
 */
interface Triggers {
  take(): Trigger | null;
  /** Resolves at the next trigger, or after `ms` (a timer keeps the process alive meanwhile). */
  wait(ms: number): Promise<void>;
}

const FAIL_EXIT = 255;
/** How often a failure set through the control file is looked for between captures. */
const CONTROL_POLL_MS = 10;
/** How often to check that the process that started the app is still there. */
const PARENT_CHECK_MS = 500;

/** The longest timer Node arms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

function installTriggers(keypress: boolean): Triggers {
  let pending: Trigger | null = null;
  let wake: (() => void) | null = null;
  const record = (trigger: Trigger): void => {
    pending = trigger;
    wake?.();
  };
  process.removeAllListeners('SIGUSR1');
  process.removeAllListeners('SIGUSR2');
  process.on('SIGUSR1', () => record('capture'));
  process.on('SIGUSR2', () => record('quit'));
  if (keypress) {
    createInterface({ input: process.stdin }).on('line', (line) => {
      record(line.trim().toLowerCase() === 'x' ? 'quit' : 'capture');
    });
  }
  return {
    take() {
      const trigger = pending;
      pending = null;
      return trigger;
    },
    wait(ms) {
      if (pending !== null) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(MAX_TIMER_MS, Math.max(0, ms)));
        function done(): void {
          clearTimeout(timer);
          wake = null;
          resolve();
        }
        wake = done;
      });
    },
  };
}

/**
 * Node opens its inspector on SIGUSR1 unless a handler is installed, whereas the real app dies of a
 * SIGUSR1 that comes before its camera is open. Until then, such a signal ends the run the same way
 * (exit status 128 + 10, as a shell reports a death by SIGUSR1).
 */
function dieOnEarlySignals(log: Log): void {
  for (const signal of ['SIGUSR1', 'SIGUSR2'] as const) {
    process.on(signal, () => {
      log.app(`${signal} before the camera was open: the real app would have died of it`, 0);
      process.exit(signal === 'SIGUSR1' ? 138 : 140);
    });
  }
}

/**
 * The real app keeps running when whatever started it dies; the simulator does not, so a test that
 * kills a daemon with SIGKILL leaves no camera process behind. (The warm camera's pid file handling
 * is tested by starting the app from the test process, which stays.)
 */
function exitWithParent(): void {
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.exit(1);
  }, PARENT_CHECK_MS).unref();
}

async function openCamera(camera: SimulatedCamera): Promise<void> {
  const { knobs, sensor, settings, log } = camera;
  log.libcamera('INFO', 'Camera', 'camera_manager.cpp:327', 'libcamera v0.3.2+rpt20241119 (simulated)');
  await sleep(knobs.startMs / 2);
  if (failure(knobs) === 'no-camera') throw new AppError('no cameras available');
  log.libcamera('INFO', 'RPI', 'vc4.cpp:447', `Registered camera ${sensor.id} to Unicam device /dev/media3 and ISP device /dev/media0`);
  if (settings.camera !== 0) throw new AppError('selected camera is not available');
  await sleep(knobs.startMs / 2);
}

function configuringStreams(camera: SimulatedCamera, still: boolean): void {
  const { sensor, settings } = camera;
  const raw = rawModeFor(sensor, settings);
  const preview = sensor.modes.find((m) => m.crop[2] === sensor.width && m.crop[3] === sensor.height && m.width < sensor.width) ?? raw;
  const mode = still ? raw : preview;
  const size = processedSize(camera);
  const processed = still ? `${size.width}x${size.height}` : `${preview.width}x${preview.height}`;
  camera.log.libcamera(
    'INFO',
    'Camera',
    'camera.cpp:1197',
    `configuring streams: (0) ${processed}-YUV420 (1) ${mode.width}x${mode.height}-${rawFormat(sensor, mode.bits)}`,
  );
}

const stillFps = (camera: SimulatedCamera): number => rawModeFor(camera.sensor, camera.settings).fps;

/**
 * The stream the app runs between captures: the viewfinder, or with `--zsl` the full still
 * configuration (viewfinder, still and raw streams at once), at the still mode's frame rate.
 */
function runningStream(camera: SimulatedCamera): Stream {
  configuringStreams(camera, camera.settings.zsl);
  return startStream(camera.settings.zsl ? stillFps(camera) : camera.sensor.viewfinderFps);
}

/**
 * A still taken while a stream runs, as rpicam_still.cpp takes it on a signal (or when the
 * viewfinder's timeout is up): the app sees the trigger when the next frame reaches it. With
 * `--zsl` it keeps the frame after that one, without stopping anything. Without, it stops the
 * camera, tears down, configures for stills and starts again (startup frames dropped again), takes
 * the first frame, saves it, and then does the same to return to the viewfinder. Returns the
 * stream running afterwards.
 */
async function stillFromStream(camera: SimulatedCamera, stream: Stream, counter: number): Promise<Stream> {
  const seen = nextDelivery(stream, performance.now());
  await sleepUntil(seen);
  if (camera.settings.zsl) {
    await captureStill(camera, counter, { exposedAt: seen, deliveredAt: seen + stream.periodMs });
    return stream;
  }
  await sleep(camera.knobs.reconfigureMs);
  configuringStreams(camera, true);
  await captureStill(camera, counter, firstFrame(startStream(stillFps(camera))));
  await sleep(camera.knobs.reconfigureMs);
  return runningStream(camera);
}

/** Signal / keypress mode: one capture per trigger. */
async function triggeredCaptures(camera: SimulatedCamera, triggers: Triggers): Promise<number> {
  const { settings, knobs } = camera;
  let stream = runningStream(camera);
  let counter = settings.framestart;
  let idleSince = performance.now();
  for (;;) {
    const left = settings.timeoutMs > 0 ? idleSince + settings.timeoutMs - performance.now() : Number.POSITIVE_INFINITY;
    await triggers.wait(knobs.controlPath === undefined ? left : Math.min(left, CONTROL_POLL_MS));
    // Failures that strike between captures: the camera going away, the app dying.
    const fail = knobs.controlPath === undefined ? null : failure(knobs);
    if (fail === 'no-camera') throw new AppError('no cameras available');
    if (fail === 'crash') process.kill(process.pid, 'SIGKILL');
    const trigger = triggers.take();
    if (trigger === 'quit') return 0;
    if (trigger === 'capture') {
      stream = await stillFromStream(camera, stream, counter++);
      if (settings.immediate) return 0;
      idleSince = performance.now();
    } else if (settings.timeoutMs > 0 && performance.now() - idleSince >= settings.timeoutMs) {
      return 0;
    }
  }
}

async function timelapse(camera: SimulatedCamera, intervalMs: number): Promise<number> {
  const started = performance.now();
  let stream = runningStream(camera);
  let counter = camera.settings.framestart;
  for (;;) {
    await sleep(intervalMs);
    if (camera.settings.timeoutMs > 0 && performance.now() - started >= camera.settings.timeoutMs) return 0;
    stream = await stillFromStream(camera, stream, counter++);
  }
}

async function capture(camera: SimulatedCamera): Promise<number> {
  const { settings } = camera;
  const triggers = installTriggers(settings.keypress);
  if (settings.signal || settings.keypress) return triggeredCaptures(camera, triggers);
  if (settings.timelapseMs !== undefined) return timelapse(camera, settings.timelapseMs);
  if (settings.immediate) {
    // Configured for stills from the start: the first frame after the startup frames is the still.
    configuringStreams(camera, true);
    await captureStill(camera, settings.framestart, firstFrame(startStream(stillFps(camera))));
    return 0;
  }
  // The viewfinder runs for the timeout; `-t 0` without a trigger mode runs it for ever.
  const stream = runningStream(camera);
  if (settings.timeoutMs === 0) await hang();
  await sleep(settings.timeoutMs);
  await stillFromStream(camera, stream, settings.framestart);
  return 0;
}

async function listCameras(camera: SimulatedCamera): Promise<number> {
  const { knobs, sensor, log } = camera;
  log.libcamera('INFO', 'Camera', 'camera_manager.cpp:327', 'libcamera v0.3.2+rpt20241119 (simulated)');
  // Enumerating without configuring anything: a fraction of a full start.
  await sleep(knobs.startMs / 4);
  const present = failure(knobs) !== 'no-camera';
  process.stdout.write(listCamerasText(present ? [sensor] : []));
  return 0;
}

export async function run(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  let log = createLog(1);
  dieOnEarlySignals(log);
  exitWithParent();
  try {
    const settings = stillSettings(new Options(parseArgs(argv)));
    log = createLog(settings.verbose);
    if (settings.help) {
      process.stdout.write(HELP_TEXT);
      return 0;
    }
    if (settings.version) {
      process.stdout.write(VERSION_TEXT);
      return 0;
    }
    const knobs = readKnobs(env);
    const camera: SimulatedCamera = { settings, knobs, sensor: knobs.sensor, log };
    if (settings.listCameras) return await listCameras(camera);
    await openCamera(camera);
    return await capture(camera);
  } catch (err) {
    // Like the app's catch-all in main: usage errors, camera errors and unexpected ones alike.
    log.error(err instanceof Error ? err.message : String(err));
    return FAIL_EXIT;
  }
}
