import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { createUploadOutbox, OUTBOX_DIR, type UploadOutboxOptions } from '../src/delivery/outbox.js';
import { EventBus, type NodeEventMap } from '../src/events.js';
import { createImageStore } from '../src/storage/store.js';
import type { ImageStore } from '../src/storage/types.js';
import { spawnDaemon } from './helpers/daemon.js';
import { tempDir, waitFor } from './helpers/delivery.js';

const silent = pino({ level: 'silent' });

interface Received {
  at: number;
  complete: boolean;
  body: Buffer;
}

/** A receiving server; `respond` decides each answer (it may also never answer). */
async function uploadServer(respond: (n: number, req: IncomingMessage, res: ServerResponse) => void) {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    const entry: Received = { at: Date.now(), complete: false, body: Buffer.alloc(0) };
    received.push(entry);
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      entry.complete = true;
      entry.body = Buffer.concat(chunks);
      respond(received.length, req, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/upload`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A started store holding one image, and the bytes of that image. */
async function storeWithImage(dir: string): Promise<{ store: ImageStore; filename: string; bytes: Buffer }> {
  const store = createImageStore({ dir, limitBytes: 100 * 1024 * 1024, minFreeBytes: 0, evictUndelivered: true }, silent);
  await store.start();
  const bytes = randomBytes(300 * 1024);
  const temp = `${store.tempBase()}.dng`;
  await writeFile(temp, bytes);
  const image = await store.commit(temp, new Date());
  return { store, filename: image.filename, bytes };
}

function outbox(dir: string, store: ImageStore, url: string, overrides: Partial<UploadOutboxOptions> = {}) {
  const events = new EventBus(silent);
  const seen: { delivered: Array<NodeEventMap['delivered']>; failed: Array<NodeEventMap['delivery_failed']> } = {
    delivered: [],
    failed: [],
  };
  events.on('test', 'delivered', (event) => void seen.delivered.push(event));
  events.on('test', 'delivery_failed', (event) => void seen.failed.push(event));
  const box = createUploadOutbox({
    dir,
    store,
    events,
    logger: silent,
    nodeId: 'node-1',
    url,
    method: 'PUT',
    headers: {},
    idleTimeoutMs: 5000,
    retryBaseMs: 50,
    retryMaxMs: 60_000,
    maxAttempts: 0,
    ...overrides,
  });
  return { box, events, seen };
}

const entryOnDisk = async (dir: string, filename: string): Promise<Record<string, unknown> | null> =>
  JSON.parse(await readFile(join(dir, OUTBOX_DIR, `${filename}.json`), 'utf8').catch(() => 'null')) as Record<string, unknown> | null;

describe('upload outbox', () => {
  test('Retry-After is honoured, kept on disk, and still waited for after a restart', async (t) => {
    const dir = await tempDir('outbox');
    const server = await uploadServer((_n, _req, res) => res.writeHead(429, { 'retry-after': '120' }).end());
    const { store, filename } = await storeWithImage(dir);
    t.after(async () => {
      await server.close();
      await store.stop();
      await rm(dir, { recursive: true, force: true });
    });
    const first = outbox(dir, store, server.url, { retryMaxMs: 600_000 });
    await first.box.start();
    await first.box.enqueue(filename, 'req-1');
    const entry = await waitFor('the retry on disk', async () => {
      const found = await entryOnDisk(dir, filename);
      return found && found['attempts'] === 1 ? found : null;
    });
    assert.ok(Number(entry['next_at']) - Date.now() > 110_000, 'the next attempt is 120 s away, not the 50 ms backoff');
    assert.match(String(first.box.status().last_error), /429/);
    assert.equal(first.box.status().pending, 1);
    await first.box.stop();

    const second = outbox(dir, store, server.url, { retryMaxMs: 600_000 });
    await second.box.start();
    assert.equal(second.box.status().pending, 1, 'the entry survived');
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(server.received.length, 1, 'no attempt before the server said');
    await second.box.stop();
  });

  test('failures back off exponentially; given up after max attempts, reported and removed', async (t) => {
    const dir = await tempDir('outbox');
    const server = await uploadServer((_n, _req, res) => res.writeHead(503).end());
    const { store, filename } = await storeWithImage(dir);
    t.after(async () => {
      await server.close();
      await store.stop();
      await rm(dir, { recursive: true, force: true });
    });
    // Jitter at its top: each wait is exactly the backoff ceiling (100, 200 ms).
    const { box, seen } = outbox(dir, store, server.url, { retryBaseMs: 100, maxAttempts: 3, random: () => 1 });
    await box.start();
    t.after(() => box.stop());
    await box.enqueue(filename, 'req-2');
    await waitFor('the give-up', () => (seen.failed.length === 1 ? true : null));
    const [a, b, c] = server.received.map((r) => r.at);
    assert.equal(server.received.length, 3);
    assert.ok(b! - a! >= 95 && c! - b! >= 195, `waits of ${b! - a!} and ${c! - b!} ms`);
    assert.equal(seen.failed[0]!.filename, filename);
    assert.equal(seen.failed[0]!.channel, 'http');
    assert.equal(seen.failed[0]!.request_id, 'req-2');
    assert.match(seen.failed[0]!.message, /503.*3 attempts/);
    assert.deepEqual(await readdir(join(dir, OUTBOX_DIR)), []);
    assert.deepEqual({ pending: box.status().pending, failed: box.status().failed }, { pending: 0, failed: 1 });
    assert.deepEqual(store.get(filename).delivered, [], 'not marked delivered');
  });

  test('stop() aborts the upload in flight; the next start sends it, exactly once, and marks it delivered', async (t) => {
    const dir = await tempDir('outbox');
    let answer = false;
    // The first request is read whole but never answered; later ones are accepted.
    const server = await uploadServer((n, _req, res) => {
      if (answer) res.writeHead(201).end();
      else if (n > 1) res.writeHead(500).end();
    });
    const { store, filename, bytes } = await storeWithImage(dir);
    t.after(async () => {
      await server.close();
      await store.stop();
      await rm(dir, { recursive: true, force: true });
    });
    const first = outbox(dir, store, server.url);
    await first.box.start();
    await first.box.enqueue(filename, 'req-3');
    await waitFor('the upload in flight', () => (server.received[0]?.complete ? true : null));
    await first.box.stop();
    assert.ok(await entryOnDisk(dir, filename), 'still queued on disk');
    assert.deepEqual(first.seen, { delivered: [], failed: [] });

    answer = true;
    const second = outbox(dir, store, server.url);
    await second.box.start();
    t.after(() => second.box.stop());
    await waitFor('the delivery', () => (second.seen.delivered.length === 1 ? true : null));
    assert.deepEqual(second.seen.delivered, [{ filename, channel: 'http', request_id: 'req-3' }]);
    assert.equal(server.received.length, 2);
    assert.ok(server.received[1]!.body.equals(bytes));
    assert.deepEqual(store.get(filename).delivered, ['http']);
    assert.equal(await entryOnDisk(dir, filename), null);
    assert.equal(second.box.status().pending, 0);
    assert.ok(second.box.status().last_delivered_at);
  });

  test('an upload queued when the process is killed (kill -9) is sent at the next start', async (t) => {
    const dir = await tempDir('outbox-daemon');
    const stalled = await uploadServer(() => undefined);
    const accepting = await uploadServer((_n, _req, res) => res.writeHead(200).end());
    t.after(async () => {
      await stalled.close();
      await accepting.close();
      await rm(dir, { recursive: true, force: true });
    });
    const env = {
      NODE_ID: 'outbox-node',
      CAPTURE_DIR: join(dir, 'images'),
      LOG_DIR: join(dir, 'logs'),
      MQTT_ENABLED: 'false',
      MIN_FREE_DISK_MB: '0',
      UPLOAD_METHOD: 'PUT',
    };
    const first = await spawnDaemon({ ...env, UPLOAD_URL: stalled.url });
    const captured = (await (await fetch(`${first.httpUrl}/capture?deliver=http`, { method: 'POST' })).json()) as {
      file_info: { filename: string };
    };
    await waitFor('the upload in flight', () => (stalled.received.length > 0 ? true : null));
    first.child.kill('SIGKILL');
    await first.exited;

    const second = await spawnDaemon({ ...env, UPLOAD_URL: accepting.url });
    t.after(async () => {
      second.child.kill('SIGTERM');
      await second.exited;
    });
    const image = await waitFor('the delivered mark', async () => {
      const list = (await (await fetch(`${second.httpUrl}/images`)).json()) as Array<{ filename: string; delivered: string[] }>;
      return list[0]?.delivered.includes('http') ? list[0] : null;
    });
    assert.equal(image.filename, captured.file_info.filename);
    assert.equal(accepting.received.length, 1);
    assert.ok(accepting.received[0]!.body.equals(await readFile(join(dir, 'images', image.filename))));
    assert.deepEqual(await readdir(join(dir, 'images', OUTBOX_DIR)), []);
  });
});
