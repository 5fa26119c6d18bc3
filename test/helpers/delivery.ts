import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes, type AedesOptions } from 'aedes';
import type { MqttClient } from 'mqtt';
import { publishImage } from '../../src/delivery/chunks.js';
import { createReceiver, type ReceivedImage, type ReceiverOptions } from '../../src/client/receiver.js';
import { DNG_CONTENT_TYPE, type Manifest } from '../../src/delivery/manifest.js';

export interface TestBroker {
  url: string;
  broker: Aedes;
  stop(): Promise<void>;
}

/** An in-process aedes on a loopback port 0, with the hooks a test wants (dropping, stalling). */
export async function startAedes(
  hooks: Pick<AedesOptions, 'authorizeForward' | 'authorizePublish' | 'concurrency'> = {},
): Promise<TestBroker> {
  const broker = await Aedes.createBroker(hooks);
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    broker.handle(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`,
    broker,
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
      await new Promise<void>((resolve) => broker.close(() => resolve()));
    },
  };
}

export async function tempDir(name: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `camera-node-${name}-`));
}

/** A file of random bytes (incompressible, like RAW sensor data). */
export async function randomFile(dir: string, name: string, size: number): Promise<{ path: string; bytes: Buffer }> {
  const bytes = randomBytes(size);
  const path = join(dir, name);
  await writeFile(path, bytes);
  return { path, bytes };
}

export async function waitFor<T>(what: string, read: () => Promise<T | null> | T | null, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * Publishes an image's manifest and chunks by hand, in the order and with the repeats a test wants;
 * `chunk(index, data)` may publish other bytes in place of the chunk's own.
 */
export function manualImage(
  client: MqttClient,
  options: { nodeId: string; filename: string; bytes: Buffer; chunkSizeBytes: number; requestId?: string | null },
) {
  const { nodeId, filename, bytes, chunkSizeBytes: chunkSize } = options;
  const chunks = Math.ceil(bytes.length / chunkSize);
  const manifest: Manifest = {
    filename,
    size: bytes.length,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    chunk_size: chunkSize,
    chunks,
    node_id: nodeId,
    captured_at: new Date(0).toISOString(),
    content_type: DNG_CONTENT_TYPE,
    transfer_id: `t-${nodeId}`,
    request_id: options.requestId ?? null,
  };
  const base = `cameras/${nodeId}/images/${filename}`;
  return {
    chunks,
    manifest: () => client.publishAsync(`${base}/manifest`, JSON.stringify(manifest), { qos: 1 }),
    chunk: (index: number, data = bytes.subarray(index * chunkSize, (index + 1) * chunkSize)) =>
      client.publishAsync(`${base}/chunk/${index}`, data, { qos: 1 }),
  };
}

/** A receiver into a fresh temp dir, collecting images and errors; `next()` waits for the next image. */
export async function startReceiver(client: MqttClient, options: Partial<ReceiverOptions> = {}) {
  const outDir = options.outDir ?? (await tempDir('received'));
  const images: ReceivedImage[] = [];
  const errors: string[] = [];
  const waiters: Array<(image: ReceivedImage) => void> = [];
  let taken = 0;
  const receiver = createReceiver({
    client,
    prefix: 'cameras',
    outDir,
    missingTimeoutMs: 300,
    ...options,
    onImage: (image) => {
      images.push(image);
      options.onImage?.(image);
      waiters.shift()?.(image);
    },
    onError: (error) => {
      errors.push(`${error.nodeId}/${error.filename}: ${error.message}`);
      options.onError?.(error);
    },
  });
  await receiver.start();
  return {
    receiver,
    outDir,
    images,
    errors,
    next(): Promise<ReceivedImage> {
      const ready = images[taken];
      taken += 1;
      if (ready) return Promise.resolve(ready);
      return new Promise((resolve) => waiters.push(resolve));
    },
    /** Every file under outDir/<nodeId>, hidden temp files included. */
    async files(nodeId: string): Promise<string[]> {
      return (await readdir(join(outDir, nodeId)).catch(() => [] as string[])).sort();
    },
  };
}

/**
 * Plays a node's part for `send` commands on `<prefix>/<nodeId>/cmd`: republishes the file (only the
 * chunks asked for, when the command names them), as the node's delivery does.
 */
export async function answerSends(client: MqttClient, options: { nodeId: string; path: string; filename: string; chunkSizeBytes: number }) {
  const commands: Array<Record<string, unknown>> = [];
  const topic = `cameras/${options.nodeId}/cmd`;
  const onMessage = (received: string, payload: Buffer): void => {
    if (received !== topic) return;
    const command = JSON.parse(payload.toString()) as Record<string, unknown>;
    commands.push(command);
    if (command['action'] !== 'send' || command['filename'] !== options.filename) return;
    const chunks = command['chunks'];
    void publishImage({
      client,
      prefix: 'cameras',
      nodeId: options.nodeId,
      image: { path: options.path, filename: options.filename, capturedAt: new Date(0).toISOString() },
      chunkSizeBytes: options.chunkSizeBytes,
      window: 4,
      requestId: String(command['id']),
      ...(Array.isArray(chunks) ? { onlyChunks: chunks as number[] } : {}),
    });
  };
  client.on('message', onMessage);
  await client.subscribeAsync(topic, { qos: 1 });
  return {
    commands,
    async close() {
      client.off('message', onMessage);
      await client.unsubscribeAsync(topic).catch(() => undefined);
    },
  };
}

const CHUNKS_MODULE = new URL('../../src/delivery/chunks.js', import.meta.url).href;

/**
 * A node's publishing side in a process of its own, so that only its memory is measured (an
 * in-process broker queues messages for a slow subscriber, which would be counted too). It publishes
 * the file as `cameras/memory/images/<name>` and prints the largest growth of its live memory (heap
 * + ArrayBuffers after a forced collection), sampled every 4 acknowledged chunks.
 */
const PUBLISHER = `
import mqtt from 'mqtt';
import { basename } from 'node:path';
import { publishImage } from ${JSON.stringify(CHUNKS_MODULE)};
const [url, path, protocolVersion] = process.argv.slice(1);
const live = () => { gc(); const usage = process.memoryUsage(); return usage.heapUsed + usage.arrayBuffers; };
const client = await mqtt.connectAsync(url, { protocolVersion: Number(protocolVersion), reconnectPeriod: 0 });
const baseline = live();
let peak = baseline;
const started = process.hrtime.bigint();
const manifest = await publishImage({
  client, prefix: 'cameras', nodeId: 'memory',
  image: { path, filename: basename(path), capturedAt: new Date(0).toISOString() },
  chunkSizeBytes: 256 * 1024, window: 8,
  onProgress: (sent) => { if (sent % 4 === 0) peak = Math.max(peak, live()); },
});
const ms = Number(process.hrtime.bigint() - started) / 1e6;
await client.endAsync();
process.stdout.write(JSON.stringify({ growth: peak - baseline, chunks: manifest.chunks, ms }));
`;

export async function runPublisherProcess(
  url: string,
  path: string,
  protocolVersion: 4 | 5,
): Promise<{ growth: number; chunks: number; ms: number }> {
  const child = spawn(process.execPath, ['--expose-gc', '--input-type=module', '-e', PUBLISHER, url, path, String(protocolVersion)], {
    cwd: new URL('../../..', import.meta.url),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`the publisher process failed (${code}): ${stderr}`);
  return JSON.parse(stdout) as { growth: number; chunks: number; ms: number };
}
