import { randomUUID } from 'node:crypto';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';

/** A controller-side client (what a script or Node-RED would be), connected before it is returned. */
export async function connectClient(url: string, options: IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ...options });
}

export interface Received {
  topic: string;
  payload: Buffer;
  packet: IPublishPacket;
  json<T = Record<string, unknown>>(): T;
}

/** How many collectors of each client listen on each filter: the last one to close unsubscribes. */
const listening = new WeakMap<MqttClient, Map<string, number>>();

/**
 * Collects messages on a filter and waits for ones matching a predicate. Subscribes before the caller
 * publishes, so nothing is missed.
 */
export async function collect(client: MqttClient, filter: string) {
  const messages: Received[] = [];
  const waiters: Array<{ predicate: (m: Received) => boolean; count: number; resolve: (m: Received[]) => void }> = [];
  const matches = (topic: string): boolean => {
    const f = filter.split('/');
    const t = topic.split('/');
    for (let i = 0; i < f.length; i += 1) {
      if (f[i] === '#') return true;
      if (f[i] !== '+' && f[i] !== t[i]) return false;
    }
    return f.length === t.length;
  };
  const onMessage = (topic: string, payload: Buffer, packet: IPublishPacket): void => {
    if (!matches(topic)) return;
    messages.push({ topic, payload, packet, json: <T>() => JSON.parse(payload.toString()) as T });
    for (const waiter of [...waiters]) {
      const found = messages.filter(waiter.predicate);
      if (found.length >= waiter.count) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(found);
      }
    }
  };
  client.on('message', onMessage);
  const counts = listening.get(client) ?? new Map<string, number>();
  listening.set(client, counts);
  counts.set(filter, (counts.get(filter) ?? 0) + 1);
  await client.subscribeAsync(filter, { qos: 1 });
  let closed = false;
  return {
    messages,
    /** Resolves with the first `count` messages matching `predicate`; rejects after `timeoutMs`. */
    waitFor(predicate: (m: Received) => boolean = () => true, count = 1, timeoutMs = 10_000): Promise<Received[]> {
      const found = messages.filter(predicate);
      if (found.length >= count) return Promise.resolve(found.slice(0, count));
      return new Promise((resolve, reject) => {
        const waiter = {
          predicate,
          count,
          resolve: (m: Received[]) => {
            clearTimeout(timer);
            resolve(m.slice(0, count));
          },
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`timed out waiting for ${count} message(s) on ${filter}; got ${messages.length}`));
        }, timeoutMs);
        waiters.push(waiter);
      });
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      client.off('message', onMessage);
      const left = (counts.get(filter) ?? 1) - 1;
      if (left > 0) {
        counts.set(filter, left);
        return;
      }
      counts.delete(filter);
      await client.unsubscribeAsync(filter).catch(() => undefined);
    },
  };
}

/** Publishes a command to a node's cmd topic and waits for the reply with its id on the node's res topic. */
export async function request(
  client: MqttClient,
  prefix: string,
  nodeId: string,
  command: Record<string, unknown>,
  timeoutMs = 15_000,
): Promise<Record<string, unknown>> {
  const id = typeof command['id'] === 'string' ? command['id'] : randomUUID();
  const replies = await collect(client, `${prefix}/${nodeId}/res`);
  try {
    await client.publishAsync(`${prefix}/${nodeId}/cmd`, JSON.stringify({ ...command, id }), { qos: 1 });
    const [reply] = await replies.waitFor((m) => m.json()['id'] === id, 1, timeoutMs);
    return reply!.json();
  } finally {
    await replies.close();
  }
}
