import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { createReceiver, type ReceivedImage, type Receiver } from './receiver.js';
import { recordLateImage, type ShotReport } from './shot.js';

/** The part of a pino logger the collector uses. */
export interface CollectorLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface CollectorOptions {
  url: string;
  outDir: string;
  /** Names this collector: its client id, its availability topic, `reply_to` and receipts. Default: the host name. */
  name?: string;
  prefix?: string;
  username?: string;
  password?: string;
  /** CA certificate(s) for mqtts:// and wss://, as PEM. */
  ca?: Buffer | string;
  /** MQTT 5 Session Expiry: how long the broker keeps what is published while the collector is away (default 1 h). */
  sessionExpiryS?: number;
  /** Only images from these nodes. */
  nodes?: readonly string[];
  /** Images received at once (default 32). */
  maxTransfers?: number;
  missingTimeoutMs?: number;
  checkpointMs?: number;
  logger?: CollectorLogger;
}

export interface CollectorStatus {
  name: string;
  connected: boolean;
  received: number;
  receipts: { sent: number; confirmed: number; refused: number };
  in_progress: ReturnType<Receiver['inProgress']>;
}

interface CollectorEvents {
  image: [ReceivedImage];
  shot: [ShotReport];
  receipt: [{ node_id: string; filename: string; status: 'success' | 'error'; error?: { code: string; message: string } }];
  error: [{ node_id: string; filename: string; message: string }];
}

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
/** CONNACK codes of a broker that does not speak MQTT 5 (3.1.1's "unacceptable protocol version", 5's "unsupported"). */
const PROTOCOL_REFUSED = new Set([1, 132]);

export const defaultCollectorName = (): string => `collector-${hostname().replace(/[^A-Za-z0-9_.-]/g, '_')}`.slice(0, 64);

export type Collector = ReturnType<typeof createCollector>;

/**
 * An unattended receiver of the fleet's images. Its session is persistent (a fixed client id from its
 * name, clean = false, a session expiry), so chunks published while it restarts wait at the broker; it
 * resumes the partial images an earlier run left (see the receiver); it sends every node a receipt
 * once an image is verified and on disk; and it keeps its own retained availability
 * (`<prefix>/collectors/<name>/availability`, online, and offline by Last Will), so nodes offer what
 * they still owe as soon as it comes back.
 */
export function createCollector(options: CollectorOptions) {
  const name = options.name ?? defaultCollectorName();
  if (!NAME.test(name)) throw new TypeError(`collector name '${name}' must be 1-64 of A-Z a-z 0-9 _ . -`);
  const prefix = options.prefix ?? 'cameras';
  const availability = `${prefix}/collectors/${name}/availability`;
  const replies = `${prefix}/+/res/${name}`;
  const level = prefix.split('/').length;
  const events = new EventEmitter<CollectorEvents>();
  const counts = { received: 0, sent: 0, confirmed: 0, refused: 0 };
  let client: MqttClient | null = null;
  let receiver: Receiver | null = null;
  let stopping = false;
  /** The client of a start still waiting for the broker, for a stop to end. */
  let connecting: MqttClient | null = null;
  /** Late shot reports are updated one at a time, so two images of a shot do not race on its file. */
  let shotUpdates: Promise<unknown> = Promise.resolve();

  const clientOptions = (protocolVersion: 4 | 5): IClientOptions => ({
    clientId: `camera-node-collector_${name}`,
    protocolVersion,
    clean: false,
    keepalive: 30,
    connectTimeout: 10_000,
    reconnectPeriod: 2000,
    reconnectOnConnackError: true,
    // Nothing may arrive before the receiver listens: messages queued in the session come right after CONNACK.
    manualConnect: true,
    // Subscribed on every connect instead (see open).
    resubscribe: false,
    // No 6 MB table of packet-id buffers (see the node's client options).
    writeCache: false,
    will: { topic: availability, payload: Buffer.from('offline'), qos: 1, retain: true },
    ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: options.sessionExpiryS ?? 3600 } } : {}),
    ...(options.username !== undefined ? { username: options.username } : {}),
    ...(options.password !== undefined ? { password: options.password } : {}),
    ...(options.ca !== undefined ? { ca: options.ca } : {}),
  });

  function onImage(image: ReceivedImage): void {
    counts.received += 1;
    counts.sent += 1;
    options.logger?.info(
      { node_id: image.nodeId, filename: image.filename, path: image.path, size: image.size, sha256: image.sha256 },
      'image received',
    );
    events.emit('image', image);
    if (image.requestId === null) return;
    shotUpdates = shotUpdates
      .then(() => recordLateImage(options.outDir, image))
      .then((report) => report && events.emit('shot', report))
      .catch((err: Error) => options.logger?.warn({ shot_id: image.requestId, err: err.message }, 'cannot update the shot report'));
  }

  function onReply(topic: string, payload: Buffer): void {
    const parts = topic.split('/');
    if (parts.length !== level + 3 || parts[level + 1] !== 'res' || parts[level + 2] !== name) return;
    let reply: Record<string, unknown>;
    try {
      reply = JSON.parse(payload.toString()) as Record<string, unknown>;
    } catch {
      return;
    }
    if (reply['action'] !== 'receipt' || reply['node_id'] !== parts[level]) return;
    const nodeId = String(reply['node_id']);
    const filename = String(reply['filename'] ?? '');
    if (reply['status'] === 'success') {
      counts.confirmed += 1;
      events.emit('receipt', { node_id: nodeId, filename, status: 'success' });
      return;
    }
    counts.refused += 1;
    const error = (reply['error'] ?? {}) as { code?: unknown; message?: unknown };
    const refusal = { code: String(error.code ?? 'internal'), message: String(error.message ?? '') };
    options.logger?.warn({ node_id: nodeId, filename, code: refusal.code, err: refusal.message }, 'receipt refused');
    events.emit('receipt', { node_id: nodeId, filename, status: 'error', error: refusal });
  }

  /** A client with the receiver listening before it connects; resolves at the first CONNACK. */
  async function open(protocolVersion: 4 | 5): Promise<{ client: MqttClient; receiver: Receiver } | 'refused' | 'stopped'> {
    const next = mqtt.connect(options.url, clientOptions(protocolVersion));
    connecting = next;
    const nextReceiver = createReceiver({
      client: next,
      prefix,
      outDir: options.outDir,
      requester: name,
      receipts: true,
      persistent: true,
      ...(options.nodes ? { nodes: options.nodes } : {}),
      ...(options.maxTransfers !== undefined ? { maxTransfers: options.maxTransfers } : {}),
      ...(options.missingTimeoutMs !== undefined ? { missingTimeoutMs: options.missingTimeoutMs } : {}),
      ...(options.checkpointMs !== undefined ? { checkpointMs: options.checkpointMs } : {}),
      onImage,
      onError: ({ nodeId, filename, message }) => {
        options.logger?.warn({ node_id: nodeId, filename, err: message }, 'image not received yet');
        events.emit('error', { node_id: nodeId, filename, message });
      },
    });
    next.on('message', onReply);
    next.on('connect', (connack) => {
      options.logger?.info({ url: options.url, protocol: protocolVersion, session_present: connack.sessionPresent }, 'collector connected');
      // Every time: a broker that lost the session (restarted without persistence) has forgotten them.
      const subscribed = Promise.all([nextReceiver.subscribe(), next.subscribeAsync(replies, { qos: 1 })]);
      ready = subscribed.then(() => undefined);
      void subscribed
        .then(() => next.publishAsync(availability, 'online', { qos: 1, retain: true }))
        .catch((err: Error) => options.logger?.warn({ err: err.message }, 'cannot subscribe; retried at the next connect'));
    });
    next.on('offline', () => options.logger?.warn({ url: options.url }, 'broker unreachable; reconnecting'));
    let ready: Promise<void> = Promise.resolve();
    await nextReceiver.prepare();
    const outcome = await new Promise<'connected' | 'refused' | 'stopped'>((resolve) => {
      const onConnect = (): void => {
        next.off('error', onError);
        next.off('end', onEnd);
        resolve('connected');
      };
      const onEnd = (): void => {
        next.off('connect', onConnect);
        next.off('error', onError);
        resolve('stopped');
      };
      const onError = (err: Error & { code?: unknown }): void => {
        if (typeof err.code === 'number' && PROTOCOL_REFUSED.has(err.code)) {
          next.off('connect', onConnect);
          next.off('error', onError);
          next.off('end', onEnd);
          resolve('refused');
        } else options.logger?.warn({ err: err.message }, 'cannot reach the broker yet');
      };
      next.once('connect', onConnect);
      next.once('end', onEnd);
      next.on('error', onError);
      next.connect();
    });
    connecting = null;
    if (outcome !== 'connected') {
      // A refused CONNACK has already queued a reconnect (reconnectOnConnackError): none may follow the end.
      next.options.reconnectPeriod = 0;
      await nextReceiver.stop();
      await next.endAsync(true);
      return outcome;
    }
    await ready.catch(() => undefined);
    return { client: next, receiver: nextReceiver };
  }

  return {
    name,
    availabilityTopic: availability,
    on: events.on.bind(events) as EventEmitter<CollectorEvents>['on'],
    off: events.off.bind(events) as EventEmitter<CollectorEvents>['off'],
    once: events.once.bind(events) as EventEmitter<CollectorEvents>['once'],
    /** Resolves once connected and subscribed (it keeps trying while the broker is away). */
    async start(): Promise<void> {
      stopping = false;
      let opened = await open(5);
      if (opened === 'refused' && !stopping) opened = await open(4);
      if (opened === 'refused') throw new Error('the broker refused MQTT 5 and 3.1.1');
      if (opened === 'stopped') return;
      if (stopping) {
        await opened.receiver.stop();
        await opened.client.endAsync();
        return;
      }
      ({ client, receiver } = opened);
    },
    /** Marks itself offline and disconnects; the session, its subscriptions and partial images are kept. */
    async stop(): Promise<void> {
      if (stopping) return;
      stopping = true;
      await connecting?.endAsync(true);
      await receiver?.stop();
      await shotUpdates;
      if (client?.connected) await client.publishAsync(availability, 'offline', { qos: 1, retain: true }).catch(() => undefined);
      await client?.endAsync();
      client = null;
      receiver = null;
    },
    status(): CollectorStatus {
      return {
        name,
        connected: client?.connected ?? false,
        received: counts.received,
        receipts: { sent: counts.sent, confirmed: counts.confirmed, refused: counts.refused },
        in_progress: receiver?.inProgress() ?? [],
      };
    },
  };
}
