/** What the fleet page shows of one node, merged from its retained availability, status, telemetry and preview. */
export interface FleetNode {
  node_id: string;
  availability: 'online' | 'offline' | 'unknown';
  status: string | null;
  camera: { connected: boolean; sensor: string | null; simulated: boolean; mode: string | null } | null;
  storage: { used_mb: number; limit_mb: number; image_count: number } | null;
  cpu_temperature: number | null;
  uptime: number | null;
  clock: { synchronized: boolean | null; offset_ms: number | null; source: string | null } | null;
  groups: string[];
  version: string | null;
  /** When the latest preview arrived (ISO 8601); null before any. */
  preview_at: string | null;
  /** Last message of any kind from the node (ISO 8601). */
  seen_at: string;
}

type Json = Record<string, unknown>;

const KINDS = new Set(['availability', 'status', 'telemetry', 'preview']);
/** Levels under the prefix that are not nodes: the fleet topics and the collectors' presence. */
const NOT_NODES = new Set(['all', 'group', 'collectors', 'client']);

const num = (value: unknown): number | null => (typeof value === 'number' && Number.isFinite(value) ? value : null);
const str = (value: unknown): string | null => (typeof value === 'string' ? value : null);
const obj = (value: unknown): Json | null =>
  value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Json) : null;

function parse(payload: Buffer): Json | null {
  try {
    return obj(JSON.parse(payload.toString()));
  } catch {
    return null;
  }
}

function clockOf(source: Json | null): FleetNode['clock'] {
  if (!source) return null;
  const synchronized = source['synchronized'];
  return {
    synchronized: typeof synchronized === 'boolean' ? synchronized : null,
    offset_ms: num(source['offset_ms']),
    source: str(source['source']),
  };
}

export interface FleetState {
  /** Takes one message from `<prefix>/+/<kind>`; returns the node it changed, or null when it was not one of ours. */
  apply(topic: string, payload: Buffer): FleetNode | null;
  nodes(): FleetNode[];
  node(id: string): FleetNode | undefined;
  preview(id: string): Buffer | undefined;
}

/**
 * The fleet as the dashboard knows it. Messages that do not parse change nothing but `seen_at`: one
 * node publishing garbage must not blank its card, nor anyone else's.
 */
export function createFleetState(prefix: string): FleetState {
  const level = prefix.split('/').length;
  const nodes = new Map<string, FleetNode>();
  const previews = new Map<string, Buffer>();

  const nodeFor = (id: string): FleetNode => {
    let found = nodes.get(id);
    if (!found) {
      found = {
        node_id: id,
        availability: 'unknown',
        status: null,
        camera: null,
        storage: null,
        cpu_temperature: null,
        uptime: null,
        clock: null,
        groups: [],
        version: null,
        preview_at: null,
        seen_at: new Date().toISOString(),
      };
      nodes.set(id, found);
    }
    return found;
  };

  return {
    apply(topic, payload) {
      const parts = topic.split('/');
      if (parts.length !== level + 2 || parts.slice(0, level).join('/') !== prefix) return null;
      const id = parts[level] ?? '';
      const kind = parts[level + 1] ?? '';
      if (!id || NOT_NODES.has(id) || !KINDS.has(kind)) return null;
      // An empty retained message clears the topic: it says nothing about the node.
      if (payload.length === 0 && !nodes.has(id)) return null;
      const node = nodeFor(id);
      node.seen_at = new Date().toISOString();
      if (kind === 'availability') {
        const text = payload.toString();
        node.availability = text === 'online' || text === 'offline' ? text : 'unknown';
      } else if (kind === 'preview') {
        if (payload.length === 0) {
          previews.delete(id);
          node.preview_at = null;
        } else {
          previews.set(id, payload);
          node.preview_at = node.seen_at;
        }
      } else {
        const message = parse(payload);
        if (message && kind === 'status') {
          const camera = obj(message['camera']);
          const storage = obj(message['storage']);
          const system = obj(message['system']);
          node.status = str(message['status']);
          node.version = str(message['version']);
          node.camera = camera
            ? {
                connected: camera['connected'] === true,
                sensor: str(camera['sensor']),
                simulated: camera['simulated'] === true,
                mode: str(camera['mode']),
              }
            : null;
          node.storage = storage
            ? {
                used_mb: num(storage['used_mb']) ?? 0,
                limit_mb: num(storage['limit_mb']) ?? 0,
                image_count: num(storage['image_count']) ?? 0,
              }
            : null;
          node.cpu_temperature = num(system?.['cpu_temperature']);
          node.uptime = num(system?.['uptime']);
          const groups = obj(message['mqtt'])?.['groups'];
          node.groups = Array.isArray(groups) ? groups.filter((g): g is string => typeof g === 'string') : [];
          node.clock = clockOf(obj(message['clock'])) ?? node.clock;
        } else if (message && kind === 'telemetry') {
          node.cpu_temperature = num(message['cpu_temperature']) ?? node.cpu_temperature;
          node.uptime = num(message['uptime']) ?? node.uptime;
          node.clock = clockOf(obj(message['clock'])) ?? node.clock;
        }
      }
      return node;
    },
    nodes: () => [...nodes.values()].sort((a, b) => a.node_id.localeCompare(b.node_id)),
    node: (id) => nodes.get(id),
    preview: (id) => previews.get(id),
  };
}
