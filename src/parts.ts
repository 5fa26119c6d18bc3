import type { Logger } from 'pino';
import type { DeliveryChannel } from './commands/types.js';
import type { ChannelStatus } from './delivery/outbox.js';
import type { MqttPlaneStatus } from './mqtt/plane.js';
import type { ClockHealth } from './schedule/clock-health.js';
import type { TimelapseStatus } from './schedule/timelapse.js';

/**
 * The status blocks parts contribute to `/status` (beside the node's own fields), by key. A part
 * adds its key here and reports it with `parts.report()`: the compiler then checks what it reports.
 */
export interface PartsStatus {
  clock?: ClockHealth;
  delivery?: Partial<Record<DeliveryChannel, ChannelStatus>>;
  schedule?: { pending: number; timelapse: TimelapseStatus | null };
  mqtt?: MqttPlaneStatus;
}

/** Anything with a life cycle: what `start` opens (timers, sockets, files, listeners), `stop` closes. */
export interface Part {
  start?(): Promise<void> | void;
  stop(): Promise<void> | void;
}

/**
 * The composition root's record of what runs. `start()` starts a part and registers its stop in the
 * same step, so whatever started is stopped, in reverse order, by `stopAll()`: after a clean run or
 * when a later part fails to start. A part whose own start throws is not registered: it must leave
 * nothing open (each part's start cleans up after itself).
 */
export interface PartRegistry {
  /** Starts `part` (when it has a start) and registers its stop under `name`; returns `part`. */
  start<P extends Part>(name: string, part: P): Promise<P>;
  /** Registers a stop for something already running (the logger, a listening server). */
  started(name: string, stop: () => Promise<void> | void): void;
  /** Adds a block to the status, read at every status request. */
  report<K extends keyof PartsStatus>(key: K, read: () => NonNullable<PartsStatus[K]>): void;
  status(): PartsStatus;
  /** Names of the running parts, oldest first. */
  names(): string[];
  /** Stops every part, newest first, each in its own try: one failing must not keep the others running. */
  stopAll(logger?: Logger): Promise<void>;
}

export function createPartRegistry(): PartRegistry {
  const running: Array<{ name: string; stop: () => Promise<void> | void }> = [];
  const readers = new Map<keyof PartsStatus, () => unknown>();
  return {
    async start(name, part) {
      await part.start?.();
      running.push({ name, stop: () => part.stop() });
      return part;
    },
    started(name, stop) {
      running.push({ name, stop });
    },
    report(key, read) {
      readers.set(key, read);
    },
    status() {
      const out: Record<string, unknown> = {};
      for (const [key, read] of readers) out[key] = read();
      return out as PartsStatus;
    },
    names: () => running.map((part) => part.name),
    async stopAll(logger) {
      for (let part = running.pop(); part; part = running.pop()) {
        try {
          await part.stop();
        } catch (err) {
          logger?.error({ err, part: part.name }, 'failed to stop part');
        }
      }
    },
  };
}
