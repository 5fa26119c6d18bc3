import { randomUUID } from 'node:crypto';
import mqtt, { type IClientOptions } from 'mqtt';
import { sleep } from './faults-fs.js';

export interface RetainedState {
  availability: string | null;
  status: Record<string, unknown> | null;
  telemetry: Record<string, unknown> | null;
}

/**
 * What a dashboard connecting now would see: the retained availability, status and telemetry of a
 * node, read by a fresh clean-session client that subscribes, waits `settleMs` and leaves.
 */
export async function readRetained(
  url: string,
  prefix: string,
  nodeId: string,
  options: IClientOptions = {},
  settleMs = 300,
): Promise<RetainedState> {
  const client = await mqtt.connectAsync(url, {
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 3000,
    clientId: `faults-retained-${randomUUID().slice(0, 8)}`,
    ...options,
  });
  const state: RetainedState = { availability: null, status: null, telemetry: null };
  try {
    client.on('message', (topic, payload, packet) => {
      if (!packet.retain) return;
      const text = payload.toString();
      if (topic.endsWith('/availability')) state.availability = text;
      else if (topic.endsWith('/status')) state.status = JSON.parse(text) as Record<string, unknown>;
      else if (topic.endsWith('/telemetry')) state.telemetry = JSON.parse(text) as Record<string, unknown>;
    });
    await client.subscribeAsync([`${prefix}/${nodeId}/availability`, `${prefix}/${nodeId}/status`, `${prefix}/${nodeId}/telemetry`], {
      qos: 1,
    });
    await sleep(settleMs);
    return state;
  } finally {
    await client.endAsync(true).catch(() => undefined);
  }
}

/**
 * Polls the retained state until the node is `online` with status and telemetry published at or
 * after `since` (epoch ms): proof that it came back and republished after an outage.
 */
export async function waitForRetainedOnline(
  url: string,
  prefix: string,
  nodeId: string,
  since: number,
  timeoutMs = 20_000,
  options: IClientOptions = {},
): Promise<RetainedState> {
  const deadline = Date.now() + timeoutMs;
  let last: RetainedState | null = null;
  for (;;) {
    try {
      last = await readRetained(url, prefix, nodeId, options);
      const fresh = (message: Record<string, unknown> | null): boolean =>
        message !== null && Date.parse(String(message['timestamp'])) >= since;
      if (last.availability === 'online' && fresh(last.status) && fresh(last.telemetry)) return last;
    } catch {
      // the broker is not back yet
    }
    if (Date.now() > deadline) {
      throw new Error(
        `retained state not back after ${timeoutMs} ms: ${JSON.stringify({ availability: last?.availability, status: last?.status?.['timestamp'], telemetry: last?.telemetry?.['timestamp'] })}`,
      );
    }
    await sleep(200);
  }
}

/** The URL of a daemon's embedded broker, from its log (it starts after the HTTP API). */
export async function embeddedBrokerUrl(daemon: { records: Array<Record<string, unknown>> }, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const record = daemon.records.find((r) => String(r['msg']).startsWith('no MQTT_URL set'));
    if (record) return String(record['url']);
    if (Date.now() > deadline) throw new Error('the daemon did not start its embedded broker');
    await sleep(20);
  }
}
