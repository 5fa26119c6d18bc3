import { NodeError } from '../errors.js';
import type { CaptureSettings } from '../camera/types.js';
import type { CaptureParams } from './types.js';

/**
 * Scheduled captures: when a capture command carries `at`, when a burst takes its frames, and how
 * their waiting stays out of the one-capture-at-a-time queue.
 */

/** Largest burst; the command schemas say the same. */
export const MAX_BURST_COUNT = 100;
/** Longest gap between burst frames (one hour). */
export const MAX_INTERVAL_MS = 3_600_000;

/**
 * How long before its instant a scheduled capture joins the capture queue. It must cover making room
 * in storage and readying the camera (both quick when nothing else runs), and it is the longest a
 * scheduled capture holds the queue while waiting.
 */
export const DEFAULT_LEAD_MS = 300;

export interface ScheduleLimits {
  /** How far ahead `at` (and the end of a burst) may be. */
  maxAheadMs: number;
  /**
   * How far in the past `at` may be and still be taken (at once, with its lateness reported):
   * covers the clock offset between the sender and this node and the command's transit time.
   */
  toleranceMs: number;
}

/** What one capture command asks for, validated. */
export interface CapturePlan {
  settings: CaptureSettings;
  /** Epoch ms of the first frame; null = as soon as the queue allows. */
  at: number | null;
  count: number;
  intervalMs: number;
}

const ISO_WITH_ZONE = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)$/i;
const RELATIVE = /^\+\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/i;
const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
/** Epoch ms before 2001-09-09: almost certainly epoch seconds sent by mistake. */
const MIN_EPOCH_MS = 1e12;

function badAt(message: string): NodeError {
  return new NodeError('bad_request', `at: ${message}`);
}

function fromIso(text: string): number {
  // Date.parse wants `+hh:mm`; ISO 8601 also allows `+hhmm` and `+hh`.
  const normalized = text
    .replace(' ', 'T')
    .replace(/([+-]\d{2})(\d{2})$/, '$1:$2')
    .replace(/([+-]\d{2})$/, '$1:00');
  const ms = Date.parse(normalized);
  if (Number.isNaN(ms)) throw badAt(`not a valid date and time: ${JSON.stringify(text)}`);
  return ms;
}

function fromEpoch(ms: number): number {
  if (!Number.isFinite(ms) || ms < 0) throw badAt('epoch milliseconds must be a non-negative number');
  if (ms < MIN_EPOCH_MS) throw badAt(`${ms} looks like epoch seconds; epoch milliseconds are expected`);
  return ms;
}

/**
 * The `at` of a command, as epoch ms: a number or digit string (epoch milliseconds) or an ISO 8601
 * date-time with its zone (`Z` or an offset). A time without a zone is refused: nodes in different
 * zones would read it differently. A relative time (`+2s`) is refused too: each node would add it to
 * its own arrival time, so a broadcast would not fire together; senders resolve it (see parseAt).
 */
export function parseAbsoluteAt(value: unknown): number {
  if (typeof value === 'number') return fromEpoch(value);
  if (typeof value !== 'string') throw badAt('expected epoch milliseconds or an ISO 8601 date-time');
  const text = value.trim();
  if (/^\d+(?:\.\d+)?$/.test(text)) return fromEpoch(Number(text));
  if (RELATIVE.test(text))
    throw badAt('must be an absolute time (epoch ms or ISO 8601 with a zone); relative times are resolved by the sender');
  if (!ISO_WITH_ZONE.test(text))
    throw badAt(`expected epoch milliseconds or an ISO 8601 date-time with a zone (Z or ±hh:mm), got ${JSON.stringify(text.slice(0, 64))}`);
  return fromIso(text);
}

/**
 * What a person types for a capture time, as epoch ms: `+2s`, `+500ms`, `+1.5m`, `+1h` (from
 * `now`; a bare `+N` is seconds), epoch milliseconds, or ISO 8601 with a zone. For clients: they
 * turn `--at +2s` into the absolute time every node of a broadcast receives.
 */
export function parseAt(text: string, now: number): number {
  const relative = RELATIVE.exec(text.trim());
  if (relative) {
    const amount = Number(relative[1]);
    const unit = (relative[2] ?? 's').toLowerCase();
    return Math.round(now + amount * (UNIT_MS[unit] ?? 1000));
  }
  return parseAbsoluteAt(text);
}

function integerIn(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new NodeError('bad_request', `${name} must be an integer from ${min} to ${max}`);
  }
  return value;
}

/** Splits a capture command into settings and timing, and checks the timing against the limits. */
export function planCapture(params: CaptureParams, limits: ScheduleLimits, now: number): CapturePlan {
  const { at: rawAt, count: rawCount, interval_ms: rawInterval, ...settings } = params;
  const count = rawCount === undefined ? 1 : integerIn('count', rawCount, 1, MAX_BURST_COUNT);
  const intervalMs = rawInterval === undefined ? 0 : integerIn('interval_ms', rawInterval, 0, MAX_INTERVAL_MS);
  if ((count - 1) * intervalMs > limits.maxAheadMs) {
    throw new NodeError(
      'bad_request',
      `the burst would last ${((count - 1) * intervalMs) / 1000} s, more than the ${limits.maxAheadMs / 1000} s allowed`,
    );
  }
  let at: number | null = null;
  if (rawAt !== undefined) {
    at = parseAbsoluteAt(rawAt);
    if (at < now - limits.toleranceMs) {
      throw new NodeError(
        'bad_request',
        `at is ${Math.round(now - at)} ms in the past (tolerance ${limits.toleranceMs} ms); check the sender's and this node's clocks`,
        {
          details: { at: new Date(at).toISOString(), now: new Date(now).toISOString() },
        },
      );
    }
    if (at > now + limits.maxAheadMs) {
      throw new NodeError(
        'bad_request',
        `at is ${Math.round((at - now) / 1000)} s ahead, more than the ${limits.maxAheadMs / 1000} s allowed`,
        {
          details: { at: new Date(at).toISOString(), now: new Date(now).toISOString() },
        },
      );
    }
  }
  return { settings, at, count, intervalMs };
}

/** A place among the scheduled captures, held from acceptance until the last frame is taken. */
export interface ScheduleTicket {
  /** Resolves `leadMs` before `at` (at once when that has passed); rejects when closed or `signal` aborts. */
  waitForTurn(at: number, signal?: AbortSignal): Promise<void>;
  release(): void;
}

export interface CaptureScheduler {
  readonly limits: ScheduleLimits;
  /** Takes a place, or throws `busy` when `maxPending` captures already wait, `shutting_down` once closed. */
  enter(): ScheduleTicket;
  /** Scheduled captures accepted and not finished. */
  pending(): number;
  /** Rejects every wait with shutting_down and refuses new ones. */
  close(reason: string): void;
}

export interface CaptureSchedulerOptions extends ScheduleLimits {
  /** Scheduled captures (or bursts) that may wait at once. */
  maxPending: number;
  leadMs?: number;
}

/**
 * Waiting for a scheduled instant happens here, outside the capture queue: a capture an hour ahead
 * must not stop others meanwhile. At `at - leadMs` the capture joins the queue at its front (it has a
 * deadline; the plain captures behind it do not) and the camera waits out the rest precisely.
 */
export function createCaptureScheduler(options: CaptureSchedulerOptions): CaptureScheduler {
  const leadMs = options.leadMs ?? DEFAULT_LEAD_MS;
  const waits = new Set<(err: NodeError) => void>();
  let held = 0;
  let closedReason: string | null = null;

  return {
    limits: { maxAheadMs: options.maxAheadMs, toleranceMs: options.toleranceMs },

    enter() {
      if (closedReason !== null) throw new NodeError('shutting_down', closedReason);
      if (held >= options.maxPending) {
        throw new NodeError('busy', 'too many scheduled captures waiting', { details: { pending: held, max_pending: options.maxPending } });
      }
      held++;
      let released = false;
      return {
        waitForTurn(at, signal) {
          if (closedReason !== null) return Promise.reject(new NodeError('shutting_down', closedReason));
          if (signal?.aborted) return Promise.reject(signal.reason);
          const delay = at - leadMs - Date.now();
          if (delay <= 0) return Promise.resolve();
          return new Promise<void>((resolve, reject) => {
            const finish = (err?: unknown): void => {
              clearTimeout(timer);
              waits.delete(fail);
              signal?.removeEventListener('abort', onAbort);
              if (err === undefined) resolve();
              else reject(err);
            };
            const fail = (err: NodeError): void => finish(err);
            const onAbort = (): void => finish(signal?.reason ?? new NodeError('shutting_down', 'aborted'));
            const timer = setTimeout(() => finish(), delay);
            waits.add(fail);
            signal?.addEventListener('abort', onAbort, { once: true });
          });
        },
        release() {
          if (released) return;
          released = true;
          held--;
        },
      };
    },

    pending: () => held,

    close(reason) {
      if (closedReason !== null) return;
      closedReason = reason;
      for (const fail of [...waits]) fail(new NodeError('shutting_down', reason));
    },
  };
}
