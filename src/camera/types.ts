import type { Logger } from 'pino';
import type { BootClock } from './boottime.js';

/** Which camera app drives the sensor. `simulated` is the packaged rpicam-still simulator. */
export type CameraBackend = 'rpicam' | 'libcamera' | 'simulated';
export type CameraBackendSetting = CameraBackend | 'auto';

/** Optional per-capture settings, as accepted by HTTP query parameters and MQTT capture commands. */
export interface CaptureSettings {
  /** Exposure time in microseconds. */
  shutter_us?: number;
  /** Analogue gain (1.0 = ISO 100). */
  gain?: number;
  /** Exposure compensation in stops. */
  ev?: number;
  awb?: 'auto' | 'incandescent' | 'tungsten' | 'fluorescent' | 'indoor' | 'daylight' | 'cloudy';
  denoise?: 'auto' | 'off' | 'cdn_off' | 'cdn_fast' | 'cdn_hq';
  hflip?: boolean;
  vflip?: boolean;
  /** Skip the viewfinder (fast, but AE/AWB have not converged). Defaults to the node's config. */
  immediate?: boolean;
}

/** One camera as reported by `--list-cameras`. */
export interface CameraDescriptor {
  index: number;
  sensor: string;
  width: number;
  height: number;
  bit_depth: number;
  cfa: string;
  id: string;
}

export interface CameraInfo {
  backend: CameraBackend;
  /** The executable that is run (path or name on PATH). */
  command: string;
  simulated: boolean;
  connected: boolean;
  /** Sensor model of the selected camera, e.g. `imx477`; null when none is connected. */
  sensor: string | null;
  cameras: CameraDescriptor[];
  mode: 'cold' | 'warm';
  /** When the connection was last checked (ISO 8601), null before the first check. */
  checked_at: string | null;
  last_error: string | null;
}

export interface CaptureRequest {
  /** Where the app writes: a path in the store's temp dir, without extension (`.jpg`/`.dng` are added). */
  outputBase: string;
  settings: CaptureSettings;
  signal?: AbortSignal;
  /**
   * Trigger at this instant (epoch ms, this machine's clock) rather than at once: everything that
   * can be done beforehand is, then the app is told to capture (warm: SIGUSR1; cold: it is started).
   */
  at?: number;
}

export interface CaptureOutput {
  dngPath: string;
  jpegPath: string | null;
  /** The frame metadata the app wrote with `--metadata` (exposure, gains, lux...), when available. */
  metadata: Record<string, unknown> | null;
  /** When the app was asked to capture (epoch ms, fractional) and when its files were complete. */
  triggeredAt: number;
  completedAt: number;
  /**
   * When the frame's exposure started (epoch ms, fractional): its SensorTimestamp (CLOCK_BOOTTIME)
   * converted at capture time; null when the app wrote no metadata with one.
   */
  exposureStartedAt: number | null;
}

export interface Camera {
  /** Resolves the backend and runs the first connection check. */
  start(): Promise<void>;
  /** Kills any running camera process (SIGTERM, then SIGKILL after a grace period). */
  stop(): Promise<void>;
  /** Runs `--list-cameras` again and updates `info()`. */
  probe(): Promise<CameraInfo>;
  info(): CameraInfo;
  /**
   * One capture into `<outputBase>.dng` (+ `.jpg`, the preview, + `.json` metadata). On
   * success the files stay for the caller to commit or discard; on any failure all three are removed.
   * The caller serialises calls (see CaptureQueue); a probe in progress is waited for.
   * Throws NodeError: camera_unavailable (the app says there is no camera), camera_timeout (killed
   * after captureTimeoutMs), camera_failed (anything else, with the app's error), shutting_down
   * (stop() was called); when `signal` aborts, its reason if that is a NodeError, else camera_failed.
   */
  capture(request: CaptureRequest): Promise<CaptureOutput>;
  /** Expected DNG size in bytes for the connected sensor, used to make room before a capture. */
  expectedDngBytes(): number;
  /** Called whenever info() changes in a way a client cares about (connected, sensor, mode, error). */
  onChange(listener: (info: CameraInfo) => void): () => void;
}

export interface CameraOptions {
  backend: CameraBackendSetting;
  /** Kill a capture that runs longer than this. */
  captureTimeoutMs: number;
  /** Default for CaptureSettings.immediate. */
  immediate: boolean;
  /** Index of the camera to use (`--camera N`). */
  cameraIndex: number;
  /** Re-run the connection check this often while idle (0 = only at start and after failures). */
  probeIntervalMs: number;
  /**
   * An explicit camera app executable (absolute path), for installs where it is not on PATH. Replaces
   * the PATH search for `auto`/`rpicam`/`libcamera`; ignored (with a warning) for `simulated`.
   */
  command?: string;
  /** Grace between SIGTERM and SIGKILL when a camera process is killed (default 2000 ms). */
  killGraceMs?: number;
  /** Where the board's model is read (`auto` never falls back to the simulator on a Raspberry Pi). */
  deviceModelPath?: string;
  /** PATH to search for the camera app; defaults to process.env.PATH. */
  searchPath?: string;
  /** Converts the frames' SensorTimestamp (CLOCK_BOOTTIME) to the wall clock; tests inject one. */
  bootClock?: BootClock;
  /**
   * Extra environment for the camera process, on top of process.env (the simulator's knobs in tests).
   * Read at every run, so a test may change it between captures.
   */
  env?: Record<string, string>;
  logger: Logger;
}
