import { readFile } from 'node:fs/promises';
import type { IClientOptions } from 'mqtt';
import { ConfigError, type Config } from '../config/config.js';

/** Reconnect backoff: the first retry is quick, then doubling up to the cap, reset on every connect. */
export const RECONNECT_MIN_MS = 1000;
export const RECONNECT_MAX_MS = 30_000;

/**
 * The wait before the next connection attempt after `failures` failed ones. The ±20 % jitter keeps a
 * fleet from reconnecting in lockstep when its broker comes back.
 */
export function reconnectDelay(failures: number, random: () => number = Math.random): number {
  const base = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** Math.min(failures, 16));
  return Math.round(base * (0.8 + 0.4 * random()));
}

const SCHEMES = new Set(['mqtt:', 'mqtts:', 'ws:', 'wss:']);

/** The broker URL as it may be shown: credentials in the userinfo are dropped. */
export function displayUrl(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = '';
    parsed.password = '';
    return parsed.toString().replace(/\/$/, '');
  } catch {
    return '<invalid url>';
  }
}

/**
 * Stable across restarts, so the broker finds the node's persistent session (and the commands queued
 * in it) again. Node ids are topic-safe ASCII (config schema); brokers that enforce the 23-character
 * minimum of MQTT 3.1.1 need node ids of at most 11 characters.
 */
export const clientIdFor = (nodeId: string): string => `camera-node_${nodeId}`;

export interface ConnectionSettings {
  /** The URL without credentials, for mqtt.connect. */
  url: string;
  options: IClientOptions;
}

/**
 * Everything mqtt.js needs to connect as this node: credentials (from the URL's userinfo or the
 * MQTT_USERNAME/MQTT_PASSWORD settings, which win), TLS files, the protocol version, a persistent
 * session (so commands published while the node is away are delivered when it is back), and the
 * Last Will that marks the node offline.
 */
export async function connectionSettings(
  config: Config,
  url: string,
  availabilityTopic: string,
  protocolVersion: 4 | 5 = config.mqtt_protocol_version,
): Promise<ConnectionSettings> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`invalid MQTT_URL: '${displayUrl(url)}' (expected mqtt://, mqtts://, ws:// or wss://)`);
  }
  if (!SCHEMES.has(parsed.protocol)) {
    throw new ConfigError(`invalid MQTT_URL: '${displayUrl(url)}' (expected mqtt://, mqtts://, ws:// or wss://)`);
  }
  const username = config.mqtt_username ?? (parsed.username ? decodeURIComponent(parsed.username) : undefined);
  const password = config.mqtt_password ?? (parsed.password ? decodeURIComponent(parsed.password) : undefined);
  parsed.username = '';
  parsed.password = '';

  const readPem = async (path: string | undefined, what: string): Promise<Buffer | undefined> => {
    if (!path) return undefined;
    try {
      return await readFile(path);
    } catch (err) {
      throw new ConfigError(`cannot read ${what} '${path}': ${(err as Error).message}`);
    }
  };
  const [ca, cert, key] = await Promise.all([
    readPem(config.mqtt_ca_file, 'MQTT_CA_FILE'),
    readPem(config.mqtt_cert_file, 'MQTT_CERT_FILE'),
    readPem(config.mqtt_key_file, 'MQTT_KEY_FILE'),
  ]);

  const options: IClientOptions = {
    clientId: clientIdFor(config.node_id),
    protocolVersion: protocolVersion,
    clean: false,
    keepalive: 30,
    connectTimeout: 10_000,
    reconnectPeriod: RECONNECT_MIN_MS,
    // A refusal (server unavailable, an auth backend down) is retried with the same backoff as a lost
    // connection: mqtt.js would otherwise give up for good after one.
    reconnectOnConnackError: true,
    // The plane subscribes on every connect itself, so a session the broker forgot is rebuilt too.
    resubscribe: false,
    // mqtt-packet otherwise builds a Buffer for each of the 65 536 packet ids on the first write:
    // 6 MB of heap, a tenth of a Pi Zero's budget, to save a 2-byte allocation per packet.
    writeCache: false,
    will: { topic: availabilityTopic, payload: Buffer.from('offline'), qos: 1, retain: true },
    ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: config.mqtt_session_expiry_s } } : {}),
    ...(username !== undefined ? { username } : {}),
    ...(password !== undefined ? { password } : {}),
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
  };
  return { url: parsed.toString(), options };
}
