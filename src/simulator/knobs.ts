import { readFileSync } from 'node:fs';
import { type Sensor, SENSORS, sensorNamed } from './sensors.js';

/**
 * The simulator's own settings, from the environment (the camera app's command line stays the real
 * app's). Timings come from a board (CAMERA_SIM_BOARD), each overridable on its own:
 *  - start: libcamera enumerating the sensor, opening and configuring the pipeline;
 *  - reconfigure: stopping the camera, tearing down, configuring other streams and starting again,
 *    which signal mode does twice per still (to the still mode and back to the viewfinder);
 *  - processing: the ISP pass of the still, plus the JPEG encode at a rate per megapixel of the
 *    processed output (single-threaded, and the Zero W has no NEON);
 *  - write rate: the SD card on the board's bus.
 * Frame periods come from the sensor's modes, and every stream start drops STARTUP_FRAMES first.
 * The figures are estimates in line with what is reported for these boards (rpicam-apps#655, picamera2#622), not
 * measurements. The default board is the Zero 2 W, so a node run against the simulator sees the
 * latencies it will see in the field. Setting CAMERA_SIM_START_MS alone scales the board's
 * reconfiguration cost with it (both are camera starts), so `CAMERA_SIM_START_MS=0` is fast.
 */
export interface Board {
  startMs: number;
  reconfigureMs: number;
  ispMs: number;
  encodeMegapixelsPerS: number;
  writeMBps: number;
}

export const BOARDS: Readonly<Record<string, Board>> = {
  'zero-w': { startMs: 2500, reconfigureMs: 400, ispMs: 250, encodeMegapixelsPerS: 3, writeMBps: 12 },
  'zero-2-w': { startMs: 1000, reconfigureMs: 150, ispMs: 100, encodeMegapixelsPerS: 8, writeMBps: 20 },
  'pi-4': { startMs: 450, reconfigureMs: 60, ispMs: 30, encodeMegapixelsPerS: 40, writeMBps: 40 },
};
export const DEFAULT_BOARD = 'zero-2-w';

/**
 * Frames the IPA marks as startup frames at every camera start, which the app drops:
 * max(6 for AGC, 3 for AWB) + 1, in the Raspberry Pi IPA.
 */
export const STARTUP_FRAMES = 7;

export interface Knobs {
  sensor: Sensor;
  board: string;
  startMs: number;
  reconfigureMs: number;
  /** The processing of one still in ms for a processed output of `megapixels`. */
  processMs(megapixels: number): number;
  /** Bytes per millisecond; 0 = as fast as the disk takes it. */
  writeBytesPerMs: number;
  /** Which libtiff's DNG writing to imitate (CAMERA_SIM_LIBTIFF): Debian bookworm has 4.5, trixie 4.7. */
  libtiff: LibtiffVersion;
  /** The failure from CAMERA_SIM_FAIL; see `failure()` for what is in force at a given moment. */
  fail: FailMode | null;
  controlPath: string | undefined;
}

export const LIBTIFF_VERSIONS = ['4.5', '4.7'] as const;
export type LibtiffVersion = (typeof LIBTIFF_VERSIONS)[number];

export const FAIL_MODES = ['no-camera', 'capture-error', 'hang', 'crash', 'slow-write'] as const;
export type FailMode = (typeof FAIL_MODES)[number];

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

function present(env: NodeJS.ProcessEnv, name: string): boolean {
  return (env[name]?.trim() ?? '') !== '';
}

export function readKnobs(env: NodeJS.ProcessEnv): Knobs {
  const sensorName = env['CAMERA_SIM_SENSOR']?.trim() || 'imx477';
  const sensor = sensorNamed(sensorName);
  if (!sensor) throw new KnobError(`CAMERA_SIM_SENSOR: unknown sensor '${sensorName}' (one of ${Object.keys(SENSORS).join(', ')})`);
  const boardName = env['CAMERA_SIM_BOARD']?.trim() || DEFAULT_BOARD;
  const board = Object.hasOwn(BOARDS, boardName) ? BOARDS[boardName] : undefined;
  if (!board) throw new KnobError(`CAMERA_SIM_BOARD: unknown board '${boardName}' (one of ${Object.keys(BOARDS).join(', ')})`);
  const libtiff = env['CAMERA_SIM_LIBTIFF']?.trim() || '4.5';
  if (!(LIBTIFF_VERSIONS as readonly string[]).includes(libtiff))
    throw new KnobError(`CAMERA_SIM_LIBTIFF: unknown version '${libtiff}' (one of ${LIBTIFF_VERSIONS.join(', ')})`);
  const startMs = number(env, 'CAMERA_SIM_START_MS', board.startMs);
  const reconfigureMs = present(env, 'CAMERA_SIM_RECONFIGURE_MS')
    ? number(env, 'CAMERA_SIM_RECONFIGURE_MS', board.reconfigureMs)
    : (board.reconfigureMs * startMs) / board.startMs;
  const fixedProcessMs = present(env, 'CAMERA_SIM_CAPTURE_MS') ? number(env, 'CAMERA_SIM_CAPTURE_MS', 0) : null;
  return {
    sensor,
    board: boardName,
    startMs,
    reconfigureMs,
    processMs: (megapixels) => fixedProcessMs ?? board.ispMs + (megapixels / board.encodeMegapixelsPerS) * 1000,
    writeBytesPerMs: (number(env, 'CAMERA_SIM_WRITE_MBPS', board.writeMBps) * 1_000_000) / 1000,
    libtiff: libtiff as LibtiffVersion,
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
