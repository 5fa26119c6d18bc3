import type { Logger } from 'pino';
import { toNodeError } from '../errors.js';

/**
 * Unattended captures every `intervalS`, optionally only between two times of day. Ticks sit on a
 * fixed grid so that nodes with synchronised clocks capture together: multiples of the interval since
 * the epoch without a window, and the window's start plus multiples of the interval with one (so a
 * 07:00–19:00 window with a 15-minute interval fires at 07:00, 07:15, …, 18:45). Each tick is a
 * scheduled capture (`at` = the tick) through the ordinary command, so storage policy, delivery and
 * events apply as for any capture.
 */

export interface TimelapseOptions {
  intervalS: number;
  /** Local time of day `HH:MM` the window opens (default 00:00). */
  start?: string;
  /** Local time of day `HH:MM` the window closes (default: a day after it opens); before `start` = past midnight. */
  stop?: string;
  /** Takes one capture at `at` (epoch ms), or at once when `at` is undefined. */
  capture(at: number | undefined): Promise<unknown>;
  logger: Logger;
  /** How long before a tick the capture is handed over (the scheduler's lead). */
  leadMs: number;
  now?: () => number;
}

export interface TimelapseStatus {
  interval_s: number;
  start: string | null;
  stop: string | null;
  next_at: string | null;
  captures: number;
  failed: number;
  skipped: number;
  last_error: string | null;
}

export interface Timelapse {
  start(): void;
  /** No further ticks; resolves when a capture in progress has ended. */
  stop(): Promise<void>;
  status(): TimelapseStatus;
}

const TIME_OF_DAY = /^([01]\d|2[0-3]):([0-5]\d)$/;
const DAY_MS = 86_400_000;
/** Longest single timer of the timelapse: how soon a wall-clock step is noticed. */
const MAX_WAIT_MS = 10_000;

export function minutesOfDay(text: string): number {
  const match = TIME_OF_DAY.exec(text);
  if (!match) throw new RangeError(`not a time of day (HH:MM): ${JSON.stringify(text)}`);
  return Number(match[1]) * 60 + Number(match[2]);
}

/** The local time `minutes` after midnight of the day `dayOffset` days from `t`'s local date. */
function localTime(t: number, dayOffset: number, minutes: number): number {
  const date = new Date(t);
  return new Date(date.getFullYear(), date.getMonth(), date.getDate() + dayOffset, Math.floor(minutes / 60), minutes % 60).getTime();
}

/** The first tick at or after `t`. */
export function nextTick(t: number, intervalMs: number, window: { start?: string; stop?: string } = {}): number {
  if (window.start === undefined && window.stop === undefined) return Math.ceil(t / intervalMs) * intervalMs;
  const startMin = window.start === undefined ? 0 : minutesOfDay(window.start);
  const stopMin = window.stop === undefined ? startMin : minutesOfDay(window.stop);
  let best = Number.POSITIVE_INFINITY;
  // The window that opened yesterday may still be open (past midnight); a tick may be a day or two away.
  for (let day = -1; day <= 2; day++) {
    const opens = localTime(t, day, startMin);
    const closes = stopMin > startMin ? localTime(t, day, stopMin) : localTime(t, day + 1, stopMin);
    const k = Math.max(0, Math.ceil((t - opens) / intervalMs));
    const tick = opens + k * intervalMs;
    if (tick < closes && tick >= t && tick < best) best = tick;
  }
  return Number.isFinite(best) ? best : t + DAY_MS;
}

export function createTimelapse(options: TimelapseOptions): Timelapse {
  const logger = options.logger.child({ part: 'timelapse' });
  const now = options.now ?? Date.now;
  const intervalMs = options.intervalS * 1000;
  // Handing a capture over a whole lead early would overlap the previous one on short intervals.
  const leadMs = Math.min(options.leadMs, intervalMs / 3);
  const window = { ...(options.start ? { start: options.start } : {}), ...(options.stop ? { stop: options.stop } : {}) };
  // Validate now rather than at the first tick.
  if (window.start) minutesOfDay(window.start);
  if (window.stop) minutesOfDay(window.stop);
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let nextAt: number | null = null;
  let stopped = false;
  const counts = { captures: 0, failed: 0, skipped: 0, last_error: null as string | null };

  function arm(after: number): void {
    if (stopped) return;
    const tick = nextTick(after, intervalMs, window);
    nextAt = tick;
    // Durations run on the monotonic clock (timers), ticks on the wall clock: a long wait is taken
    // in steps, each one rereading the wall clock, so a clock step is noticed within MAX_WAIT_MS.
    timer = setTimeout(() => wake(tick), Math.min(Math.max(0, tick - leadMs - now()), MAX_WAIT_MS));
  }

  function wake(tick: number): void {
    timer = null;
    if (stopped) return;
    const t = now();
    // Not yet: a step of a long wait, or the clock stepped back. Re-reading the grid from the clock
    // gives the same tick in the first case and the one the new time calls for in the second.
    if (t < tick - leadMs) arm(t + leadMs);
    else fire(tick);
  }

  function fire(tick: number): void {
    const t = now();
    if (t - tick > intervalMs)
      logger.warn({ tick: new Date(tick).toISOString(), late_ms: Math.round(t - tick) }, 'timelapse re-anchored: the clock jumped ahead');
    // Fired late (a forward clock step, a suspended machine): the missed ticks are not caught up,
    // however far the clock jumped. One capture now, then the grid from half an interval on, so the
    // late capture is not followed at once by a tick it would still be busy with.
    arm(t > tick ? t + intervalMs / 2 : tick + 1);
    if (running) {
      // The previous capture is still going: a timelapse that piles up captures helps nobody.
      counts.skipped++;
      logger.warn({ tick: new Date(tick).toISOString() }, 'timelapse tick skipped: the previous capture has not finished');
      return;
    }
    // Fired late (a blocked event loop, a suspended machine): capture now rather than be refused as past.
    const at = tick > now() ? tick : undefined;
    running = options
      .capture(at)
      .then(
        () => {
          counts.captures++;
        },
        (err: unknown) => {
          const error = toNodeError(err);
          counts.failed++;
          counts.last_error = `${error.code}: ${error.message}`;
          if (!stopped) logger.warn({ code: error.code, message: error.message }, 'timelapse capture failed');
        },
      )
      .finally(() => {
        running = null;
      });
  }

  return {
    start() {
      if (timer || stopped) return;
      logger.info({ interval_s: options.intervalS, ...window }, 'timelapse started');
      arm(now() + leadMs);
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      nextAt = null;
      await running;
    },
    status: () => ({
      interval_s: options.intervalS,
      start: options.start ?? null,
      stop: options.stop ?? null,
      next_at: nextAt === null ? null : new Date(nextAt).toISOString(),
      ...counts,
    }),
  };
}
