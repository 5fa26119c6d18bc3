import { randomUUID } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { IClientPublishOptions } from 'mqtt';
import { NodeError } from '../errors.js';
import {
  brokerMaxPacketSize,
  chunkSizeFor,
  DNG_CONTENT_TYPE,
  hashHandle,
  imageTopics,
  type FileDigest,
  type Manifest,
} from './manifest.js';

/** All the publisher needs of an mqtt.js client (an `MqttClient` fits). */
export interface ChunkPublisher {
  publishAsync(topic: string, message: string | Buffer, options?: IClientPublishOptions): Promise<unknown>;
}

export interface ImageToPublish {
  /** Where the file is; it is opened once and read at each chunk's offset. */
  path: string;
  filename: string;
  /** ISO 8601. */
  capturedAt: string;
}

export interface PublishImageOptions {
  client: ChunkPublisher;
  /** The topic prefix (`cameras`): topics are `<prefix>/<nodeId>/images/<filename>/...`. */
  prefix: string;
  nodeId: string;
  image: ImageToPublish;
  chunkSizeBytes: number;
  /**
   * The broker's Maximum Packet Size (CONNACK); chunks shrink to fit it. Absent: read from the
   * client's current connection when it is an mqtt.js client; null: no limit.
   */
  maxPacketSize?: number | null;
  /** Most chunks published and not yet acknowledged (PUBACK) at once: memory is window × chunk size. */
  window: number;
  /** Only these chunks (a resend); all when absent. */
  onlyChunks?: readonly number[];
  /** The manifest alone (a re-offer): a receiver that lacks the image asks for its chunks. */
  manifestOnly?: boolean;
  requestId?: string | null;
  /** The manifest's transfer id (one per attempt); a fresh one when absent. */
  transferId?: string;
  /** The file's hash when the caller already knows it (an earlier send of the same file). */
  digest?: FileDigest;
  signal?: AbortSignal;
  onProgress?: (sent: number, total: number) => void;
}

const aborted = (signal: AbortSignal | undefined): unknown => signal?.reason ?? new NodeError('shutting_down', 'delivery aborted');

/** Resolves when `work` does, or rejects as soon as `signal` aborts (the work is left to finish alone). */
function unlessAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) return Promise.reject(aborted(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(aborted(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function wantedChunks(only: readonly number[] | undefined, chunks: number): number[] {
  if (!only) return Array.from({ length: chunks }, (_, i) => i);
  const wanted = [...new Set(only)].sort((a, b) => a - b);
  const outside = wanted.find((index) => !Number.isInteger(index) || index < 0 || index >= chunks);
  if (outside !== undefined)
    throw new NodeError('bad_request', `chunk ${outside} does not exist (the image has ${chunks} chunks)`, { details: { chunks } });
  return wanted;
}

/**
 * Publishes an image as a manifest and QoS 1 chunks (schemas/manifest.schema.json).
 *
 * The manifest goes first, after a hashing pass over the file: a receiver then knows the size, the
 * chunk count and the hash before any chunk, so it can place each chunk at its offset as it comes,
 * tell which are missing, and verify at the end. Hashing while publishing would save one read of the
 * file but put the manifest last, leaving receivers to hold chunks they cannot place yet.
 *
 * Chunks are read at their offsets from one open handle into a pool of `window` buffers, each reused
 * once the broker acknowledged its chunk: memory is window × chunk size whatever the file's size.
 * Resolves when every chunk is acknowledged; an abort rejects at once (chunks in flight are left to
 * the client).
 */
export async function publishImage(options: PublishImageOptions): Promise<Manifest> {
  const { client, image, signal } = options;
  const topics = imageTopics(options.prefix, options.nodeId, image.filename);
  const maxPacketSize = options.maxPacketSize === undefined ? brokerMaxPacketSize(client) : options.maxPacketSize;
  const chunkSize = chunkSizeFor(options.chunkSizeBytes, maxPacketSize, topics);
  const window = Math.max(1, Math.floor(options.window));
  const handle = await open(image.path, 'r').catch((err: NodeJS.ErrnoException) => {
    throw err.code === 'ENOENT' ? new NodeError('not_found', `Image not found: ${image.filename}`) : err;
  });
  try {
    const { sha256, size } = options.digest ?? (await hashHandle(handle, signal));
    const chunks = Math.ceil(size / chunkSize);
    const wanted = wantedChunks(options.onlyChunks, chunks);
    const manifest: Manifest = {
      filename: image.filename,
      size,
      sha256,
      chunk_size: chunkSize,
      chunks,
      node_id: options.nodeId,
      captured_at: image.capturedAt,
      content_type: DNG_CONTENT_TYPE,
      transfer_id: options.transferId ?? randomUUID(),
      request_id: options.requestId ?? null,
      ...(options.onlyChunks ? { resend: wanted } : {}),
    };
    await unlessAborted(client.publishAsync(topics.manifest, JSON.stringify(manifest), { qos: 1, retain: false }), signal);
    if (options.manifestOnly) return manifest;

    const free: Buffer[] = [];
    const inFlight = new Set<Promise<void>>();
    let sent = 0;
    let failure: unknown = null;
    for (const index of wanted) {
      while (inFlight.size >= window && !failure) await unlessAborted(Promise.race(inFlight), signal);
      if (failure) break;
      signal?.throwIfAborted();
      const length = Math.min(chunkSize, size - index * chunkSize);
      const buffer = free.pop() ?? Buffer.allocUnsafe(chunkSize);
      const { bytesRead } = await handle.read(buffer, 0, length, index * chunkSize);
      if (bytesRead !== length) throw new NodeError('delivery_failed', `${image.filename} changed while it was being sent`);
      // A subarray shares the pooled memory: no copy, and the buffer returns to the pool on PUBACK.
      const publish: Promise<void> = client
        .publishAsync(topics.chunk(index), buffer.subarray(0, length), { qos: 1, retain: false })
        .then(() => {
          free.push(buffer);
          sent += 1;
          options.onProgress?.(sent, wanted.length);
        })
        .catch((err: unknown) => {
          failure ??= err;
        })
        .finally(() => inFlight.delete(publish));
      inFlight.add(publish);
    }
    await unlessAborted(Promise.all(inFlight), signal);
    if (failure)
      throw new NodeError('delivery_failed', `publishing ${image.filename} failed: ${(failure as Error).message}`, { cause: failure });
    return manifest;
  } finally {
    await handle.close();
  }
}
