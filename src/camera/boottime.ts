import { readFileSync } from 'node:fs';
import { preciseNow } from '../schedule/clock.js';

/**
 * CLOCK_BOOTTIME, the clock libcamera stamps each frame's `SensorTimestamp` with, has no Node API.
 * What Node has: CLOCK_MONOTONIC (`process.hrtime`), which differs from CLOCK_BOOTTIME only by the
 * time the system spent suspended, and /proc/uptime, which is CLOCK_BOOTTIME truncated to 10 ms.
 * So BOOTTIME = MONOTONIC + offset, and the offset is calibrated against /proc/uptime: spinning on
 * it until its value ticks over puts BOOTTIME at exactly that value between two reads (tens of µs),
 * far better than its 10 ms resolution. Each conversion reads /proc/uptime once more and
 * recalibrates if it disagrees (a suspend has happened since: never on a Pi, but on a laptop).
 * Where /proc/uptime cannot be read (not Linux), the offset is 0: MONOTONIC stands in for BOOTTIME.
 */

const NS_PER_MS = 1_000_000n;
const TICK_NS = 10n * NS_PER_MS;
/** Longest spin: a tick is 10 ms, so its edge comes within that (plus margin for a busy machine). */
const CALIBRATE_SPIN_NS = 35n * NS_PER_MS;
/** Two reads of /proc/uptime this close bound the tick's edge well enough (a read takes tens of µs). */
const PRECISE_NS = 300_000n;
/** A reading further than this from the estimate (beyond the 10 ms truncation) means a recalibration. */
const SLACK_NS = 2n * NS_PER_MS;

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

  function calibrate(): bigint {
    let previous = readTicks(path);
    if (previous === null) return 0n;
    let previousAt = process.hrtime.bigint();
    const deadline = previousAt + CALIBRATE_SPIN_NS;
    let rough: bigint | null = null;
    for (;;) {
      const ticks = readTicks(path);
      const at = process.hrtime.bigint();
      if (ticks === null) return rough ?? 0n;
      if (ticks !== previous) {
        // It ticked over between the two reads: BOOTTIME was ticks × 10 ms within that window. A
        // window widened by the scheduler (a busy machine) is only a rough answer: wait for the next tick.
        const offset = ticks * TICK_NS - (previousAt + at) / 2n;
        if (at - previousAt <= PRECISE_NS) return offset;
        rough ??= offset;
      }
      // A file that never ticks (a test's fixed value): take the middle of its 10 ms.
      if (at > deadline) return rough ?? ticks * TICK_NS + TICK_NS / 2n - at;
      previous = ticks;
      previousAt = at;
    }
  }

  function currentOffset(): bigint {
    if (offset === null) {
      offset = calibrate();
      return offset;
    }
    const ticks = readTicks(path);
    if (ticks === null) return offset;
    const estimate = process.hrtime.bigint() + offset;
    const low = ticks * TICK_NS;
    if (estimate < low - SLACK_NS || estimate > low + TICK_NS + SLACK_NS) offset = calibrate();
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
