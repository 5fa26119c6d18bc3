import type { ImageInfo } from '../storage/types.js';
import type { NodeEventMap } from '../events.js';
import type { NodeStatus } from '../status.js';

/** The retained telemetry message: the figures a dashboard plots (schemas/telemetry.schema.json). */
export function telemetryMessage(status: NodeStatus, extras: Record<string, unknown>): Record<string, unknown> {
  return {
    node_id: status.node_id,
    timestamp: new Date().toISOString(),
    cpu_percent: status.system.cpu_percent,
    memory_percent: status.system.memory_percent,
    cpu_temperature: status.system.cpu_temperature,
    disk_usage: status.system.disk_usage,
    uptime: status.system.uptime,
    storage: status.storage,
    image_count: status.storage.image_count,
    camera_connected: status.camera.connected,
    captures: status.captures,
    delivery_pending: deliveryPending(status['delivery']),
    ...extras,
  };
}

/** Images owed to any delivery channel and not delivered yet (on MQTT: no collector's receipt yet). */
function deliveryPending(block: unknown): number {
  if (typeof block !== 'object' || block === null) return 0;
  let pending = 0;
  for (const channel of Object.values(block)) {
    const value = (channel as { pending?: unknown } | null)?.pending;
    if (typeof value === 'number' && Number.isFinite(value)) pending += value;
  }
  return pending;
}

const imageFields = (image: ImageInfo) => ({ filename: image.filename, size: image.size, created: image.created });

/** What goes out on `<prefix>/<node>/events` for each node event worth telling (not retained). */
export function eventMessage<E extends keyof NodeEventMap>(
  nodeId: string,
  event: E,
  payload: NodeEventMap[E],
): Record<string, unknown> | null {
  const base = { event, node_id: nodeId, timestamp: new Date().toISOString() };
  switch (event) {
    case 'captured': {
      const p = payload as NodeEventMap['captured'];
      return { ...base, image: imageFields(p.image), duration_ms: p.duration_ms, ...(p.request_id ? { request_id: p.request_id } : {}) };
    }
    case 'deleted':
      return { ...base, image: imageFields((payload as NodeEventMap['deleted']).image) };
    case 'evicted': {
      const p = payload as NodeEventMap['evicted'];
      return { ...base, image: imageFields(p.image), reason: p.reason };
    }
    case 'capture_failed': {
      const p = payload as NodeEventMap['capture_failed'];
      return { ...base, code: p.code, message: p.message, ...(p.request_id ? { request_id: p.request_id } : {}) };
    }
    default:
      return null;
  }
}
