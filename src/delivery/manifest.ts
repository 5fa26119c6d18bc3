import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { NodeError } from '../errors.js';

export const DNG_CONTENT_TYPE = 'image/x-adobe-dng';

/** What schemas/manifest.schema.json describes: published before the chunks of an image. */
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

export interface FileDigest {
  sha256: string;
  size: number;
}

/** The topics of one image's transfer: `<prefix>/<node>/images/<filename>/manifest` and `.../chunk/<i>`. */
export function imageTopics(prefix: string, nodeId: string, filename: string) {
  const base = `${prefix}/${nodeId}/images/${filename}`;
  return { manifest: `${base}/manifest`, chunk: (index: number): string => `${base}/chunk/${index}` };
}

/**
 * Bytes of a QoS 1 PUBLISH that are not payload: fixed header (1 byte + a remaining length of up to
 * 4), topic (2 + its bytes), packet id (2) and, in MQTT 5, the property length (up to 4) with room
 * for a few properties a client may add (a topic alias).
 */
export function publishOverhead(topic: string): number {
  return 1 + 4 + 2 + Buffer.byteLength(topic) + 2 + 4 + 16;
}

/** The smallest chunk worth sending: below it a broker's packet limit is a misconfiguration. */
export const MIN_CHUNK_BYTES = 1024;

/**
 * The chunk size to use: the configured one, shrunk so a whole chunk PUBLISH fits the broker's
 * Maximum Packet Size (MQTT 5 brokers announce it in CONNACK: Mosquitto's `max_packet_size`, AWS IoT's
 * 128 KB). The topic is measured with the longest chunk index there can be, so every chunk fits.
 */
export function chunkSizeFor(configured: number, maxPacketSize: number | null | undefined, topics: ReturnType<typeof imageTopics>): number {
  if (!Number.isInteger(configured) || configured < 1) throw new TypeError('the chunk size must be a positive integer');
  if (!maxPacketSize) return configured;
  const fits = maxPacketSize - publishOverhead(topics.chunk(9_999_999_999));
  if (fits < MIN_CHUNK_BYTES) {
    throw new NodeError('delivery_failed', `the broker's maximum packet size (${maxPacketSize} bytes) is too small for image chunks`);
  }
  return Math.min(configured, fits);
}

/**
 * The broker's Maximum Packet Size from the CONNACK of an mqtt.js client's current connection. mqtt.js
 * keeps the CONNACK properties in a field its types mark private, so it is read defensively; a
 * client that has none (MQTT 3.1.1, or a broker announcing no limit) gives null.
 */
export function brokerMaxPacketSize(client: object): number | null {
  const properties = (client as { _serverProperties?: { maximumPacketSize?: unknown } })._serverProperties;
  const value = properties?.maximumPacketSize;
  return typeof value === 'number' && value > 0 ? value : null;
}

const HASH_BUFFER_BYTES = 256 * 1024;

/** SHA-256 of an open file read through one reused buffer: memory stays constant whatever the size. */
export async function hashHandle(handle: FileHandle, signal?: AbortSignal): Promise<FileDigest> {
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(HASH_BUFFER_BYTES);
  let size = 0;
  for (;;) {
    signal?.throwIfAborted();
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, size);
    if (bytesRead === 0) break;
    hash.update(buffer.subarray(0, bytesRead));
    size += bytesRead;
  }
  return { sha256: hash.digest('hex'), size };
}

export async function sha256File(path: string, signal?: AbortSignal): Promise<FileDigest> {
  const handle = await open(path, 'r');
  try {
    return await hashHandle(handle, signal);
  } finally {
    await handle.close();
  }
}
