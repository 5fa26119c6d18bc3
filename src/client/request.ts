import { randomUUID } from 'node:crypto';

/**
 * How a controller talks to nodes: the command it publishes and the replies it accepts.
 *
 * A command carries `reply_to` (the requester's name, one topic level) and the node answers on
 * `<prefix>/<node>/res/<requester>`: under the node's own namespace, where the fleet ACL lets only
 * that node write. A controller subscribes to `<prefix>/+/res/<requester>` and accepts a reply only
 * when the topic's node level equals the reply's `node_id`, so no node can answer for another.
 */

/** A requester name is one topic level of safe characters (the node refuses anything else). */
export const REQUESTER_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

export const isRequester = (value: unknown): value is string => typeof value === 'string' && REQUESTER_PATTERN.test(value);

export interface CommandPayloadOptions {
  /** Where the replies go: `<prefix>/<node>/res/<requester>`. */
  requester: string;
  /** The command id (default: a fresh `<requester>-<uuid>`). Reuse it only to retry the same command. */
  id?: string;
  /** Epoch ms of sending (default: now); the node refuses a command that is too old (`expired`). */
  sentAt?: number;
  /** Epoch ms after which the command must not run (optional). */
  expiresAt?: number;
}

export type CommandPayload = Record<string, unknown> & { id: string; action: string; sent_at: number; reply_to: string };

/** A command ready to publish (JSON.stringify it): the action's parameters plus id, sent_at and reply_to. */
export function commandPayload(action: string, params: Record<string, unknown>, options: CommandPayloadOptions): CommandPayload {
  if (!isRequester(options.requester))
    throw new Error(`requester must match ${REQUESTER_PATTERN.source}, not ${JSON.stringify(options.requester)}`);
  const payload: CommandPayload = {
    ...params,
    id: options.id ?? `${options.requester}-${randomUUID()}`,
    action,
    sent_at: options.sentAt ?? Date.now(),
    reply_to: options.requester,
  };
  if (options.expiresAt !== undefined) payload['expires_at'] = options.expiresAt;
  return payload;
}

/** Every node's replies to this requester. */
export const replyTopicFilter = (prefix: string, requester: string): string => `${prefix}/+/res/${requester}`;

/** Where one node answers this requester. */
export const replyTopic = (prefix: string, nodeId: string, requester: string): string => `${prefix}/${nodeId}/res/${requester}`;

/**
 * MQTT 5 publish properties for a command: a Message Expiry Interval, so a broker holding the command
 * for an offline node drops it instead of delivering it late. Empty for MQTT 3.1.1.
 */
export function commandPublishProperties(mqtt5: boolean, expirySeconds: number): { properties?: { messageExpiryInterval: number } } {
  return mqtt5 ? { properties: { messageExpiryInterval: Math.max(1, Math.ceil(expirySeconds)) } } : {};
}

export interface Reply {
  id: string | null;
  node_id: string;
  status: string;
  [field: string]: unknown;
}

/**
 * The reply in a message on `replyTopicFilter(prefix, requester)`, or null when it is not one a
 * controller may trust: not on this requester's reply topic, not JSON, or from a node other than
 * the one whose namespace it was published in (a forgery the ACL should already have refused).
 */
export function acceptReply(prefix: string, requester: string, topic: string, payload: Buffer | string): Reply | null {
  const head = `${prefix}/`;
  const tail = `/res/${requester}`;
  if (!topic.startsWith(head) || !topic.endsWith(tail)) return null;
  const nodeLevel = topic.slice(head.length, topic.length - tail.length);
  if (nodeLevel.length === 0 || nodeLevel.includes('/')) return null;
  let reply: unknown;
  try {
    reply = JSON.parse(payload.toString());
  } catch {
    return null;
  }
  if (reply === null || typeof reply !== 'object' || Array.isArray(reply)) return null;
  const fields = reply as Record<string, unknown>;
  if (fields['node_id'] !== nodeLevel) return null;
  return fields as Reply;
}

/** A requester name for one run of a controller: unique enough that two runs never share replies. */
export const newRequester = (kind: string): string => `${kind}-${randomUUID().slice(0, 8)}`;
