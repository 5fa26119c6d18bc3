/**
 * Wall-clock time with sub-millisecond resolution, and a precise wait for an absolute instant.
 * Scheduled captures fire "at" an epoch time on this machine's clock; Date.now() ticks in whole
 * milliseconds and libuv timers have whole-millisecond resolution, so the wait is a timer aimed at
 * the instant itself and, when it fires early (its millisecond was rounded down), a setImmediate
 * spin for the sub-millisecond rest.
 *
 * Why no longer spin: it buys nothing on a busy machine (the spin needs the CPU as much as the timer
 * does) and holds a core meanwhile; where nodes share cores (the fleet benchmark runs 20 on two) the
 * spins starve each other and every node fires late.
 */

/**
 * The epoch time in ms, fractional: the monotonic clock anchored to the wall clock at process start,
 * as long as the two agree. When the wall clock has been stepped since (chrony setting the time of
 * a Pi that booted without a real-time clock), the anchor is stale and the wall clock wins, to the ms.
 */
export function preciseNow(): number {
  const wall = Date.now();
  const anchored = performance.timeOrigin + performance.now();
  // Date.now() truncates to the ms: agreeing means `anchored` lies in [wall, wall + 1) give or take slew.
  return anchored > wall - 1 && anchored < wall + 2 ? anchored : wall;
}

/** Below this much left, the wait spins rather than arm a timer that cannot resolve it. */
export const SPIN_MS = 1;
/** Longest single timer of a wait: how soon a wall-clock step is noticed. */
export const STEP_MS = 10_000;

/**
 * Resolves at `at` (epoch ms) on this machine's clock, at once when it has passed. Rejects with the
 * signal's reason when `signal` aborts first. Leaves no timer behind either way.
 */
export function waitUntil(at: number, signal?: AbortSignal, now: () => number = preciseNow): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  if (now() >= at) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    let timer: NodeJS.Timeout | null = null;
    let immediate: NodeJS.Immediate | null = null;
    const cleanup = (): void => {
      if (timer) clearTimeout(timer);
      if (immediate) clearImmediate(immediate);
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = (): void => {
      cleanup();
      reject(signal?.reason);
    };
    const spin = (): void => {
      immediate = null;
      if (now() >= at) {
        cleanup();
        resolve();
        return;
      }
      immediate = setImmediate(spin);
    };
    const step = (): void => {
      timer = null;
      const left = at - now();
      // Aimed at the instant itself: a timer that fires early is re-armed, or left to the spin. The
      // timer measures monotonic time and `at` is wall-clock time: a long wait is taken in steps of
      // at most STEP_MS, so a wall-clock step (NTP setting a Pi's clock) is noticed soon, both ways.
      if (left > SPIN_MS) timer = setTimeout(step, Math.min(left, STEP_MS));
      else spin();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    step();
  });
}
