import type { Logger } from 'pino';
import type { ImageInfo } from './storage/types.js';
import type { CameraInfo } from './camera/types.js';

/** What happened on this node; the MQTT plane publishes these, delivery and metrics react to them. */
export interface NodeEventMap {
  captured: {
    image: ImageInfo;
    duration_ms: number;
    metadata: Record<string, unknown> | null;
    preview: Buffer | null;
    request_id?: string;
    /** Where the capture is to be delivered (the command's `deliver`, else DELIVER). */
    deliver?: 'none' | 'mqtt' | 'http';
  };
  delivered: { filename: string; channel: 'mqtt' | 'http'; request_id: string | null };
  delivery_failed: { filename: string; channel: 'mqtt' | 'http'; code: string; message: string; request_id: string | null };
  capture_failed: { code: string; message: string; request_id?: string };
  deleted: { image: ImageInfo };
  evicted: { image: ImageInfo; reason: string };
  camera_changed: { camera: CameraInfo };
  /** Something in the status object changed; listeners re-read it. */
  status_changed: { reason: string };
}
export type NodeEventName = keyof NodeEventMap;
type Listener<E extends NodeEventName> = (payload: NodeEventMap[E]) => void | Promise<void>;

/**
 * A per-node event bus. Listeners are registered under an owner so a part's stop() can remove all of
 * its listeners at once, and each call is guarded: one failing part must not crash the node or keep
 * the others from hearing the event.
 */
export class EventBus {
  private readonly listeners = new Map<NodeEventName, Array<{ owner: string; fn: Listener<never> }>>();

  constructor(private readonly logger: Logger) {}

  on<E extends NodeEventName>(owner: string, event: E, fn: Listener<E>): void {
    const list = this.listeners.get(event) ?? [];
    list.push({ owner, fn: fn as Listener<never> });
    this.listeners.set(event, list);
  }

  removeOwner(owner: string): void {
    for (const [event, list] of this.listeners) {
      this.listeners.set(
        event,
        list.filter((entry) => entry.owner !== owner),
      );
    }
  }

  emit<E extends NodeEventName>(event: E, payload: NodeEventMap[E]): void {
    for (const { owner, fn } of this.listeners.get(event) ?? []) {
      try {
        const result = (fn as Listener<E>)(payload);
        if (result instanceof Promise) {
          result.catch((err: unknown) => this.logger.error({ err, owner, event }, 'event listener failed'));
        }
      } catch (err) {
        this.logger.error({ err, owner, event }, 'event listener failed');
      }
    }
  }
}
