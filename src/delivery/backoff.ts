/**
 * The shortest wait before any retry or re-offer, whatever asked for less (a `Retry-After: 0`, a tiny
 * base, a clock set back): a target or a collector that keeps failing never gets a hot loop.
 */
export const BACKOFF_FLOOR_MS = 1000;

export interface BackoffOptions {
  /** Failed attempts so far (1 after the first failure). */
  attempts: number;
  baseMs: number;
  maxMs: number;
  /** A server's Retry-After, in seconds: honoured (within the floor and the maximum) instead of the backoff. */
  retryAfterS?: number | null;
  random?: () => number;
}

/**
 * Exponential backoff with jitter over the upper half of the step: a fleet that lost its target
 * together does not come back in lockstep, and no retry comes much sooner than the backoff asks.
 */
export function backoffMs(options: BackoffOptions): number {
  const maxMs = Math.max(BACKOFF_FLOOR_MS, options.maxMs);
  if (options.retryAfterS !== undefined && options.retryAfterS !== null)
    return Math.min(maxMs, Math.max(BACKOFF_FLOOR_MS, options.retryAfterS * 1000));
  const ceiling = Math.min(maxMs, options.baseMs * 2 ** Math.min(30, Math.max(0, options.attempts - 1)));
  const random = options.random ?? Math.random;
  return Math.max(BACKOFF_FLOOR_MS, Math.round(ceiling / 2 + (random() * ceiling) / 2));
}

/** Longest single timer Node allows; a longer wait is simply woken and re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A transport loop's idle wait: until a deadline or until woken (new work, a stop), whichever first. */
export function createWaiter() {
  let wake: (() => void) | null = null;
  return {
    wait(ms: number): Promise<void> {
      return new Promise<void>((resolve) => {
        const timer = Number.isFinite(ms) ? setTimeout(done, Math.min(Math.max(0, ms), MAX_TIMER_MS)) : null;
        function done(): void {
          if (timer) clearTimeout(timer);
          wake = null;
          resolve();
        }
        wake = done;
      });
    },
    wake(): void {
      wake?.();
    },
  };
}
