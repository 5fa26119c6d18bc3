import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { MqttClient } from 'mqtt';
import { NodeError } from '../errors.js';

export const DNG_CONTENT_TYPE = 'image/x-adobe-dng';

/** Room for the fixed header, the topic and (MQTT 5) properties of a chunk's PUBLISH packet. */
export const PACKET_OVERHEAD_BYTES = 1024;

export interface Manifest {
  filename: string;
  size: number;
  sha256: string;
  chunk_size: number;
  chunks: number;
  node_id: string;
  captured_at: string;
  content_type: typeof DNG_CONTENT_TYPE;
  transfer_id: string;
  request_id: string | null;
  resend?: number[];
}

export type ChunkPublisher = Pick<MqttClient, 'publishAsync'>;

export interface PublishImageOptions {
  client: ChunkPublisher;
  /** `<prefix>/<node_id>/images`: the manifest and chunks go under `<images>/<filename>/`. */
  imagesTopic: string;
  nodeId: string;
  path: string;
  filename: string;
  capturedAt: string;
  chunkSize: number;
  /** Most chunks published and not yet acknowledged (PUBACK) at once: bounds memory to window × chunk. */
  window: number;
  /** Only these chunks (a resend); all when absent. */
  only?: readonly number[];
  requestId?: string | null;
  signal?: AbortSignal;
  onProgress?: (sent: number, total: number) => void;
}

/**
 * The chunk size to use: the configured one, shrunk to fit the largest packet the broker accepts
 * (MQTT 5 brokers announce it in CONNACK; Mosquitto's `max_packet_size`, AWS IoT's 128 KB).
 */
export function effectiveChunkSize(configured: number, brokerMaxPacket: number | null | undefined): number {
  if (!brokerMaxPacket) return configured;
  const fits = brokerMaxPacket - PACKET_OVERHEAD_BYTES;
  if (fits < 1024) throw new NodeError('delivery_failed', `the broker's maximum packet size (${brokerMaxPacket} bytes) is too small for image chunks`);
  return Math.min(configured, fits);
}

/** One pass over the file: its SHA-256, streamed (never the whole file in memory). */
export async function sha256File(path: string, signal?: AbortSignal): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 256 * 1024, ...(signal ? { signal } : {}) })) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), size };
}

/**
 * Publishes an image as a manifest and QoS 1 chunks. The manifest goes first (after a hashing pass)
 * so a receiver knows the size and hash before any chunk; chunks are read at their offsets from an
 * open handle, with at most `window` unacknowledged, so memory stays at window × chunk size whatever
 * the file's size. Resolves when the broker has acknowledged every chunk.
 */
export async function publishImage(options: PublishImageOptions): Promise<Manifest> {
  const { client, chunkSize, signal } = options;
  if (!Number.isInteger(chunkSize) || chunkSize < 1) throw new TypeError('chunkSize must be a positive integer');
  const handle = await open(options.path, 'r').catch((err: NodeJS.ErrnoException) => {
    throw err.code === 'ENOENT' ? new NodeError('not_found', `Image not found: ${options.filename}`) : err;
  });
  try {
    const { sha256, size } = await sha256File(options.path, signal);
    const chunks = Math.ceil(size / chunkSize);
    const wanted = options.only ? [...new Set(options.only)].sort((a, b) => a - b) : Array.from({ length: chunks }, (_, i) => i);
    const outside = wanted.find((index) => !Number.isInteger(index) || index < 0 || index >= chunks);
    if (outside !== undefined) throw new NodeError('bad_request', `chunk ${outside} does not exist (the image has ${chunks} chunks)`);
    const manifest: Manifest = {
      filename: options.filename,
      size,
      sha256,
      chunk_size: chunkSize,
      chunks,
      node_id: options.nodeId,
      captured_at: options.capturedAt,
      content_type: DNG_CONTENT_TYPE,
      transfer_id: randomUUID(),
      request_id: options.requestId ?? null,
      ...(options.only ? { resend: wanted } : {}),
    };
    const base = `${options.imagesTopic}/${options.filename}`;
    await client.publishAsync(`${base}/manifest`, JSON.stringify(manifest), { qos: 1, retain: false });

    const inFlight = new Set<Promise<void>>();
    let sent = 0;
    let failure: unknown = null;
    for (const index of wanted) {
      if (signal?.aborted) throw signal.reason ?? new NodeError('shutting_down', 'delivery aborted');
      if (failure) break;
      while (inFlight.size >= Math.max(1, options.window)) await Promise.race(inFlight);
      const length = Math.min(chunkSize, size - index * chunkSize);
      const buffer = Buffer.allocUnsafe(length);
      const { bytesRead } = await handle.read(buffer, 0, length, index * chunkSize);
      if (bytesRead !== length) throw new NodeError('delivery_failed', `${options.filename} changed while it was being sent`);
      const publish: Promise<void> = client
        .publishAsync(`${base}/chunk/${index}`, buffer, { qos: 1, retain: false })
        .then(() => {
          sent += 1;
          options.onProgress?.(sent, wanted.length);
        })
        .catch((err: unknown) => {
          failure ??= err;
        })
        .finally(() => inFlight.delete(publish));
      inFlight.add(publish);
    }
    await Promise.all(inFlight);
    if (failure) throw new NodeError('delivery_failed', `publishing ${options.filename} failed: ${(failure as Error).message}`, { cause: failure });
    return manifest;
  } finally {
    await handle.close();
  }
}
