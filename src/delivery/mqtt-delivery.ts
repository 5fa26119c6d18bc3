import type { Logger } from 'pino';
import type { EventBus } from '../events.js';
import { NodeError, toNodeError } from '../errors.js';
import type { MqttPlane } from '../mqtt/plane.js';
import type { SchemaRegistry } from '../schemas.js';
import type { ImageStore } from '../storage/types.js';
import { publishImage } from './chunks.js';
import type { FileDigest, Manifest } from './manifest.js';

export interface MqttDeliveryOptions {
  plane: MqttPlane;
  store: ImageStore;
  events: EventBus;
  schemas: SchemaRegistry;
  logger: Logger;
  nodeId: string;
  /** The MQTT topic prefix (`cameras`). */
  prefix: string;
  chunkSizeBytes: number;
  window: number;
}

export interface DeliveryStatus {
  pending: number;
  delivered: number;
  failed: number;
  last_error: string | null;
  last_delivered_at: string | null;
}

interface Transfer {
  filename: string;
  only?: number[];
  requestId: string | null;
}

const OWNER = 'mqtt-delivery';
/** Hashes kept for resends: a receiver asking for a few chunks should not cost a read of the whole file. */
const DIGEST_CACHE_SIZE = 16;

/**
 * Chunked image delivery over the node's MQTT connection. Transfers run one at a time (memory stays
 * at one window of chunks); a capture asked to be delivered that cannot be sent now (broker away)
 * stays pending and is sent again after the next connect, so no image is dropped silently.
 */
export function createMqttDelivery(options: MqttDeliveryOptions) {
  const { plane, store, events } = options;
  const logger = options.logger.child({ part: 'mqtt-delivery' });
  const pending: Transfer[] = [];
  const counts = { delivered: 0, failed: 0, lastError: null as string | null, lastDeliveredAt: null as string | null };
  const abort = new AbortController();
  let chain: Promise<unknown> = Promise.resolve();
  // Keyed by name, size and mtime: a later image under a freed name is never taken for an earlier one.
  const digests = new Map<string, FileDigest>();
  const remember = (key: string, digest: FileDigest): void => {
    digests.delete(key);
    digests.set(key, digest);
    if (digests.size > DIGEST_CACHE_SIZE) digests.delete(digests.keys().next().value as string);
  };

  async function transfer(job: Transfer): Promise<Manifest> {
    const client = plane.client();
    if (!client?.connected) throw new NodeError('delivery_failed', 'not connected to the MQTT broker');
    const info = store.get(job.filename);
    const started = Date.now();
    const digestKey = `${info.filename}\n${info.size}\n${info.modified}`;
    const digest = digests.get(digestKey);
    const manifest = await publishImage({
      client,
      prefix: options.prefix,
      nodeId: options.nodeId,
      image: { path: store.pathOf(info.filename), filename: info.filename, capturedAt: info.created },
      chunkSizeBytes: options.chunkSizeBytes,
      maxPacketSize: plane.brokerMaxPacketSize(),
      window: options.window,
      requestId: job.requestId,
      signal: abort.signal,
      ...(digest ? { digest } : {}),
      ...(job.only ? { onlyChunks: job.only } : {}),
    });
    remember(digestKey, { sha256: manifest.sha256, size: manifest.size });
    if (!job.only) await store.markDelivered(info.filename, 'mqtt');
    counts.delivered += 1;
    counts.lastDeliveredAt = new Date().toISOString();
    logger.info(
      { filename: info.filename, size: manifest.size, chunks: job.only?.length ?? manifest.chunks, ms: Date.now() - started },
      'image sent over MQTT',
    );
    events.emit('delivered', { filename: info.filename, channel: 'mqtt', request_id: job.requestId });
    return manifest;
  }

  /** Runs after the transfers before it: one at a time. */
  function enqueue(job: Transfer): Promise<Manifest> {
    const run = chain.then(() => transfer(job));
    chain = run.catch(() => undefined);
    return run;
  }

  const forget = (job: Transfer): void => {
    const index = pending.indexOf(job);
    if (index >= 0) pending.splice(index, 1);
  };

  function deliverCaptured(job: Transfer): void {
    pending.push(job);
    void enqueue(job).then(
      () => forget(job),
      (err: unknown) => {
        const error = toNodeError(err);
        counts.failed += 1;
        counts.lastError = `${error.code}: ${error.message}`;
        if (error.code === 'not_found' || error.code === 'shutting_down') forget(job);
        logger.warn(
          { filename: job.filename, code: error.code, err: error.message },
          'image not sent over MQTT; retried after the next connect',
        );
        events.emit('delivery_failed', {
          filename: job.filename,
          channel: 'mqtt',
          code: error.code,
          message: error.message,
          request_id: job.requestId,
        });
      },
    );
  }

  const sendParams = options.schemas.validator('command.schema.json#/definitions/send');

  return {
    start(): void {
      plane.registerAction('send', {
        validate: sendParams,
        run: async (params, context) => {
          const manifest = await enqueue({
            filename: String(params['filename']),
            requestId: context.requestId ?? null,
            ...(Array.isArray(params['chunks']) ? { only: params['chunks'] as number[] } : {}),
          });
          return {
            filename: manifest.filename,
            size: manifest.size,
            sha256: manifest.sha256,
            chunks: manifest.chunks,
            sent: manifest.resend ?? manifest.chunks,
          };
        },
      });
      events.on(OWNER, 'captured', ({ image, deliver, request_id }) => {
        if (deliver === 'mqtt') deliverCaptured({ filename: image.filename, requestId: request_id ?? null });
      });
      // Whatever could not be sent while the broker was away goes out once it is back.
      plane.onConnect(() => {
        for (const job of pending.splice(0)) deliverCaptured(job);
      });
    },
    async stop(): Promise<void> {
      events.removeOwner(OWNER);
      abort.abort(new NodeError('shutting_down', 'the node is shutting down'));
      await chain;
    },
    status(): DeliveryStatus {
      return {
        pending: pending.length,
        delivered: counts.delivered,
        failed: counts.failed,
        last_error: counts.lastError,
        last_delivered_at: counts.lastDeliveredAt,
      };
    },
  };
}
export type MqttDelivery = ReturnType<typeof createMqttDelivery>;
