import type { Logger } from 'pino';
import type { StoreEvents } from './types.js';

type EventName = keyof StoreEvents;

export interface StoreEmitter {
  on<E extends EventName>(event: E, listener: StoreEvents[E]): void;
  off<E extends EventName>(event: E, listener: StoreEvents[E]): void;
  emit<E extends EventName>(event: E, ...args: Parameters<StoreEvents[E]>): void;
}

/**
 * A typed emitter whose listeners cannot hurt the store: node:events would let a throwing listener
 * abort emit() (leaving the caller's operation half reported and later listeners unheard), and an
 * async listener's rejection would be unhandled. Here both are caught and logged.
 */
export function createStoreEmitter(logger: Logger): StoreEmitter {
  const listeners = new Map<EventName, Set<StoreEvents[EventName]>>();

  return {
    on(event, listener) {
      const set = listeners.get(event) ?? new Set();
      set.add(listener);
      listeners.set(event, set);
    },

    off(event, listener) {
      listeners.get(event)?.delete(listener);
    },

    emit(event, ...args) {
      // A copy: a listener may remove itself (or others) while we iterate.
      for (const listener of [...(listeners.get(event) ?? [])]) {
        try {
          const result: unknown = (listener as (...call: typeof args) => unknown)(...args);
          if (result instanceof Promise) {
            result.catch((err: unknown) => logger.error({ err, event }, 'store event listener failed'));
          }
        } catch (err) {
          logger.error({ err, event }, 'store event listener failed');
        }
      }
    },
  };
}
