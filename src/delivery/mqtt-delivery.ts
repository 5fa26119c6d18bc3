import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { NodeError, toNodeError } from '../errors.js';
import type { MqttPlane } from '../mqtt/plane.js';
import { collectorAvailabilityFilter } from '../mqtt/topics.js';
import type { SchemaRegistry } from '../schemas.js';
import type { ImageInfo, ImageStore } from '../storage/types.js';
import { BACKOFF_FLOOR_MS, backoffMs, createWaiter } from './backoff.js';
import { publishImage } from './chunks.js';
import { sha256File, type FileDigest, type Manifest } from './manifest.js';
import type { ChannelStatus, Outbox, OutboxEntry } from './outbox.js';

export interface MqttDeliveryOptions {
  plane: MqttPlane;
  outbox: Outbox;
  store: ImageStore;
  schemas: SchemaRegistry;
  logger: Logger;
  nodeId: string;
  /** The MQTT topic prefix (`cameras`). */
  prefix: string;
  chunkSizeBytes: number;
  window: number;
  /** The wait before an unconfirmed image is offered again; it doubles at each offer up to reofferMaxMs. */
  reofferBaseMs: number;
  reofferMaxMs: number;
  random?: () => number;
}

const OFFLINE = new NodeError('delivery_failed', 'not connected to the MQTT broker');
/** Hashes kept for `send` and receipts of images the outbox no longer holds. */
const DIGEST_CACHE_SIZE = 16;
/** Collectors whose availability is remembered (to tell a new `online` from a repeated one). */
const MAX_COLLECTORS = 1000;

/**
 * The MQTT channel: offers the images the outbox owes as a manifest and chunks (each chunk once per
 * offer), then waits for a collector's receipt, the only thing that marks an image delivered. An
 * unconfirmed image is offered again (its manifest) with a backoff, and at once when a collector
 * comes online; a collector asks for the chunks it lacks. A
 * reconnect resends nothing by itself: mqtt.js completes the QoS 1 chunks in flight, collectors ask
 * for what they lack (`send` with chunks). Offers run one at a time: memory stays at one window.
 */
export function createMqttDelivery(options: MqttDeliveryOptions) {
  const { plane, outbox, store } = options;
  const logger = options.logger.child({ part: 'mqtt-delivery' });
  const stopping = new AbortController();
  const waiter = createWaiter();
  const collectors = new Map<string, string>();
  let chain: Promise<unknown> = Promise.resolve();
  let loop: Promise<void> | null = null;
  let unsubscribe: (() => void) | null = null;
  /** The offer being published now, so a receipt for it stops the chunks that are no longer needed. */
  let current: { filename: string; abort: AbortController } | null = null;
  const jitter = options.random ? { random: options.random } : {};

  // Keyed by name, size and mtime: a later image under a freed name is never taken for an earlier one.
  const digests = new Map<string, FileDigest>();
  async function digestOf(info: ImageInfo): Promise<FileDigest> {
    const owed = outbox.get(info.filename);
    if (owed && owed.size === info.size) return { sha256: owed.sha256, size: owed.size };
    const key = `${info.filename}\n${info.size}\n${info.modified}`;
    const digest = digests.get(key) ?? (await sha256File(store.pathOf(info.filename), stopping.signal));
    digests.delete(key);
    digests.set(key, digest);
    if (digests.size > DIGEST_CACHE_SIZE) digests.delete(digests.keys().next().value as string);
    return digest;
  }

  /** Publishes now or after the publishes before it: one at a time. */
  function serially<T>(work: () => Promise<T>): Promise<T> {
    const run = chain.then(work);
    chain = run.catch(() => undefined);
    return run;
  }

  function publish(
    info: ImageInfo,
    digest: FileDigest,
    extra: { requestId: string | null; transferId?: string; only?: number[]; manifestOnly?: boolean; signal?: AbortSignal },
  ): Promise<Manifest> {
    const client = plane.client();
    if (!client?.connected) throw OFFLINE;
    return publishImage({
      client,
      prefix: options.prefix,
      nodeId: options.nodeId,
      image: { path: store.pathOf(info.filename), filename: info.filename, capturedAt: info.created },
      chunkSizeBytes: options.chunkSizeBytes,
      maxPacketSize: plane.brokerMaxPacketSize(),
      window: options.window,
      requestId: extra.requestId,
      digest,
      signal: extra.signal ?? stopping.signal,
      ...(extra.transferId ? { transferId: extra.transferId } : {}),
      ...(extra.only ? { onlyChunks: extra.only } : {}),
      ...(extra.manifestOnly ? { manifestOnly: true } : {}),
    });
  }

  async function offer(entry: OutboxEntry): Promise<void> {
    const { filename } = entry;
    const attempts = (entry.channels.mqtt?.attempts ?? 0) + 1;
    let info: ImageInfo;
    try {
      info = store.get(filename);
      if (info.size !== entry.size) throw new NodeError('delivery_failed', `${filename} changed after it was captured`);
    } catch (err) {
      return outbox.transition(filename, 'mqtt', 'failed', { last_error: toNodeError(err).message });
    }
    // A re-offer (the image went out whole, no receipt came) is the manifest alone: a collector that
    // lacks the image asks for its chunks, and a consumer that never sends receipts costs a few
    // hundred bytes per re-offer, not the image again. It counts with the retries.
    const reoffer = entry.channels.mqtt?.state === 'awaiting_receipt';
    if (reoffer) outbox.countRetry('mqtt', filename, 'no receipt yet; offered again');
    const transferId = randomUUID();
    await outbox.transition(filename, 'mqtt', 'offering', { attempts, transfer_id: transferId });
    const abort = new AbortController();
    current = { filename, abort };
    const started = Date.now();
    try {
      const manifest = await serially(() =>
        publish(info, entry, {
          requestId: entry.request_id,
          transferId,
          manifestOnly: reoffer,
          signal: AbortSignal.any([stopping.signal, abort.signal]),
        }),
      );
      const waitMs = backoffMs({ attempts, baseMs: options.reofferBaseMs, maxMs: options.reofferMaxMs, ...jitter });
      if (entry.channels.mqtt?.state !== 'offering') return; // a receipt came while the chunks went out
      await outbox.transition(filename, 'mqtt', 'awaiting_receipt', { next_at: Date.now() + waitMs, last_error: null });
      logger.info(
        {
          filename,
          size: manifest.size,
          chunks: reoffer ? 0 : manifest.chunks,
          attempts,
          transfer_id: transferId,
          ms: Date.now() - started,
        },
        reoffer ? 'image offered again over MQTT (manifest); waiting for a receipt' : 'image offered over MQTT; waiting for a receipt',
      );
    } catch (err) {
      if (entry.channels.mqtt?.state !== 'offering') return; // delivered (receipt) or given up meanwhile
      const error = toNodeError(err);
      // A re-offer cut short stays a re-offer (the image went out whole before): never a full resend.
      const back = reoffer ? 'awaiting_receipt' : 'owed';
      if (stopping.signal.aborted) return outbox.transition(filename, 'mqtt', back, { next_at: Date.now() });
      if (error.code === 'not_found') return outbox.transition(filename, 'mqtt', 'failed', { last_error: error.message });
      const waitMs = backoffMs({ attempts, baseMs: BACKOFF_FLOOR_MS, maxMs: options.reofferMaxMs, ...jitter });
      outbox.countRetry('mqtt', filename, error.message);
      await outbox.transition(filename, 'mqtt', back, { next_at: Date.now() + waitMs, last_error: error.message });
      logger.warn({ filename, code: error.code, err: error.message, retry_in_ms: waitMs }, 'image not offered over MQTT; retried later');
    } finally {
      if (current?.abort === abort) current = null;
    }
  }

  async function run(): Promise<void> {
    while (!stopping.signal.aborted) {
      const next = outbox.owed('mqtt').find((entry) => entry.channels.mqtt?.state !== 'offering');
      const state = next?.channels.mqtt;
      const connected = plane.client()?.connected === true;
      const waitMs = next && state && connected ? state.next_at - Date.now() : Number.POSITIVE_INFINITY;
      if (next && state && waitMs <= 0) {
        await offer(next).catch((err: unknown) => {
          // The outbox file could not be written: the next round waits a while rather than spin.
          logger.error({ err, filename: next.filename }, 'delivery bookkeeping failed');
          state.next_at = Date.now() + Math.max(BACKOFF_FLOOR_MS, options.reofferMaxMs);
        });
        continue;
      }
      await waiter.wait(waitMs);
    }
  }

  async function receipt(params: Record<string, unknown>): Promise<Record<string, unknown>> {
    const filename = String(params['filename']);
    const sha256 = String(params['sha256']).toLowerCase();
    const collector = typeof params['collector'] === 'string' ? params['collector'] : null;
    const transferId = typeof params['transfer_id'] === 'string' ? params['transfer_id'] : null;
    const entry = outbox.get(filename);
    const state = entry?.channels.mqtt;
    const reply = { filename, sha256, delivered: true };
    if (entry && state && state.state !== 'delivered' && state.state !== 'failed') {
      if (entry.sha256 !== sha256) throw new NodeError('bad_request', `the sha256 does not match ${filename}`, { details: { filename } });
      if (current?.filename === filename) current.abort.abort(new NodeError('shutting_down', 'a receipt came'));
      await outbox.transition(filename, 'mqtt', 'delivered', { last_error: null });
      logger.info({ filename, collector, transfer_id: transferId, attempts: state.attempts }, 'image delivered over MQTT (receipt)');
      return reply;
    }
    // Not owed: already delivered (a repeated receipt), or sent by hand with `send`.
    const info = store.get(filename);
    if ((await digestOf(info)).sha256 !== sha256)
      throw new NodeError('bad_request', `the sha256 does not match ${filename}`, { details: { filename } });
    if (!info.delivered.includes('mqtt')) await store.markDelivered(filename, 'mqtt');
    return reply;
  }

  function onAvailability(topic: string, payload: Buffer): void {
    const name = topic.split('/').at(-2) ?? '';
    const value = payload.toString('utf8').trim();
    const before = collectors.get(name);
    collectors.delete(name);
    collectors.set(name, value);
    if (collectors.size > MAX_COLLECTORS) collectors.delete(collectors.keys().next().value as string);
    // Only a change to online counts: the retained `online` seen again after our own reconnect is not news.
    if (value !== 'online' || before === 'online') return;
    const due = outbox.dueNow('mqtt');
    logger.info({ collector: name, owed: due }, 'collector online; offering owed images now');
  }

  const schema = (name: string) => {
    const fn = options.schemas.ajv.getSchema(`command.schema.json#/definitions/${name}`);
    if (!fn) throw new Error(`command.schema.json has no definitions/${name}`);
    return fn;
  };
  const sendParams = schema('send');
  const receiptParams = schema('receipt');

  return {
    start(): void {
      plane.registerAction('send', {
        validate: sendParams,
        run: async (params, context) => {
          const info = store.get(String(params['filename']));
          const only = Array.isArray(params['chunks']) ? (params['chunks'] as number[]) : undefined;
          const digest = await digestOf(info);
          const manifest = await serially(() => publish(info, digest, { requestId: context.requestId ?? null, ...(only ? { only } : {}) }));
          return {
            filename: manifest.filename,
            size: manifest.size,
            sha256: manifest.sha256,
            chunks: manifest.chunks,
            sent: manifest.resend ?? manifest.chunks,
          };
        },
      });
      plane.registerAction('receipt', { validate: receiptParams, run: (params) => receipt(params) });
      plane.subscribe(collectorAvailabilityFilter(options.prefix), onAvailability);
      // A (re)connect starts owed offers; it never repeats one (mqtt.js finishes what was in flight).
      plane.onConnect(() => waiter.wake());
      unsubscribe = outbox.onChange('mqtt', () => waiter.wake());
      loop = run();
    },
    async stop(): Promise<void> {
      unsubscribe?.();
      stopping.abort(new NodeError('shutting_down', 'the node is shutting down'));
      waiter.wake();
      await loop;
      await chain;
    },
    status: (): ChannelStatus => outbox.status('mqtt'),
  };
}
export type MqttDelivery = ReturnType<typeof createMqttDelivery>;
