import { readFile } from 'node:fs/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';

/** Options every client subcommand takes to reach the broker. */
export const BROKER_OPTIONS = {
  broker: { type: 'string' },
  username: { type: 'string' },
  password: { type: 'string' },
  ca: { type: 'string' },
  prefix: { type: 'string', default: 'cameras' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export interface BrokerValues {
  broker?: string;
  username?: string;
  password?: string;
  ca?: string;
}

/** A mistake on the command line: the dispatcher prints it with the usage and exits 2. */
export class UsageError extends Error {}

export function parseCommandArgs<O extends ParseArgsConfig['options']>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options: { ...BROKER_OPTIONS, ...options }, allowPositionals: false, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** The broker's URL: --broker, or MQTT_URL. */
export function brokerUrl(values: BrokerValues): string {
  const url = values.broker ?? process.env['MQTT_URL'];
  if (!url) throw new UsageError('--broker URL is required (or MQTT_URL)');
  return url;
}

/** Username and password (--username/--password, or MQTT_USERNAME/MQTT_PASSWORD) and the --ca file, those given. */
export async function brokerCredentials(values: BrokerValues): Promise<{ username?: string; password?: string; ca?: Buffer }> {
  const username = values.username ?? process.env['MQTT_USERNAME'];
  const password = values.password ?? process.env['MQTT_PASSWORD'];
  return {
    ...(username ? { username } : {}),
    ...(password ? { password } : {}),
    ...(values.ca ? { ca: await readFile(values.ca) } : {}),
  };
}

/**
 * Resolves on SIGINT or SIGTERM, or when `signal` aborts, for commands that run until stopped;
 * `release` takes the listeners off again.
 */
export function untilStopped(signal?: AbortSignal): { stopped: Promise<void>; release: () => void } {
  let stop = (): void => undefined;
  const stopped = new Promise<void>((resolveStop) => {
    stop = resolveStop;
  });
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  signal?.addEventListener('abort', stop, { once: true });
  const release = (): void => {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    signal?.removeEventListener('abort', stop);
  };
  return { stopped, release };
}

/** CONNACK codes of a broker that does not speak MQTT 5 (3.1.1's "unacceptable protocol version", 5's "unsupported"). */
const PROTOCOL_REFUSED = new Set([1, 132]);

/**
 * Connects as a controller. MQTT 5 first, for message expiry on commands; a broker that refuses it
 * (aedes, the node's embedded broker, speaks 3.1.1 only) is asked again in 3.1.1. Replies come the
 * same way in both: on `<prefix>/<node>/res/<requester>` (see request.ts). The password may come
 * from the environment (MQTT_PASSWORD) so it does not show in the process list.
 */
export async function connectBroker(values: BrokerValues): Promise<MqttClient> {
  const url = brokerUrl(values);
  const options: IClientOptions = {
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    clientId: `camera-node-cli_${process.pid}_${Math.random().toString(16).slice(2, 8)}`,
    ...(await brokerCredentials(values)),
  };
  try {
    return await mqtt.connectAsync(url, { ...options, protocolVersion: 5 }, false);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code !== 'number' || !PROTOCOL_REFUSED.has(code)) throw err;
    return mqtt.connectAsync(url, { ...options, protocolVersion: 4 }, false);
  }
}

export const speaksMqtt5 = (client: MqttClient): boolean => client.options.protocolVersion === 5;

/** Collects retained messages on `filter` until none has arrived for `quietMs` after the subscription. */
export async function readRetained(client: MqttClient, filter: string, quietMs = 500): Promise<Map<string, Buffer>> {
  const found = new Map<string, Buffer>();
  let last = Date.now();
  const onMessage = (topic: string, payload: Buffer, packet: { retain: boolean }): void => {
    if (!packet.retain) return;
    found.set(topic, payload);
    last = Date.now();
  };
  client.on('message', onMessage);
  try {
    await client.subscribeAsync(filter, { qos: 1 });
    last = Date.now();
    while (Date.now() - last < quietMs) await new Promise((resolve) => setTimeout(resolve, 50));
    await client.unsubscribeAsync(filter);
  } finally {
    client.off('message', onMessage);
  }
  return found;
}

/** The ids of the nodes whose retained availability says online. */
export async function onlineNodes(client: MqttClient, prefix: string): Promise<string[]> {
  const retained = await readRetained(client, `${prefix}/+/availability`);
  const level = prefix.split('/').length;
  return [...retained]
    .filter(([, payload]) => payload.toString() === 'online')
    .map(([topic]) => topic.split('/')[level] ?? '')
    .filter((id) => id.length > 0)
    .sort();
}
