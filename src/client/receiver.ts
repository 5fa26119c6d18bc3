import { createHash, type Hash, randomUUID } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { IPublishPacket, MqttClient } from 'mqtt';
import { hashHandle, type Manifest } from '../delivery/manifest.js';
import { isTopicLevel } from '../mqtt/topics.js';
import { createSchemaRegistry } from '../schemas.js';
import {
  type ChunkMap,
  decodeHave,
  defaultFs,
  encodeHave,
  findPartials,
  type PartialState,
  partialPaths,
  type ReceiverFs,
  syncDir,
  writeFileDurably,
} from './partial.js';

export interface ReceivedImage {
  nodeId: string;
  filename: string;
  /** Where the verified file now is: `<outDir>/<shot>/<nodeId>/<filename>`, or `<outDir>/<nodeId>/<filename>` without a request id. */
  path: string;
  size: number;
  sha256: string;
  requestId: string | null;
  transferId: string;
  capturedAt: string;
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
  /** The name commands are sent with (`reply_to`, and the receipt's `collector`); none: no `reply_to`. */
  requester?: string;
  /** Send the node a receipt for every image once it is verified and on disk (default false). */
  receipts?: boolean;
  /** Ask for the chunks still missing after this long without progress (default 3 s). */
  missingTimeoutMs?: number;
  /** Give an image up after this many requests for missing chunks (default 5). */
  maxResends?: number;
  /** Refuse manifests announcing more (default 1 GiB). */
  maxBytes?: number;
  /** Chunks that arrive before their manifest are held in memory up to this many bytes in all (default 8 MiB); the rest are asked for again. */
  maxEarlyBytes?: number;
  /** Images received at once (default 32); see `onManifest` for what happens to the others. */
  maxTransfers?: number;
  /** Keep the subscriptions at stop: a persistent session then holds what is published meanwhile. */
  persistent?: boolean;
  /** How often a transfer's progress is made durable, for a restart to resume from (default 1 s). */
  checkpointMs?: number;
  fs?: ReceiverFs;
  onImage?: (image: ReceivedImage) => void;
  onProgress?: (progress: ReceiverProgress) => void;
  onError?: (error: { nodeId: string; filename: string; message: string }) => void;
}

interface Transfer {
  nodeId: string;
  manifest: Manifest;
  requestId: string | null;
  paths: { part: string; state: string };
  handle: FileHandle;
  /** Per chunk: 0 missing, 1 being written, 2 on disk. */
  map: ChunkMap;
  /** Chunks being written or on disk. */
  count: number;
  writes: Set<Promise<void>>;
  /** The SHA-256 of chunks [0, hashed), fed as they come in order; later ones are read back from disk. */
  hash: Hash;
  hashed: number;
  hashing: Promise<void>;
  resends: number;
  timer: NodeJS.Timeout | null;
  dirty: boolean;
  checkpointing: Promise<void>;
  finishing: boolean;
  /** Set once the last chunk is in: the verification and rename under way. */
  finished: Promise<void> | null;
}

const SAFE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const MAX_MISSING_PER_REQUEST = 5000;
/** Bounds of the small maps kept beside the transfers. */
const MAX_REMEMBERED = 1000;

/** The folder of a shot: its request id when that is a plain name, else the id with every other character replaced. */
export function shotFolder(requestId: string): string {
  const name = requestId.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^[.-]+/, '_');
  return name.slice(0, 128) || '_';
}

/** Where a received image goes: grouped by shot when it came from a capture command. */
export function imagePath(outDir: string, nodeId: string, filename: string, requestId: string | null): string {
  return requestId === null ? join(outDir, nodeId, filename) : join(outDir, shotFolder(requestId), nodeId, filename);
}

function remember<K, V>(map: Map<K, V>, key: K, value: V): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > MAX_REMEMBERED) map.delete(map.keys().next().value as K);
}

/**
 * Receives the chunked images nodes publish (schemas/manifest.schema.json). Each chunk is written at
 * its offset in a hidden part file as it comes, in any order and more than once; missing chunks are
 * asked for after a pause; the SHA-256 is computed as the chunks arrive (those that came out of order
 * are read back from disk once the gap before them is filled) and checked; the file is fsynced,
 * renamed into place and its directory fsynced, so a file in outDir is complete, verified and
 * durable. Only then is the image reported (and, with `receipts`, the node told).
 *
 * Memory stays at about one chunk whatever the image size or the number of nodes: the client is not
 * let to read the next message (nor acknowledge this one) before the chunk is on disk, so a slow disk
 * slows the broker down instead of filling memory; at most `maxTransfers` files are open.
 *
 * Progress survives a crash: every `checkpointMs` the part file is fdatasynced and then the chunks it
 * holds are written to a state file. On start, the partial images found are resumed and their
 * missing chunks asked for. A state file that claims too much only costs a failed checksum, after
 * which the image is asked for whole: nothing unverified is ever shown.
 */
export function createReceiver(options: ReceiverOptions) {
  const { client, prefix } = options;
  const fs = options.fs ?? defaultFs;
  const missingTimeoutMs = options.missingTimeoutMs ?? 3000;
  const maxResends = options.maxResends ?? 5;
  const maxBytes = options.maxBytes ?? 1024 ** 3;
  const maxEarlyBytes = options.maxEarlyBytes ?? 8 * 1024 * 1024;
  const maxTransfers = Math.max(1, options.maxTransfers ?? 32);
  const checkpointMs = options.checkpointMs ?? 1000;
  const validManifest = createSchemaRegistry().validator<Manifest>('manifest.schema.json');
  const transfers = new Map<string, Transfer>();
  /** Chunks that came before their manifest, per image, until it arrives. */
  const early = new Map<string, Array<{ index: number; data: Buffer }>>();
  let earlyBytes = 0;
  /** Each image's last completed transfer: a duplicate of its manifest or a resend of it is not received again. */
  const completed = new Map<string, { transferId: string; sha256: string; path: string }>();
  /** Images refused while `maxTransfers` were open, asked for again (oldest first) as transfers end. */
  const deferred = new Map<string, { nodeId: string; filename: string; requestId: string | null }>();
  /** The request id each of our `send` commands stands for: a resend's manifest carries the send's id. */
  const sentFor = new Map<string, string | null>();
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
  const command = (action: string, fields: Record<string, unknown>) => ({
    action,
    id: `${action}-${randomUUID()}`,
    sent_at: Date.now(),
    ...(options.requester ? { reply_to: options.requester } : {}),
    ...fields,
  });
  const publishCommand = (nodeId: string, body: Record<string, unknown>): Promise<unknown> =>
    client.publishAsync(`${prefix}/${nodeId}/cmd`, JSON.stringify(body), { qos: 1 }).catch(() => undefined);
  const sendCommand = (nodeId: string, requestId: string | null, fields: Record<string, unknown>): Promise<unknown> => {
    const body = command('send', fields);
    remember(sentFor, body.id, requestId);
    return publishCommand(nodeId, body);
  };
  const sendReceipt = (nodeId: string, image: { filename: string; sha256: string; transferId: string }): Promise<unknown> =>
    options.receipts
      ? publishCommand(
          nodeId,
          command('receipt', {
            filename: image.filename,
            sha256: image.sha256,
            transfer_id: image.transferId,
            collector: options.requester ?? 'collector',
          }),
        )
      : Promise.resolve();

  function forgetEarly(key: string): void {
    for (const chunk of early.get(key) ?? []) earlyBytes -= chunk.data.length;
    early.delete(key);
  }

  /** A transfer ended: a slot is free for the oldest image refused for want of one. */
  function freeSlot(): void {
    if (stopped) return;
    const [key, next] = deferred.entries().next().value ?? [];
    if (!key || !next || transfers.has(key)) return;
    deferred.delete(key);
    void sendCommand(next.nodeId, next.requestId, { filename: next.filename });
  }

  /** Closes a transfer; its files are removed unless `keep` (a stop, to be resumed at the next start). */
  async function drop(key: string, transfer: Transfer, keep = false): Promise<void> {
    if (transfer.timer) clearTimeout(transfer.timer);
    transfer.timer = null;
    transfer.finishing = true;
    if (transfers.get(key) === transfer) transfers.delete(key);
    await Promise.allSettled(transfer.writes);
    await transfer.checkpointing;
    if (keep) await checkpoint(transfer).catch(() => undefined);
    await transfer.handle.close().catch(() => undefined);
    if (!keep) {
      await fs.rm(transfer.paths.state, { force: true });
      await fs.rm(transfer.paths.part, { force: true });
    }
    if (!keep) freeSlot();
  }

  /** Makes the chunks on disk durable, then says so in the state file (never the other way round). */
  async function checkpoint(transfer: Transfer): Promise<void> {
    const have = encodeHave(transfer.map);
    transfer.dirty = false;
    await transfer.handle.datasync();
    const state: PartialState = { manifest: transfer.manifest, request_id: transfer.requestId, have };
    await writeFileDurably(fs, transfer.paths.state, JSON.stringify(state));
  }

  function armTimer(key: string, transfer: Transfer): void {
    if (transfer.timer) clearTimeout(transfer.timer);
    transfer.timer = setTimeout(() => void requestMissing(key, transfer), missingTimeoutMs);
  }

  async function requestMissing(key: string, transfer: Transfer): Promise<void> {
    if (stopped || transfers.get(key) !== transfer || transfer.finishing) return;
    const { manifest, nodeId } = transfer;
    if (transfer.resends >= maxResends) {
      fail(nodeId, manifest.filename, `gave up after ${maxResends} requests for missing chunks`);
      await drop(key, transfer);
      return;
    }
    transfer.resends += 1;
    const missing: number[] = [];
    for (let i = 0; i < manifest.chunks && missing.length < MAX_MISSING_PER_REQUEST; i += 1) if (transfer.map[i] === 0) missing.push(i);
    await sendCommand(nodeId, transfer.requestId, { filename: manifest.filename, chunks: missing });
    armTimer(key, transfer);
  }

  /** Feeds the hash every chunk from `hashed` on that is on disk: `data` is chunk `index`, just written. */
  async function advanceHash(transfer: Transfer, index: number, data: Buffer | null): Promise<void> {
    const { manifest } = transfer;
    if (data && index === transfer.hashed) {
      transfer.hash.update(data);
      transfer.hashed += 1;
    }
    let buffer: Buffer | null = null;
    while (transfer.hashed < manifest.chunks && transfer.map[transfer.hashed] === 2) {
      const offset = transfer.hashed * manifest.chunk_size;
      const length = Math.min(manifest.chunk_size, manifest.size - offset);
      buffer ??= Buffer.allocUnsafe(manifest.chunk_size);
      const { bytesRead } = await transfer.handle.read(buffer, 0, length, offset);
      if (bytesRead !== length) break;
      transfer.hash.update(buffer.subarray(0, length));
      transfer.hashed += 1;
    }
  }

  function finish(key: string, transfer: Transfer): Promise<void> {
    transfer.finishing = true;
    if (transfer.timer) clearTimeout(transfer.timer);
    transfer.finished = verifyAndKeep(key, transfer).finally(() => {
      transfer.finished = null;
    });
    return transfer.finished;
  }

  async function verifyAndKeep(key: string, transfer: Transfer): Promise<void> {
    await Promise.all(transfer.writes);
    await transfer.hashing;
    await transfer.checkpointing;
    const { manifest, nodeId } = transfer;
    if (transfer.count < manifest.chunks) {
      // A write failed meanwhile: that chunk is asked for again.
      transfer.finishing = false;
      return armTimer(key, transfer);
    }
    const sha256 = transfer.hashed === manifest.chunks ? transfer.hash.digest('hex') : (await hashHandle(transfer.handle)).sha256;
    if (sha256 !== manifest.sha256) {
      // Start over: a corrupted chunk cannot be told from a good one.
      fail(nodeId, manifest.filename, `checksum mismatch (got ${sha256.slice(0, 12)}…); asking for the whole image again`);
      const again = transfer.resends < maxResends;
      await drop(key, transfer);
      if (again && !stopped) await sendCommand(nodeId, transfer.requestId, { filename: manifest.filename });
      return;
    }
    // Durable before it is visible, and visible before anyone is told: fsync, rename, fsync the folder.
    await transfer.handle.sync();
    await transfer.handle.close();
    const path = imagePath(options.outDir, nodeId, manifest.filename, transfer.requestId);
    await fs.mkdir(dirname(path), { recursive: true });
    await fs.rename(transfer.paths.part, path);
    await syncDir(fs, dirname(path));
    await fs.rm(transfer.paths.state, { force: true });
    transfers.delete(key);
    remember(completed, key, { transferId: manifest.transfer_id, sha256, path });
    freeSlot();
    const image: ReceivedImage = {
      nodeId,
      filename: manifest.filename,
      path,
      size: manifest.size,
      sha256,
      requestId: transfer.requestId,
      transferId: manifest.transfer_id,
      capturedAt: manifest.captured_at,
    };
    // The receipt is on its way (queued in the client) before anyone hears of the image and stops us.
    const receipt = sendReceipt(nodeId, image);
    options.onImage?.(image);
    await receipt;
  }

  /** Starts writing a chunk at its offset; resolves once it is on disk (at once when it is not taken). */
  function writeChunk(key: string, transfer: Transfer, index: number, data: Buffer): Promise<void> {
    const { manifest } = transfer;
    if (transfer.finishing || transfer.map[index]) return Promise.resolve();
    const expected = Math.min(manifest.chunk_size, manifest.size - index * manifest.chunk_size);
    if (index >= manifest.chunks || data.length !== expected) {
      fail(transfer.nodeId, manifest.filename, `chunk ${index} has ${data.length} bytes, expected ${Math.max(0, expected)}`);
      return Promise.resolve();
    }
    transfer.map[index] = 1;
    transfer.count += 1;
    const write: Promise<void> = transfer.handle
      .write(data, 0, data.length, index * manifest.chunk_size)
      .then(() => {
        transfer.map[index] = 2;
        transfer.dirty = true;
        transfer.hashing = transfer.hashing.then(() => advanceHash(transfer, index, data)).catch(() => undefined);
      })
      .catch((err: Error) => {
        // The chunk is not on disk: forget it, so it is asked for again.
        transfer.map[index] = 0;
        transfer.count -= 1;
        fail(transfer.nodeId, manifest.filename, `cannot write chunk ${index}: ${err.message}`);
      })
      .finally(() => transfer.writes.delete(write));
    transfer.writes.add(write);
    options.onProgress?.({ nodeId: transfer.nodeId, filename: manifest.filename, received: transfer.count, chunks: manifest.chunks });
    if (transfer.count === manifest.chunks)
      void finish(key, transfer).catch((err: Error) => fail(transfer.nodeId, manifest.filename, err.message));
    else armTimer(key, transfer);
    return write;
  }

  /** Opens a transfer: a new part file, or the one an earlier run left (`map` then says what it holds). */
  async function openTransfer(
    key: string,
    nodeId: string,
    manifest: Manifest,
    requestId: string | null,
    map?: ChunkMap,
  ): Promise<Transfer> {
    const paths = partialPaths(options.outDir, nodeId, manifest.filename);
    await fs.mkdir(dirname(paths.part), { recursive: true });
    const handle = await fs.open(paths.part, map ? 'r+' : 'w+');
    const transfer: Transfer = {
      nodeId,
      manifest,
      requestId,
      paths,
      handle,
      map: map ?? new Uint8Array(manifest.chunks),
      count: map ? map.reduce((n, v) => n + (v ? 1 : 0), 0) : 0,
      writes: new Set(),
      hash: createHash('sha256'),
      hashed: 0,
      hashing: Promise.resolve(),
      resends: 0,
      timer: null,
      dirty: !map,
      checkpointing: Promise.resolve(),
      finishing: false,
      finished: null,
    };
    transfers.set(key, transfer);
    if (map) transfer.hashing = advanceHash(transfer, -1, null).catch(() => undefined);
    else await checkpoint(transfer);
    return transfer;
  }

  /** Whether `path` already holds the complete image (after a restart the in-memory record is gone). */
  async function alreadyHave(path: string, manifest: Manifest): Promise<boolean> {
    const stats = await fs.stat(path).catch(() => null);
    if (!stats || stats.size !== manifest.size) return false;
    const handle = await fs.open(path, 'r');
    try {
      return (await hashHandle(handle)).sha256 === manifest.sha256;
    } finally {
      await handle.close();
    }
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
    const requestId =
      manifest.request_id && sentFor.has(manifest.request_id) ? (sentFor.get(manifest.request_id) ?? null) : (manifest.request_id ?? null);
    const done = completed.get(key);
    if (done?.transferId === manifest.transfer_id) return;
    const current = transfers.get(key);
    // The chunks of a resend fill in a transfer being received: keep what arrived.
    if (current && current.manifest.sha256 === manifest.sha256 && current.manifest.chunk_size === manifest.chunk_size) return;
    // A resend for someone else (this image is complete here, or was never started): only some
    // chunks follow, so receiving it would mean asking for all the others.
    if (manifest.resend && !current) return void forgetEarly(key);
    // Offered again though it is here (our receipt was lost, or we restarted): receipt, no chunks.
    const path = imagePath(options.outDir, nodeId, filename, requestId);
    if (!current && (done?.sha256 === manifest.sha256 || (await alreadyHave(path, manifest)))) {
      forgetEarly(key);
      remember(completed, key, { transferId: manifest.transfer_id, sha256: manifest.sha256, path });
      return void (await sendReceipt(nodeId, { filename, sha256: manifest.sha256, transferId: manifest.transfer_id }));
    }
    if (current) await drop(key, current);
    if (stopped) return;
    // Full: refuse it for now and ask for it again when a transfer ends (the node also offers it
    // again by itself until a receipt comes); its chunks are dropped, not held.
    if (transfers.size >= maxTransfers) {
      forgetEarly(key);
      remember(deferred, key, { nodeId, filename, requestId });
      return;
    }
    deferred.delete(key);
    const transfer = await openTransfer(key, nodeId, manifest, requestId);
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
    // A late duplicate of a finished image, or one waiting for a free slot.
    if (completed.has(key) || deferred.has(key)) return undefined;
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

  /** Picks up the partial images an earlier run left; their missing chunks are asked for after the usual pause. */
  async function resume(): Promise<void> {
    for (const { nodeId, filename, state } of await findPartials(fs, options.outDir)) {
      const key = `${nodeId}/${filename}`;
      const paths = partialPaths(options.outDir, nodeId, filename);
      try {
        const saved = JSON.parse(await fs.readFile(state, 'utf8')) as PartialState;
        if (transfers.size >= maxTransfers || !SAFE_NAME.test(nodeId) || !SAFE_NAME.test(filename)) throw new Error('not resumed');
        if (!validManifest(saved.manifest) || saved.manifest.filename !== filename) throw new Error('bad state');
        const transfer = await openTransfer(
          key,
          nodeId,
          saved.manifest,
          saved.request_id ?? null,
          decodeHave(saved.have, saved.manifest.chunks),
        );
        if (transfer.count === saved.manifest.chunks) void finish(key, transfer).catch((err: Error) => fail(nodeId, filename, err.message));
        else armTimer(key, transfer);
      } catch {
        // Unreadable or over the limit: the node still owes the image (no receipt) and offers it again.
        await fs.rm(state, { force: true });
        await fs.rm(paths.part, { force: true });
      }
    }
  }

  function checkpointAll(): void {
    for (const transfer of transfers.values()) {
      if (!transfer.dirty || transfer.finishing) continue;
      transfer.checkpointing = transfer.checkpointing
        .then(() => (transfer.finishing ? undefined : checkpoint(transfer)))
        .catch((err: Error) => fail(transfer.nodeId, transfer.manifest.filename, `cannot save progress: ${err.message}`));
    }
  }

  let ticker: NodeJS.Timeout | null = null;

  return {
    async start(): Promise<void> {
      await this.prepare();
      await this.subscribe();
    },
    /** Resumes partial images and listens, before the client connects (a session's queued messages come at once). */
    async prepare(): Promise<void> {
      stopped = false;
      await resume();
      client.handleMessage = gatedHandleMessage;
      client.on('message', onMessage);
      ticker = setInterval(checkpointAll, checkpointMs);
    },
    /** Subscribes (again, after a reconnect to a broker that forgot the session). */
    async subscribe(): Promise<void> {
      await client.subscribeAsync(filters, { qos: 1 });
    },
    /** Images being received now. */
    inProgress(): ReceiverProgress[] {
      return [...transfers.values()].map((t) => ({
        nodeId: t.nodeId,
        filename: t.manifest.filename,
        received: t.count,
        chunks: t.manifest.chunks,
      }));
    },
    /** Stops receiving; partial images stay on disk, to be resumed by the next start. */
    async stop(): Promise<void> {
      stopped = true;
      if (ticker) clearInterval(ticker);
      ticker = null;
      client.off('message', onMessage);
      // Another part may have wrapped it since; then the gate stays and passes everything through.
      if (client.handleMessage === gatedHandleMessage) client.handleMessage = previousHandleMessage;
      // A persistent session keeps its subscriptions, so the broker holds what comes meanwhile.
      if (client.connected && !options.persistent) await client.unsubscribeAsync(filters).catch(() => undefined);
      for (const [key, transfer] of [...transfers]) {
        if (transfer.finished) await transfer.finished.catch(() => undefined);
        else await drop(key, transfer, true);
      }
      early.clear();
      earlyBytes = 0;
      deferred.clear();
    },
  };
}
export type Receiver = ReturnType<typeof createReceiver>;
