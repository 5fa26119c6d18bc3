import type { CaptureSettings } from './types.js';

/**
 * Viewfinder time before a non-immediate capture, in ms. The app's own default is 5 s, far more than
 * auto exposure and white balance need: they settle within roughly ten to twenty viewfinder frames,
 * which is well under a second even at the Pi Zero's lower viewfinder frame rates. One second keeps
 * that margin and keeps a capture about four seconds shorter than the default.
 * Passed as a plain number: the apps read a bare `-t` value as milliseconds in every version, whereas
 * unit suffixes (`1000ms`) only parse in the newer rpicam-apps.
 */
export const VIEWFINDER_MS = 1000;

/**
 * Without a known sensor mode: the full-resolution JPEG, and its EXIF thumbnail as the preview, so
 * nobody decodes the full JPEG.
 */
export const THUMBNAIL = '320:240:70';

/**
 * The capture's preview is the processed output itself, encoded small: 320 pixels wide (the height
 * follows the sensor's aspect ratio), at this JPEG quality. The app never encodes a full-resolution
 * JPEG (seconds of CPU on a Pi Zero and megabytes of SD writes per capture, for a file nobody kept).
 */
export const PREVIEW_WIDTH = 320;
export const PREVIEW_QUALITY = 80;

/** The sensor's full-resolution raw mode, from `--list-cameras`. */
export interface RawMode {
  width: number;
  height: number;
  bits: number;
}

/**
 * The options that make the processed output a small preview while the DNG stays full size. A
 * small `--width` alone would make the app pick a smaller sensor mode, and the raw stream follows
 * the sensor mode, so `--mode` forces the full-resolution one. Without a known mode (no successful
 * probe yet) the app writes the full-resolution JPEG and its EXIF thumbnail is the preview.
 */
export function previewArgs(mode: RawMode | null): string[] {
  if (!mode || !(mode.width > 0 && mode.height > 0 && mode.bits > 0)) return ['--thumb', THUMBNAIL];
  const height = Math.max(2, Math.round((PREVIEW_WIDTH * mode.height) / mode.width / 2) * 2);
  return [
    '--width',
    String(PREVIEW_WIDTH),
    '--height',
    String(height),
    '--mode',
    `${mode.width}:${mode.height}:${mode.bits}:P`,
    '-q',
    String(PREVIEW_QUALITY),
    '--thumb',
    'none',
  ];
}

/**
 * rpicam-still formats the output name with snprintf into a 128-byte buffer (`generate_filename`),
 * silently cutting anything longer, so the DNG would land at a path we did not ask for.
 */
export const MAX_OUTPUT_PATH_BYTES = 127;

export const AWB_MODES = ['auto', 'incandescent', 'tungsten', 'fluorescent', 'indoor', 'daylight', 'cloudy'] as const;
export const DENOISE_MODES = ['auto', 'off', 'cdn_off', 'cdn_fast', 'cdn_hq'] as const;

/** The files one capture writes, derived from the base the caller gave. */
export interface CapturePaths {
  jpegPath: string;
  dngPath: string;
  metadataPath: string;
}

/** `base` must be absolute (so no path can start with `-` and be read as an option). */
export function capturePaths(base: string): CapturePaths {
  return { jpegPath: `${base}.jpg`, dngPath: `${base}.dng`, metadataPath: `${base}.json` };
}

/**
 * The `-o` value: the app uses it as a printf format (`%d` becomes the frame counter), so a literal
 * `%` has to be doubled. The DNG name is then derived from the formatted name (`.jpg` → `.dng`).
 */
export function outputFormat(jpegPath: string): string {
  return jpegPath.replaceAll('%', '%%');
}

/** Stops a value that is not a finite number reaching the command line (validation belongs at the edges). */
function formatNumber(option: string, value: number): string {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new TypeError(`${option}: not a finite number`);
  return String(value);
}

function fromSet<T extends string>(option: string, value: T, allowed: readonly T[]): T {
  if (!allowed.includes(value)) throw new TypeError(`${option}: not one of ${allowed.join(', ')}`);
  return value;
}

/**
 * The per-capture settings as options. Values are always attached with `=`: boost::program_options
 * may take a separate `-1` for a short option rather than the value of `--ev`, while `--ev=-1` can only
 * mean one thing. Numbers are printed from numbers and enums come from closed sets, so no value can
 * smuggle in an option of its own. Shared by the cold and (later) the warm camera.
 */
export function settingArgs(settings: CaptureSettings): string[] {
  const args: string[] = [];
  if (settings.shutter_us !== undefined) {
    // A bare --shutter value is microseconds in every version (units came later); whole µs only.
    args.push(`--shutter=${formatNumber('shutter_us', Math.round(settings.shutter_us))}`);
  }
  if (settings.gain !== undefined) args.push(`--gain=${formatNumber('gain', settings.gain)}`);
  if (settings.ev !== undefined) args.push(`--ev=${formatNumber('ev', settings.ev)}`);
  if (settings.awb !== undefined) args.push(`--awb=${fromSet('awb', settings.awb, AWB_MODES)}`);
  if (settings.denoise !== undefined) args.push(`--denoise=${fromSet('denoise', settings.denoise, DENOISE_MODES)}`);
  // Both default to false in the app, so false is simply not passed.
  if (settings.hflip === true) args.push('--hflip');
  if (settings.vflip === true) args.push('--vflip');
  return args;
}

export interface ColdCaptureArgsInput {
  /** Absolute path without extension. */
  outputBase: string;
  settings: CaptureSettings;
  /** The node's default for `settings.immediate`. */
  immediate: boolean;
  cameraIndex: number;
  /** The sensor's full-resolution mode, when known: the JPEG is then a small preview (previewArgs). */
  rawMode?: RawMode | null;
}

/**
 * Arguments for one cold capture: open the camera, capture one RAW frame, write JPEG + DNG + metadata,
 * exit. `-n` because the node is headless; `-r` for the DNG; the JPEG is the preview.
 */
export function coldCaptureArgs(input: ColdCaptureArgsInput): string[] {
  const paths = capturePaths(input.outputBase);
  const immediate = input.settings.immediate ?? input.immediate;
  if (!Number.isSafeInteger(input.cameraIndex) || input.cameraIndex < 0) throw new TypeError('cameraIndex: not a non-negative integer');
  return [
    '-n',
    ...(immediate ? ['--immediate'] : ['-t', String(VIEWFINDER_MS)]),
    '-r',
    '-o',
    outputFormat(paths.jpegPath),
    ...previewArgs(input.rawMode ?? null),
    '--metadata',
    paths.metadataPath,
    '--camera',
    String(input.cameraIndex),
    ...settingArgs(input.settings),
  ];
}

/** Arguments for the connection check. */
export function listCamerasArgs(): string[] {
  return ['--list-cameras'];
}
