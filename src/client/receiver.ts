import { randomUUID } from 'node:crypto';
import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { IPublishPacket, MqttClient } from 'mqtt';
import { sha256File, type Manifest } from '../delivery/manifest.js';
import { isTopicLevel } from '../mqtt/topics.js';
import { createSchemaRegistry } from '../schemas.js';

export interface ReceivedImage {
  nodeId: string;
  filename: string;
  /** Where the verified file now is: `<outDir>/<nodeId>/<filename>`. */
  path: string;
  size: number;
  sha256: string;
  requestId: string | null;
}

export interface ReceiverProgress {
  nodeId: string;
  filename: string;
  received: number;
  chunks: number;
}

export interface ReceiverOptions {
  client: MqttClient;
  prefix: string;
  outDir: string;
  /** Only images from these nodes (default: every node). */
  nodes?: readonly string[];
  /** Ask for the chunks still missing after this long without progress (default 3 s). */
  missingTimeoutMs?: number;
  /** Give an image up after this many requests for missing chunks (default 5). */
  maxResends?: number;
  /** Refuse manifests announcing more (default 1 GiB). */
  maxBytes?: number;
  /** Chunks that arrive before their manifest are held in memory up to this many bytes in all (default 8 MiB); the rest are asked for again. */
  maxEarlyBytes?: number;
  onImage?: (image: ReceivedImage) => void;
  onProgress?: (progress: ReceiverProgress) => void;
  onError?: (error: { nodeId: string; filename: string; message: string }) => void;
}

interface Transfer {
  nodeId: string;
  manifest: Manifest;
  tempPath: string;
  handle: FileHandle;
  received: Set<number>;
  writes: Set<Promise<void>>;
  resends: number;
  timer: NodeJS.Timeout | null;
  finishing: boolean;
}

const SAFE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const MAX_MISSING_PER_REQUEST = 5000;

/**
 * Receives the chunked images nodes publish (schemas/manifest.schema.json) into
 * `<outDir>/<nodeId>/<filename>`: each chunk is written at its offset in a temp file as it comes,
 * in any order and more than once; missing chunks are asked for after a pause; the SHA-256 is checked
 * and the file renamed into place, so a file in outDir is always complete and verified.
 *
 * Memory stays at about one chunk whatever the image size: the client is not let to read the next
 * message (nor acknowledge this one) before the chunk is on disk, so a slow disk slows the broker
 * down instead of filling memory.
 */
export function createReceiver(options: ReceiverOptions) {
  const { client, prefix } = options;
  const missingTimeoutMs = options.missingTimeoutMs ?? 3000;
  const maxResends = options.maxResends ?? 5;
  const maxBytes = options.maxBytes ?? 1024 ** 3;
  const maxEarlyBytes = options.maxEarlyBytes ?? 8 * 1024 * 1024;
  const validManifest = createSchemaRegistry().validator<Manifest>('manifest.schema.json');
  const transfers = new Map<string, Transfer>();
  /** Chunks that came before their manifest, per image, until it arrives. */
  const early = new Map<string, Array<{ index: number; data: Buffer }>>();
  let earlyBytes = 0;
  /** Each image's last completed transfer: a duplicate of its manifest or a resend of it is not received again. */
  const completed = new Map<string, { transferId: string; sha256: string }>();
  /** Chunk writes in progress, by the packet that carried them, for the backpressure gate. */
  const pendingWrites = new WeakMap<IPublishPacket, Promise<void>>();
  const filters = [`${prefix}/+/images/+/manifest`, `${prefix}/+/images/+/chunk/+`];
  const levels = prefix.split('/').length;
  const previousHandleMessage = client.handleMessage;
  let stopped = false;

  // mqtt.js reads the next packet (and acknowledges this one) only when handleMessage calls back.
  const gatedHandleMessage: MqttClient['handleMessage'] = (packet, callback) => {
    const write = pendingWrites.get(packet);
    if (!write) return previousHandleMessage.call(client, packet, callback);
    pendingWrites.delete(packet);
    void write.finally(() => previousHandleMessage.call(client, packet, callback));
  };

  const fail = (nodeId: string, filename: string, message: string): void => options.onError?.({ nodeId, filename, message });
  const sendCommand = (nodeId: string, command: Record<string, unknown>): Promise<unknown> =>
    client
      .publishAsync(
        `${prefix}/${nodeId}/cmd`,
        JSON.stringify({ id: `resend-${randomUUID()}`, action: 'send', sent_at: Date.now(), ...command }),
        { qos: 1 },
      )
      .catch(() => undefined);

  function forgetEarly(key: string): void {
    for (const chunk of early.get(key) ?? []) earlyBytes -= chunk.data.length;
    early.delete(key);
  }

  async function drop(key: string, transfer: Transfer): Promise<void> {
    if (transfer.timer) clearTimeout(transfer.timer);
    if (transfers.get(key) === transfer) transfers.delete(key);
    await Promise.allSettled(transfer.writes);
    await transfer.handle.close().catch(() => undefined);
    await rm(transfer.tempPath, { force: true });
  }

  function armTimer(key: string, transfer: Transfer): void {
    if (transfer.timer) clearTimeout(transfer.timer);
    transfer.timer = setTimeout(() => void requestMissing(key, transfer), missingTimeoutMs);
  }

  async function requestMissing(key: string, transfer: Transfer): Promise<void> {
    if (stopped || transfers.get(key) !== transfer) return;
    const { manifest, nodeId } = transfer;
    if (transfer.resends >= maxResends) {
      fail(nodeId, manifest.filename, `gave up after ${maxResends} requests for missing chunks`);
      await drop(key, transfer);
      return;
    }
    transfer.resends += 1;
    const missing: number[] = [];
    for (let i = 0; i < manifest.chunks && missing.length < MAX_MISSING_PER_REQUEST; i += 1) if (!transfer.received.has(i)) missing.push(i);
    await sendCommand(nodeId, { filename: manifest.filename, chunks: missing });
    armTimer(key, transfer);
  }

  async function finish(key: string, transfer: Transfer): Promise<void> {
    transfer.finishing = true;
    if (transfer.timer) clearTimeout(transfer.timer);
    await Promise.all(transfer.writes);
    await transfer.handle.close();
    const { manifest, nodeId } = transfer;
    const { sha256, size } = await sha256File(transfer.tempPath);
    if (sha256 !== manifest.sha256 || size !== manifest.size) {
      // Start over: a corrupted chunk cannot be told from a good one.
      transfers.delete(key);
      await rm(transfer.tempPath, { force: true });
      fail(nodeId, manifest.filename, `checksum mismatch (got ${sha256.slice(0, 12)}…); asking for the whole image again`);
      if (transfer.resends < maxResends) await sendCommand(nodeId, { filename: manifest.filename });
      return;
    }
    const path = join(options.outDir, nodeId, manifest.filename);
    await rename(transfer.tempPath, path);
    transfers.delete(key);
    completed.delete(key);
    completed.set(key, { transferId: manifest.transfer_id, sha256: manifest.sha256 });
    if (completed.size > 1000) completed.delete(completed.keys().next().value as string);
    options.onImage?.({ nodeId, filename: manifest.filename, path, size, sha256, requestId: manifest.request_id });
  }

  /** Starts writing a chunk at its offset; resolves once it is on disk (at once when it is not taken). */
  function writeChunk(key: string, transfer: Transfer, index: number, data: Buffer): Promise<void> {
    const { manifest } = transfer;
    if (transfer.finishing || transfer.received.has(index)) return Promise.resolve();
    const expected = Math.min(manifest.chunk_size, manifest.size - index * manifest.chunk_size);
    if (index >= manifest.chunks || data.length !== expected) {
      fail(transfer.nodeId, manifest.filename, `chunk ${index} has ${data.length} bytes, expected ${Math.max(0, expected)}`);
      return Promise.resolve();
    }
    transfer.received.add(index);
    const write: Promise<void> = transfer.handle
      .write(data, 0, data.length, index * manifest.chunk_size)
      .then(() => undefined)
      .catch((err: Error) => {
        // The chunk is not on disk: forget it, so it is asked for again.
        transfer.received.delete(index);
        fail(transfer.nodeId, manifest.filename, `cannot write chunk ${index}: ${err.message}`);
      })
      .finally(() => transfer.writes.delete(write));
    transfer.writes.add(write);
    options.onProgress?.({
      nodeId: transfer.nodeId,
      filename: manifest.filename,
      received: transfer.received.size,
      chunks: manifest.chunks,
    });
    if (transfer.received.size === manifest.chunks)
      void finish(key, transfer).catch((err: Error) => fail(transfer.nodeId, manifest.filename, err.message));
    else armTimer(key, transfer);
    return write;
  }

  async function onManifest(key: string, nodeId: string, filename: string, payload: Buffer): Promise<void> {
    let manifest: unknown;
    try {
      manifest = JSON.parse(payload.toString('utf8'));
    } catch {
      return fail(nodeId, filename, 'manifest is not JSON');
    }
    if (!validManifest(manifest) || manifest.filename !== filename || manifest.node_id !== nodeId)
      return fail(nodeId, filename, 'invalid manifest');
    if (manifest.size > maxBytes) return fail(nodeId, filename, `image of ${manifest.size} bytes is over the limit`);
    if (manifest.chunks !== Math.ceil(manifest.size / manifest.chunk_size))
      return fail(nodeId, filename, 'manifest chunk count does not match its size');
    if (completed.get(key)?.transferId === manifest.transfer_id) return;
    const current = transfers.get(key);
    // The chunks of a resend fill in a transfer being received: keep what arrived.
    if (current && current.manifest.sha256 === manifest.sha256 && current.manifest.chunk_size === manifest.chunk_size) return;
    // A resend for someone else (this image is complete here, or was never started): only some
    // chunks follow, so receiving it would mean asking for all the others.
    if (manifest.resend && (!current || current.manifest.sha256 !== manifest.sha256)) {
      forgetEarly(key);
      return;
    }
    if (current) await drop(key, current);
    const dir = join(options.outDir, nodeId);
    await mkdir(dir, { recursive: true });
    const tempPath = join(dir, `.${filename}.${randomUUID()}.part`);
    const handle = await open(tempPath, 'w');
    const transfer: Transfer = {
      nodeId,
      manifest,
      tempPath,
      handle,
      received: new Set(),
      writes: new Set(),
      resends: 0,
      timer: null,
      finishing: false,
    };
    if (stopped) return void (await drop(key, transfer));
    transfers.set(key, transfer);
    if (manifest.chunks === 0) return finish(key, transfer);
    const waiting = early.get(key) ?? [];
    forgetEarly(key);
    for (const chunk of waiting) void writeChunk(key, transfer, chunk.index, chunk.data);
    if (!transfer.finishing) armTimer(key, transfer);
  }

  /** Returns the write to wait for before the next message, if any. */
  function onChunk(key: string, index: number, payload: Buffer): Promise<void> | undefined {
    const transfer = transfers.get(key);
    if (transfer) return writeChunk(key, transfer, index, payload);
    // A late duplicate of a finished image; a new transfer's missing chunks are asked for later.
    if (completed.has(key)) return undefined;
    // Before the manifest (a broker that reorders, a receiver that came late): hold a bounded
    // amount; anything beyond is asked for once the manifest has come.
    if (earlyBytes + payload.length > maxEarlyBytes) return undefined;
    const waiting = early.get(key) ?? [];
    if (waiting.some((chunk) => chunk.index === index)) return undefined;
    waiting.push({ index, data: payload });
    earlyBytes += payload.length;
    early.set(key, waiting);
    return undefined;
  }

  function onMessage(topic: string, payload: Buffer, packet: IPublishPacket): void {
    if (stopped) return;
    const parts = topic.split('/');
    if (parts.slice(0, levels).join('/') !== prefix || parts[levels + 1] !== 'images') return;
    const nodeId = parts[levels] ?? '';
    const filename = parts[levels + 2] ?? '';
    const kind = parts[levels + 3];
    if (!isTopicLevel(nodeId) || !SAFE_NAME.test(nodeId) || !SAFE_NAME.test(filename)) return;
    if (options.nodes && !options.nodes.includes(nodeId)) return;
    const key = `${nodeId}/${filename}`;
    if (kind === 'manifest' && parts.length === levels + 4) {
      // The manifest is handled before the next message, so the chunks after it find their transfer.
      const handled = onManifest(key, nodeId, filename, payload).catch((err: Error) => fail(nodeId, filename, err.message));
      pendingWrites.set(packet, handled);
      return;
    }
    const index = Number(parts[levels + 4]);
    if (kind !== 'chunk' || parts.length !== levels + 5 || !Number.isInteger(index) || index < 0) return;
    const write = onChunk(key, index, payload);
    if (write) pendingWrites.set(packet, write);
  }

  return {
    async start(): Promise<void> {
      stopped = false;
      client.handleMessage = gatedHandleMessage;
      client.on('message', onMessage);
      await client.subscribeAsync(filters, { qos: 1 });
    },
    /** Images being received now. */
    inProgress(): ReceiverProgress[] {
      return [...transfers.values()].map((t) => ({
        nodeId: t.nodeId,
        filename: t.manifest.filename,
        received: t.received.size,
        chunks: t.manifest.chunks,
      }));
    },
    async stop(): Promise<void> {
      stopped = true;
      client.off('message', onMessage);
      // Another part may have wrapped it since; then the gate stays and passes everything through.
      if (client.handleMessage === gatedHandleMessage) client.handleMessage = previousHandleMessage;
      if (client.connected) await client.unsubscribeAsync(filters).catch(() => undefined);
      for (const [key, transfer] of [...transfers]) await drop(key, transfer);
      early.clear();
      earlyBytes = 0;
    },
  };
}
export type Receiver = ReturnType<typeof createReceiver>;
