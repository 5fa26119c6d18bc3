import { parseAbsoluteAt } from '../commands/schedule.js';
import { NodeError } from '../errors.js';
import type { ClockHealth } from '../schedule/clock-health.js';

/**
 * Whether a command is still worth running. A command waits in the broker while its node is away
 * (up to MQTT_SESSION_EXPIRY_S), and a capture an hour late is worse than none: the sender has moved
 * on. So a command is refused with `expired` when
 * - it carries `expires_at` and that has passed;
 * - it carries `sent_at` older than `maxAgeMs` (0 turns this off);
 * - it is a scheduled capture whose `at` has passed: its freshness is judged against `at`, not
 *   `sent_at` (a shot may be booked well ahead).
 * Every comparison allows `toleranceMs` (SCHEDULE_TOLERANCE_MS: the clock offset between sender and
 * node and the transit time), and uses this node's clock corrected by the offset chrony measured.
 * A node that knows its clock is not synchronised (before NTP on a Pi without a real-time clock,
 * whose clock may be days off) cannot judge wall-clock ages and skips these checks: it runs what it
 * gets, as it did before freshness existed. One that cannot tell (no chrony, no timedatectl) trusts
 * its clock. The MQTT 5 Message Expiry Interval is enforced by the broker, which drops an expired
 * command before the node sees it, on the broker's clock.
 */
export interface FreshnessOptions {
  maxAgeMs: number;
  toleranceMs: number;
  /** The latest clock reading; null or `synchronized: null` when nothing can tell. */
  clock?: () => ClockHealth | null;
  now?: () => number;
}

function instant(field: string, value: unknown): number {
  try {
    return parseAbsoluteAt(value);
  } catch (err) {
    throw new NodeError('bad_request', (err as Error).message.replace(/^at:/, `${field}:`));
  }
}

/** Throws `expired` (or `bad_request` for an unreadable time); returns quietly for a fresh command. */
export function checkFreshness(command: Record<string, unknown>, options: FreshnessOptions): void {
  const sentAt = command['sent_at'] === undefined ? null : instant('sent_at', command['sent_at']);
  const expiresAt = command['expires_at'] === undefined ? null : instant('expires_at', command['expires_at']);
  const clock = options.clock?.() ?? null;
  if (clock?.synchronized === false) return;
  const now = (options.now ?? Date.now)() - (clock?.offset_ms ?? 0);
  const late = (deadline: number): number => now - deadline - options.toleranceMs;
  const refuse = (message: string, details: Record<string, unknown>): never => {
    throw new NodeError('expired', message, { details: { ...details, node_time: new Date(now).toISOString() } });
  };

  if (expiresAt !== null && late(expiresAt) > 0)
    refuse(`the command expired ${Math.round(now - expiresAt)} ms ago`, { expires_at: new Date(expiresAt).toISOString() });
  const at = command['action'] === 'capture' && command['at'] !== undefined ? instant('at', command['at']) : null;
  if (at !== null) {
    if (late(at) > 0)
      refuse(`the capture was due ${Math.round(now - at)} ms ago; it is not taken late`, { at: new Date(at).toISOString() });
    return;
  }
  if (sentAt !== null && options.maxAgeMs > 0 && late(sentAt + options.maxAgeMs) > 0)
    refuse(`the command was sent ${Math.round((now - sentAt) / 1000)} s ago, more than MAX_COMMAND_AGE_S (${options.maxAgeMs / 1000} s)`, {
      sent_at: new Date(sentAt).toISOString(),
    });
}
