import { readFileSync } from 'node:fs';
import { preciseNow } from '../schedule/clock.js';

/**
 * CLOCK_BOOTTIME, the clock libcamera stamps each frame's `SensorTimestamp` with, has no Node API.
 * What Node has: CLOCK_MONOTONIC (`process.hrtime`), which differs from CLOCK_BOOTTIME only by the
 * time the system has spent suspended, and /proc/uptime, which is CLOCK_BOOTTIME truncated to 10 ms
 * and, as measured, read from the kernel's coarse clock (its value changes up to a scheduler tick
 * late). So BOOTTIME = MONOTONIC + offset, where the offset is the total suspend time:
 *  - a system that never suspended (a Pi: it cannot) has an offset of exactly 0, and /proc/uptime,
 *    good to a few tens of ms, is enough to tell that the offset is below SNAP_NS, so it is 0;
 *  - one that did gets the offset from the instants /proc/uptime ticks over: each bounds it from
 *    below, the largest bound is within a scheduler tick of the truth.
 * Each conversion reads /proc/uptime once more and recalibrates when it disagrees (a suspend since).
 * Where /proc/uptime cannot be read (not Linux) the offset is 0: MONOTONIC stands in for BOOTTIME.
 */

const NS_PER_MS = 1_000_000n;
const TICK_NS = 10n * NS_PER_MS;
/** Below this the offset is taken as 0: /proc/uptime's own error is 10 ms plus a scheduler tick. */
const SNAP_NS = 50n * NS_PER_MS;
/** A reading further than this from the estimate means a recalibration (a suspend happened since). */
const DRIFT_NS = 30n * NS_PER_MS;
/** How long a calibration after a suspend watches /proc/uptime tick over: a few of its ticks. */
const CALIBRATE_SPIN_NS = 45n * NS_PER_MS;

export interface BootClock {
  /** CLOCK_BOOTTIME now, in ns. */
  nowNs(): bigint;
  /** A CLOCK_MONOTONIC instant (`process.hrtime.bigint()`) as CLOCK_BOOTTIME ns. */
  fromMonotonicNs(monotonicNs: bigint): bigint;
  /**
   * The wall-clock time (epoch ms, fractional) of a CLOCK_BOOTTIME instant, converted now: the wall
   * clock and the boot clock are read together, so a later wall-clock step does not move it.
   */
  toEpochMs(bootNs: number | bigint): number;
}

export interface BootClockOptions {
  /** Where CLOCK_BOOTTIME is read from (tests point it at a file). */
  uptimePath?: string;
}

/** /proc/uptime's first field in units of 10 ms, or null when unreadable. */
function readTicks(path: string): bigint | null {
  try {
    const match = /^(\d+)\.(\d\d)\s/.exec(readFileSync(path, 'latin1'));
    return match ? BigInt(match[1] ?? '0') * 100n + BigInt(match[2] ?? '0') : null;
  } catch {
    return null;
  }
}

export function createBootClock(options: BootClockOptions = {}): BootClock {
  const path = options.uptimePath ?? '/proc/uptime';
  let offset: bigint | null = null;

  /** BOOTTIME − MONOTONIC from one read of /proc/uptime, to within its truncation and lag. */
  function roughOffset(): bigint | null {
    const before = process.hrtime.bigint();
    const ticks = readTicks(path);
    const after = process.hrtime.bigint();
    return ticks === null ? null : ticks * TICK_NS + TICK_NS / 2n - (before + after) / 2n;
  }

  function calibrate(): bigint {
    const rough = roughOffset();
    if (rough === null) return 0n;
    if (rough > -SNAP_NS && rough < SNAP_NS) return 0n;
    // Suspended at some point: where the value ticks over, BOOTTIME had just reached it (or passed
    // it, by the coarse clock's lag), so ticks × 10 ms − MONOTONIC then is a lower bound.
    let best: bigint | null = null;
    let previous = readTicks(path);
    const deadline = process.hrtime.bigint() + CALIBRATE_SPIN_NS;
    for (;;) {
      const ticks = readTicks(path);
      const at = process.hrtime.bigint();
      if (ticks === null) break;
      if (previous !== null && ticks !== previous) {
        const bound = ticks * TICK_NS - at;
        if (best === null || bound > best) best = bound;
      }
      if (at > deadline) break;
      previous = ticks;
    }
    // A file that never ticks (a test's fixed value): the middle of its 10 ms.
    return best ?? rough;
  }

  function currentOffset(): bigint {
    if (offset === null) {
      offset = calibrate();
      return offset;
    }
    const rough = roughOffset();
    if (rough !== null && (rough - offset > DRIFT_NS || offset - rough > DRIFT_NS)) offset = calibrate();
    return offset;
  }

  return {
    nowNs() {
      const shift = currentOffset(); // first: a calibration takes a few ms
      return process.hrtime.bigint() + shift;
    },
    fromMonotonicNs: (monotonicNs) => monotonicNs + currentOffset(),
    toEpochMs(bootNs) {
      const shift = currentOffset();
      const wall = preciseNow();
      const bootNow = process.hrtime.bigint() + shift;
      const at = typeof bootNs === 'bigint' ? bootNs : BigInt(Math.round(bootNs));
      return wall - Number(bootNow - at) / 1e6;
    },
  };
}

/** The sensor timestamp of a frame's metadata (ns), when it has a usable one. */
export function sensorTimestampOf(metadata: Record<string, unknown> | null): number | null {
  const value = metadata?.['SensorTimestamp'];
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : null;
}
