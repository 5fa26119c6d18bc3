/**
 * Wall-clock time with sub-millisecond resolution, and a precise wait for an absolute instant.
 * Scheduled captures fire "at" an epoch time on this machine's clock; Date.now() ticks in whole
 * milliseconds and setTimeout fires a millisecond or more late (more on a busy Pi), so the wait is a
 * timer until shortly before the instant and then a setImmediate spin for the last stretch.
 */

/** The epoch time in ms, fractional: the monotonic clock anchored to the wall clock at process start. */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * How long before the instant the timer hands over to the spin. libuv timers have whole-ms
 * resolution and fire up to a ms or two late on an idle machine; a few ms of spin covers that. A
 * longer spin buys nothing on a busy machine (the spin needs the CPU as much as the timer does) and
 * costs a core meanwhile: with many nodes sharing cores (the fleet benchmark) long spins starve each
 * other and make every node late.
 */
export const SPIN_MS = 1;

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
      // A timer can also fire early by a fraction of a ms; re-arm until within the spin window.
      if (left > SPIN_MS) timer = setTimeout(step, left - SPIN_MS);
      else spin();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    step();
  });
}
