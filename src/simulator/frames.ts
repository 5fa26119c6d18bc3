import { createBootClock } from '../camera/boottime.js';
import { STARTUP_FRAMES } from './knobs.js';

/**
 * The frames of a running camera stream, on the performance.now() clock: one every `periodMs` from
 * the instant the camera was started, the first STARTUP_FRAMES of which the app never sees (the IPA
 * marks them as startup frames). Frame k is exposed from `startedAt + k × period` and reaches the
 * app one period later. The app looks at signals when a frame reaches it, so everything it does
 * happens on these instants.
 */
export interface Stream {
  periodMs: number;
  startedAt: number;
}

export const startStream = (fps: number, now: number = performance.now()): Stream => ({ periodMs: 1000 / fps, startedAt: now });

/** When the app next gets a frame, at or after `t`. */
export function nextDelivery(stream: Stream, t: number): number {
  const first = stream.startedAt + (STARTUP_FRAMES + 1) * stream.periodMs;
  if (t <= first) return first;
  return stream.startedAt + Math.ceil((t - stream.startedAt) / stream.periodMs) * stream.periodMs;
}

/** A frame taken for a still: when its exposure started and when it reached the app (performance.now() ms). */
export interface StillFrame {
  exposedAt: number;
  deliveredAt: number;
}

/** The first frame of a stream just started: the one after the startup frames. */
export function firstFrame(stream: Stream): StillFrame {
  const deliveredAt = nextDelivery(stream, stream.startedAt);
  return { exposedAt: deliveredAt - stream.periodMs, deliveredAt };
}

const boot = createBootClock();
// performance.now() and process.hrtime share libuv's monotonic clock; this ties one to the other.
const hrtimeAtZero = process.hrtime.bigint() - BigInt(Math.round(performance.now() * 1e6));

/** A performance.now() instant as CLOCK_BOOTTIME ns, the clock of libcamera's SensorTimestamp. */
export function bootTimestampNs(at: number): bigint {
  return boot.fromMonotonicNs(hrtimeAtZero + BigInt(Math.round(at * 1e6)));
}

export const sleepUntil = (at: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, at - performance.now())));
