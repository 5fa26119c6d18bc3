import { type Options, parseDuration, UsageError } from './args.js';

/** What a run of rpicam-still was asked to do, from its command line. */
export interface StillSettings {
  help: boolean;
  version: boolean;
  listCameras: boolean;
  verbose: number;
  output: string | undefined;
  raw: boolean;
  encoding: Encoding;
  quality: number;
  thumb: { width: number; height: number; quality: number } | null;
  timeoutMs: number;
  immediate: boolean;
  zsl: boolean;
  width: number | undefined;
  height: number | undefined;
  mode: { width: number; height: number; bits: number } | undefined;
  shutterUs: number | undefined;
  gain: number | undefined;
  ev: number;
  awb: string;
  awbGains: [number, number] | undefined;
  denoise: string;
  hflip: boolean;
  vflip: boolean;
  camera: number;
  signal: boolean;
  keypress: boolean;
  timelapseMs: number | undefined;
  datetime: boolean;
  timestamp: boolean;
  latest: string | undefined;
  metadata: string | undefined;
  metadataFormat: 'json' | 'txt';
  framestart: number;
}

export const ENCODINGS = ['jpg', 'png', 'bmp', 'rgb24', 'rgb48', 'yuv420'] as const;
export type Encoding = (typeof ENCODINGS)[number];

const AWB_MODES = ['auto', 'normal', 'incandescent', 'tungsten', 'fluorescent', 'indoor', 'daylight', 'cloudy', 'custom'];
const DENOISE_MODES = ['auto', 'off', 'cdn_off', 'cdn_fast', 'cdn_hq'];
const METERING_MODES = ['centre', 'spot', 'average', 'matrix', 'custom'];
const EXPOSURE_MODES = ['normal', 'sport', 'short', 'long', 'custom'];

function oneOf(value: string, allowed: readonly string[], what: string): string {
  if (!allowed.includes(value)) throw new UsageError(`Invalid ${what}: ${value}`);
  return value;
}

function parseThumb(value: string): StillSettings['thumb'] {
  if (value === 'none') return null;
  const parts = value.split(':').map((part) => (/^\d+$/.test(part) ? Number(part) : Number.NaN));
  const [width, height, quality] = parts;
  if (parts.length !== 3 || width === undefined || height === undefined || quality === undefined || parts.some(Number.isNaN)) {
    throw new UsageError('Invalid thumbnail parameters');
  }
  if (width < 1 || height < 1 || width > 1024 || height > 1024 || quality < 1 || quality > 100)
    throw new UsageError('Invalid thumbnail parameters');
  return { width, height, quality };
}

function parseMode(value: string): StillSettings['mode'] {
  const [w, h, bits = '12'] = value.split(':');
  const width = Number(w);
  const height = Number(h);
  const depth = Number(bits);
  if (![width, height, depth].every((n) => Number.isSafeInteger(n) && n > 0)) throw new UsageError(`Invalid mode string: ${value}`);
  return { width, height, bits: depth };
}

function parseAwbGains(value: string): [number, number] {
  const [r, b] = value.split(',').map(Number);
  if (r === undefined || b === undefined || !(r > 0) || !(b > 0)) throw new UsageError(`Invalid awbgains: ${value}`);
  return [r, b];
}

export function stillSettings(options: Options): StillSettings {
  const timeout = options.string('timeout');
  const shutter = options.string('shutter');
  const timelapse = options.string('timelapse');
  const thumb = options.string('thumb');
  const mode = options.string('mode');
  const awbGains = options.string('awbgains');
  const rotation = options.integer('rotation') ?? 0;
  if (rotation !== 0 && rotation !== 180) throw new UsageError('Unsupported rotation value');
  if (options.has('metering')) oneOf(options.string('metering') ?? '', METERING_MODES, 'metering mode');
  if (options.has('exposure')) oneOf(options.string('exposure') ?? '', EXPOSURE_MODES, 'exposure mode');
  const settings: StillSettings = {
    help: options.flag('help'),
    version: options.flag('version'),
    listCameras: options.flag('list-cameras'),
    verbose: options.integer('verbose', 0) ?? 1,
    output: options.string('output'),
    raw: options.flag('raw'),
    encoding: oneOf(options.string('encoding') ?? 'jpg', ENCODINGS, 'encoding format') as Encoding,
    quality: options.number('quality', (n) => Number.isInteger(n) && n >= 1 && n <= 100) ?? 93,
    thumb: thumb === undefined ? { width: 320, height: 240, quality: 70 } : parseThumb(thumb),
    timeoutMs: timeout === undefined ? 5000 : parseDuration(timeout, 'timeout', 'ms'),
    immediate: options.flag('immediate'),
    zsl: options.flag('zsl'),
    width: options.integer('width', 0) || undefined,
    height: options.integer('height', 0) || undefined,
    mode: mode === undefined ? undefined : parseMode(mode),
    shutterUs: shutter === undefined ? undefined : parseDuration(shutter, 'shutter', 'us') * 1000 || undefined,
    gain:
      (options.number('gain', (n) => Number.isFinite(n) && n >= 0) ?? options.number('analoggain', (n) => Number.isFinite(n) && n >= 0)) ||
      undefined,
    ev: options.number('ev', (n) => Number.isFinite(n) && n >= -10 && n <= 10) ?? 0,
    awb: oneOf(options.string('awb') ?? 'auto', AWB_MODES, 'AWB mode'),
    awbGains: awbGains === undefined ? undefined : parseAwbGains(awbGains),
    denoise: oneOf(options.string('denoise') ?? 'auto', DENOISE_MODES, 'denoise mode'),
    hflip: options.flag('hflip') !== (rotation === 180),
    vflip: options.flag('vflip') !== (rotation === 180),
    camera: options.integer('camera', 0) ?? 0,
    signal: options.flag('signal'),
    keypress: options.flag('keypress'),
    timelapseMs: timelapse === undefined ? undefined : parseDuration(timelapse, 'timelapse', 'ms'),
    datetime: options.flag('datetime'),
    timestamp: options.flag('timestamp'),
    latest: options.string('latest'),
    metadata: options.string('metadata'),
    metadataFormat: oneOf(options.string('metadata-format') ?? 'json', ['json', 'txt'], 'metadata format') as 'json' | 'txt',
    framestart: options.integer('framestart', 0) ?? 0,
  };
  if ((settings.signal || settings.keypress) && settings.timelapseMs !== undefined) {
    throw new UsageError('keypress/signal and timelapse options are mutually exclusive');
  }
  return settings;
}
