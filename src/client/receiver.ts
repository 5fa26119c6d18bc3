import { randomUUID } from 'node:crypto';
import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { IClientSubscribeOptions, MqttClient } from 'mqtt';
import { sha256File, type Manifest } from '../delivery/chunks.js';
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
  onImage?: (image: ReceivedImage) => void;
  onProgress?: (progress: { nodeId: string; filename: string; received: number; chunks: number }) => void;
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
 * Receives the chunked images nodes publish (schemas/manifest.schema.json): writes each chunk at its
 * offset in a temp file (memory stays at one chunk whatever the image's size), accepts chunks in any
 * order and more than once, asks the node for missing chunks after a pause, verifies the SHA-256 and
 * renames the file into place: a file in outDir is always complete and verified.
 */
export function createReceiver(options: ReceiverOptions) {
  const { client, prefix } = options;
  const missingTimeoutMs = options.missingTimeoutMs ?? 3000;
  const maxResends = options.maxResends ?? 5;
  const maxBytes = options.maxBytes ?? 1024 ** 3;
  const validManifest = createSchemaRegistry().validator<Manifest>('manifest.schema.json');
  const transfers = new Map<string, Transfer>();
  /** Chunks that came before their manifest, per image, until it arrives (bounded). */
  const early = new Map<string, Array<{ index: number; data: Buffer }>>();
  /** transfer_id of each image's last completed transfer: a redelivered manifest of it is ignored. */
  const completed = new Map<string, string>();
  const filters = [`${prefix}/+/images/+/manifest`, `${prefix}/+/images/+/chunk/+`];
  const levels = prefix.split('/').length;
  let stopped = false;

  const fail = (nodeId: string, filename: string, message: string): void => options.onError?.({ nodeId, filename, message });

  async function drop(key: string, transfer: Transfer): Promise<void> {
    if (transfer.timer) clearTimeout(transfer.timer);
    transfers.delete(key);
    await Promise.allSettled(transfer.writes);
    await transfer.handle.close().catch(() => undefined);
    await rm(transfer.tempPath, { force: true });
  }

  function armTimer(key: string, transfer: Transfer): void {
    if (transfer.timer) clearTimeout(transfer.timer);
    transfer.timer = setTimeout(() => void requestMissing(key, transfer), missingTimeoutMs);
    transfer.timer.unref();
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
    const command = { id: `resend-${randomUUID()}`, action: 'send', filename: manifest.filename, chunks: missing };
    await client.publishAsync(`${prefix}/${nodeId}/cmd`, JSON.stringify(command), { qos: 1 }).catch(() => undefined);
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
      if (transfer.resends < maxResends) {
        const command = { id: `resend-${randomUUID()}`, action: 'send', filename: manifest.filename };
        await client.publishAsync(`${prefix}/${nodeId}/cmd`, JSON.stringify(command), { qos: 1 }).catch(() => undefined);
      }
      return;
    }
    const dir = join(options.outDir, nodeId);
    const path = join(dir, manifest.filename);
    await rename(transfer.tempPath, path);
    transfers.delete(key);
    completed.delete(key);
    completed.set(key, manifest.transfer_id);
    if (completed.size > 1000) completed.delete(completed.keys().next().value as string);
    options.onImage?.({ nodeId, filename: manifest.filename, path, size, sha256, requestId: manifest.request_id });
  }

  function writeChunk(key: string, transfer: Transfer, index: number, data: Buffer): void {
    const { manifest } = transfer;
    if (transfer.finishing || transfer.received.has(index)) return;
    const expected = Math.min(manifest.chunk_size, manifest.size - index * manifest.chunk_size);
    if (index >= manifest.chunks || data.length !== expected) {
      fail(transfer.nodeId, manifest.filename, `chunk ${index} has ${data.length} bytes, expected ${Math.max(0, expected)}`);
      return;
    }
    transfer.received.add(index);
    const write: Promise<void> = transfer.handle
      .write(data, 0, data.length, index * manifest.chunk_size)
      .then(() => undefined)
      .finally(() => transfer.writes.delete(write));
    transfer.writes.add(write);
    options.onProgress?.({ nodeId: transfer.nodeId, filename: manifest.filename, received: transfer.received.size, chunks: manifest.chunks });
    if (transfer.received.size === manifest.chunks) void finish(key, transfer).catch((err: Error) => fail(transfer.nodeId, manifest.filename, err.message));
    else armTimer(key, transfer);
  }

  async function onManifest(key: string, nodeId: string, filename: string, payload: Buffer): Promise<void> {
    let manifest: unknown;
    try {
      manifest = JSON.parse(payload.toString('utf8'));
    } catch {
      return fail(nodeId, filename, 'manifest is not JSON');
    }
    if (!validManifest(manifest) || manifest.filename !== filename || manifest.node_id !== nodeId) return fail(nodeId, filename, 'invalid manifest');
    if (manifest.size > maxBytes) return fail(nodeId, filename, `image of ${manifest.size} bytes is over the limit`);
    if (manifest.chunks !== Math.ceil(manifest.size / manifest.chunk_size)) return fail(nodeId, filename, 'manifest chunk count does not match its size');
    if (completed.get(key) === manifest.transfer_id) return;
    const current = transfers.get(key);
    // A resend of the image being received: keep what arrived.
    if (current && current.manifest.sha256 === manifest.sha256 && current.manifest.chunk_size === manifest.chunk_size) return;
    if (current) await drop(key, current);
    const dir = join(options.outDir, nodeId);
    await mkdir(dir, { recursive: true });
    const tempPath = join(dir, `.${filename}.${randomUUID()}.part`);
    const handle = await open(tempPath, 'w');
    const transfer: Transfer = { nodeId, manifest, tempPath, handle, received: new Set(), writes: new Set(), resends: 0, timer: null, finishing: false };
    transfers.set(key, transfer);
    if (manifest.chunks === 0) return finish(key, transfer);
    for (const chunk of early.get(key) ?? []) writeChunk(key, transfer, chunk.index, chunk.data);
    early.delete(key);
    if (!transfer.finishing) armTimer(key, transfer);
  }

  function onMessage(topic: string, payload: Buffer): void {
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
      void onManifest(key, nodeId, filename, payload).catch((err: Error) => fail(nodeId, filename, err.message));
      return;
    }
    const index = Number(parts[levels + 4]);
    if (kind !== 'chunk' || parts.length !== levels + 5 || !Number.isInteger(index) || index < 0) return;
    const transfer = transfers.get(key);
    if (transfer) {
      writeChunk(key, transfer, index, payload);
      return;
    }
    // A late duplicate of a finished image; a new transfer's missing chunks are asked for later.
    if (completed.has(key)) return;
    const waiting = early.get(key) ?? [];
    // Chunks before their manifest are rare (the manifest goes first); keep only a few of them.
    if (waiting.length < 64) waiting.push({ index, data: payload });
    early.set(key, waiting);
  }

  return {
    async start(): Promise<void> {
      client.on('message', onMessage);
      const qos: IClientSubscribeOptions = { qos: 1 };
      await client.subscribeAsync(filters, qos);
    },
    /** Images being received now. */
    inProgress(): Array<{ nodeId: string; filename: string; received: number; chunks: number }> {
      return [...transfers.values()].map((t) => ({ nodeId: t.nodeId, filename: t.manifest.filename, received: t.received.size, chunks: t.manifest.chunks }));
    },
    async stop(): Promise<void> {
      stopped = true;
      client.off('message', onMessage);
      await client.unsubscribeAsync(filters).catch(() => undefined);
      for (const [key, transfer] of [...transfers]) await drop(key, transfer);
      early.clear();
    },
  };
}
export type Receiver = ReturnType<typeof createReceiver>;
