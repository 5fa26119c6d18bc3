import type { MqttClient } from 'mqtt';
import { discoveryTopicsFor, ownedDiscovery } from './discovery.js';

export type RemoveClient = Pick<MqttClient, 'publishAsync' | 'subscribeAsync' | 'unsubscribeAsync' | 'on' | 'off'>;

export interface RemoveOptions {
  client: RemoveClient;
  haPrefix: string;
  /** Nodes whose entities go; empty with `all` = every camera-node entity found under the prefix. */
  nodeIds: string[];
  all: boolean;
  /**
   * How long to collect retained configs after the subscription is granted. Retained messages follow
   * the SUBACK at once, so a short quiet period is enough even for a big fleet.
   */
  quietMs?: number;
}

export interface RemoveResult {
  /** Every discovery topic cleared (an empty retained message published). */
  topics: string[];
  nodeIds: string[];
}

/**
 * Removes camera-node's Home Assistant entities: finds the retained discovery configs under the
 * prefix (`<ha_prefix>/+/+/+/config` whose unique id is ours, so configs of older versions are found
 * too), adds this version's topics for the named nodes, and publishes an empty retained message to each.
 */
export async function removeHaDiscovery(options: RemoveOptions): Promise<RemoveResult> {
  const { client, haPrefix } = options;
  const quietMs = options.quietMs ?? 500;
  const wanted = new Set(options.nodeIds);
  const found = new Map<string, string>();
  const pattern = `${haPrefix}/+/+/+/config`;

  let lastMessageAt = Date.now();
  const onMessage = (topic: string, payload: Buffer): void => {
    const owned = ownedDiscovery(haPrefix, topic, payload);
    if (!owned) return;
    lastMessageAt = Date.now();
    if (options.all || wanted.has(owned.nodeId)) found.set(topic, owned.nodeId);
  };
  client.on('message', onMessage);
  try {
    await client.subscribeAsync(pattern, { qos: 1 });
    lastMessageAt = Date.now();
    // Wait until no retained config has arrived for quietMs.
    while (Date.now() - lastMessageAt < quietMs) {
      await new Promise((resolve) => setTimeout(resolve, Math.max(10, quietMs - (Date.now() - lastMessageAt))));
    }
    await client.unsubscribeAsync(pattern);
  } finally {
    client.off('message', onMessage);
  }

  for (const nodeId of wanted) {
    for (const topic of discoveryTopicsFor(haPrefix, nodeId)) if (!found.has(topic)) found.set(topic, nodeId);
  }
  const topics = [...found.keys()].sort();
  await Promise.all(topics.map((topic) => client.publishAsync(topic, '', { qos: 1, retain: true })));
  return { topics, nodeIds: [...new Set(found.values())].sort() };
}

export interface HaRemoveArgs {
  nodeIds: string[];
  all: boolean;
  /** The arguments left for the config loader (broker URL, credentials, prefixes...). */
  rest: string[];
}

/** Splits `ha-remove`'s own options (`--node ID`, repeatable or comma-separated; `--all`) from config flags. */
export function parseHaRemoveArgs(argv: readonly string[]): HaRemoveArgs {
  const nodeIds: string[] = [];
  const rest: string[] = [];
  let all = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--all') {
      all = true;
    } else if (arg === '--node' || arg.startsWith('--node=')) {
      const value = arg === '--node' ? argv[++i] : arg.slice('--node='.length);
      if (!value || value.startsWith('--')) throw new Error('--node needs a node id');
      nodeIds.push(
        ...value
          .split(',')
          .map((id) => id.trim())
          .filter((id) => id.length > 0),
      );
    } else {
      rest.push(arg);
    }
  }
  return { nodeIds, all, rest };
}
