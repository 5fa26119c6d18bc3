import { blackLevel } from './pattern.js';
import type { StillSettings } from './settings.js';

/**
 * What the simulated control algorithms settle on for a frame: exposure and gain (manual values
 * win, auto exposure fills the rest and follows `--ev`), colour gains from the AWB mode, and the
 * frame metadata rpicam-still writes with `--metadata` (libcamera control names).
 */

/** The exposure × gain auto exposure aims for in the simulated scene (a bright room). */
const AUTO_EXPOSURE_US = 10_000;
const MAX_GAIN = 16;
const MAX_AUTO_EXPOSURE_US = 66_666;

const AWB: Readonly<Record<string, { gains: [number, number]; kelvin: number }>> = {
  auto: { gains: [1.9, 1.6], kelvin: 4800 },
  normal: { gains: [1.9, 1.6], kelvin: 4800 },
  incandescent: { gains: [1.3, 2.5], kelvin: 2800 },
  tungsten: { gains: [1.45, 2.3], kelvin: 3200 },
  fluorescent: { gains: [1.7, 2.0], kelvin: 4000 },
  indoor: { gains: [1.6, 2.1], kelvin: 3600 },
  daylight: { gains: [2.1, 1.5], kelvin: 5500 },
  cloudy: { gains: [2.3, 1.4], kelvin: 6500 },
  custom: { gains: [1.9, 1.6], kelvin: 4800 },
};

export interface FrameExposure {
  exposureUs: number;
  analogueGain: number;
  /** Image brightness relative to what auto exposure gives at ev 0. */
  brightness: number;
  colourGains: [number, number];
  colourTemperature: number;
}

export function frameExposure(settings: StillSettings): FrameExposure {
  const target = AUTO_EXPOSURE_US * 2 ** settings.ev;
  let exposureUs = settings.shutterUs;
  let gain = settings.gain;
  if (exposureUs === undefined && gain === undefined) {
    exposureUs = Math.min(target, MAX_AUTO_EXPOSURE_US);
    gain = Math.min(MAX_GAIN, Math.max(1, target / exposureUs));
  } else if (exposureUs === undefined) {
    const g = Math.min(MAX_GAIN, Math.max(1, gain ?? 1));
    exposureUs = Math.min(MAX_AUTO_EXPOSURE_US, target / g);
  } else if (gain === undefined) {
    gain = Math.min(MAX_GAIN, Math.max(1, target / exposureUs));
  }
  const analogueGain = Math.min(MAX_GAIN, Math.max(1, gain ?? 1));
  const awb = AWB[settings.awb] ?? AWB['auto'] ?? { gains: [1.9, 1.6], kelvin: 4800 };
  return {
    exposureUs: Math.max(1, Math.round(exposureUs)),
    analogueGain,
    brightness: (exposureUs * analogueGain) / AUTO_EXPOSURE_US,
    colourGains: settings.awbGains ?? awb.gains,
    colourTemperature: awb.kelvin,
  };
}

export interface MetadataInput {
  /** The frame's first-row exposure start, CLOCK_BOOTTIME ns (libcamera's SensorTimestamp). */
  sensorTimestampNs: bigint;
  exposure: FrameExposure;
  bits: number;
  crop: readonly [number, number, number, number];
  frameDurationUs: number;
  sensorTemperature: number | null;
  seed: number;
}

export function frameMetadata(input: MetadataInput): Record<string, unknown> {
  const { exposure } = input;
  // Lux: the scene light that needs this exposure, about 400 lx (a bright room) at 10 ms × 1.0.
  const lux = Math.round(((400 * AUTO_EXPOSURE_US) / (exposure.exposureUs * exposure.analogueGain)) * 1000) / 1000;
  const black16 = blackLevel(input.bits) * 2 ** (16 - input.bits);
  const metadata: Record<string, unknown> = {
    SensorTimestamp: Number(input.sensorTimestampNs),
    ScalerCrop: [...input.crop],
    DigitalGain: 1.0,
    ColourGains: exposure.colourGains,
    SensorBlackLevels: [black16, black16, black16, black16],
    AeLocked: false,
    Lux: lux,
    FrameDuration: Math.round(input.frameDurationUs),
    ColourCorrectionMatrix: [1.7, -0.5, -0.2, -0.3, 1.6, -0.3, 0.0, -0.6, 1.6],
    AnalogueGain: exposure.analogueGain,
    ColourTemperature: exposure.colourTemperature,
    ExposureTime: exposure.exposureUs,
    FocusFoM: 400 + (input.seed % 200),
  };
  if (input.sensorTemperature !== null) metadata['SensorTemperature'] = input.sensorTemperature;
  return metadata;
}

/** `--metadata-format txt`: one `Name=value` line per control. */
export function metadataText(metadata: Record<string, unknown>): string {
  return `${Object.entries(metadata)
    .map(([key, value]) => `${key}=${Array.isArray(value) ? value.join(',') : String(value)}`)
    .join('\n')}\n`;
}

/** The app's JSON layout: four-space indentation. */
export const metadataJson = (metadata: Record<string, unknown>): string => `${JSON.stringify(metadata, null, 4)}\n`;
