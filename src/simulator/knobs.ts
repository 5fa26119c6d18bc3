import { readFileSync } from 'node:fs';
import { type Sensor, SENSORS, sensorNamed } from './sensors.js';

/**
 * The simulator's own settings, from the environment (the camera app's command line stays the real
 * app's). Defaults imitate a Pi Zero 2 W with an HQ camera, the slowest board the node targets, so a
 * node run against the simulator sees the latencies it will see in the field:
 *  - start 1000 ms: libcamera enumerating the sensor, opening and configuring the pipeline takes
 *    about a second on the Zero 2 W's Cortex-A53;
 *  - capture 600 ms: switching to the full-resolution still mode, waiting for its frame (10 fps on
 *    the HQ sensor), the ISP pass and the JPEG encode;
 *  - write 20 MB/s: a good class-10 SD card on the Zero's SDIO bus, so the 24.6 MB DNG takes ~1.2 s.
 * A cold capture then takes ~3 s, as the real app does there.
 */
export interface Knobs {
  sensor: Sensor;
  startMs: number;
  captureMs: number;
  /** Bytes per millisecond; 0 = as fast as the disk takes it. */
  writeBytesPerMs: number;
  /** The failure from CAMERA_SIM_FAIL; see `failure()` for what is in force at a given moment. */
  fail: FailMode | null;
  controlPath: string | undefined;
}

export const FAIL_MODES = ['no-camera', 'capture-error', 'hang', 'crash', 'slow-write'] as const;
export type FailMode = (typeof FAIL_MODES)[number];

export const DEFAULT_START_MS = 1000;
export const DEFAULT_CAPTURE_MS = 600;
export const DEFAULT_WRITE_MBPS = 20;

/** A knob with a bad value: reported like any app error. */
export class KnobError extends Error {
  override name = 'KnobError';
}

function number(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new KnobError(`${name}: not a non-negative number: ${raw}`);
  return value;
}

function failMode(raw: string, source: string): FailMode | null {
  const value = raw.trim();
  if (value === '' || value === 'none') return null;
  if (!(FAIL_MODES as readonly string[]).includes(value))
    throw new KnobError(`${source}: unknown failure '${value}' (one of ${FAIL_MODES.join(', ')})`);
  return value as FailMode;
}

export function readKnobs(env: NodeJS.ProcessEnv): Knobs {
  const sensorName = env['CAMERA_SIM_SENSOR']?.trim() || 'imx477';
  const sensor = sensorNamed(sensorName);
  if (!sensor) throw new KnobError(`CAMERA_SIM_SENSOR: unknown sensor '${sensorName}' (one of ${Object.keys(SENSORS).join(', ')})`);
  return {
    sensor,
    startMs: number(env, 'CAMERA_SIM_START_MS', DEFAULT_START_MS),
    captureMs: number(env, 'CAMERA_SIM_CAPTURE_MS', DEFAULT_CAPTURE_MS),
    writeBytesPerMs: (number(env, 'CAMERA_SIM_WRITE_MBPS', DEFAULT_WRITE_MBPS) * 1_000_000) / 1000,
    fail: failMode(env['CAMERA_SIM_FAIL'] ?? '', 'CAMERA_SIM_FAIL'),
    controlPath: env['CAMERA_SIM_CONTROL']?.trim() || undefined,
  };
}

/**
 * The failure in force now: the control file's content when the file exists (read at every run and
 * every frame, so a test can break or mend a running camera), else CAMERA_SIM_FAIL.
 */
export function failure(knobs: Knobs): FailMode | null {
  if (knobs.controlPath === undefined) return knobs.fail;
  let content: string;
  try {
    content = readFileSync(knobs.controlPath, 'utf8');
  } catch {
    return knobs.fail;
  }
  return failMode(content, 'CAMERA_SIM_CONTROL');
}
