import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { backoffMs, BACKOFF_FLOOR_MS } from '../src/delivery/backoff.js';
import { createOutbox, OUTBOX_DIR } from '../src/delivery/outbox.js';
import { EventBus, type NodeEventMap } from '../src/events.js';
import { createImageStore } from '../src/storage/store.js';
import type { ImageStore } from '../src/storage/types.js';
import { tempDir, waitFor } from './helpers/delivery.js';

const silent = pino({ level: 'silent' });

async function storeWith(dir: string, count: number): Promise<{ store: ImageStore; names: string[]; hashes: string[] }> {
  const store = createImageStore({ dir, limitBytes: 100 * 1024 * 1024, minFreeBytes: 0, evictUndelivered: true }, silent);
  await store.start();
  const names: string[] = [];
  const hashes: string[] = [];
  for (let i = 0; i < count; i += 1) {
    const bytes = randomBytes(10_000 + i);
    const temp = `${store.tempBase()}.dng`;
    await writeFile(temp, bytes);
    names.push((await store.commit(temp, new Date(Date.UTC(2026, 0, 1, 12, 0, i)))).filename);
    hashes.push(createHash('sha256').update(bytes).digest('hex'));
  }
  return { store, names, hashes };
}

function outboxFor(dir: string, store: ImageStore, maxEntries = 100) {
  const events = new EventBus(silent);
  const seen = { delivered: [] as Array<NodeEventMap['delivered']>, failed: [] as Array<NodeEventMap['delivery_failed']> };
  events.on('test', 'delivered', (event) => void seen.delivered.push(event));
  events.on('test', 'delivery_failed', (event) => void seen.failed.push(event));
  return { outbox: createOutbox({ dir, store, events, logger: silent, maxEntries }), events, seen };
}

const onDisk = async (dir: string): Promise<string[]> => (await readdir(join(dir, OUTBOX_DIR))).sort();

describe('the durable outbox', () => {
  test('an entry keeps the hash taken at capture, moves through its states and leaves once delivered', async (t) => {
    const dir = await tempDir('outbox-states');
    const { store, names, hashes } = await storeWith(dir, 1);
    const { outbox, seen } = outboxFor(dir, store);
    t.after(async () => {
      await outbox.stop();
      await store.stop();
      await rm(dir, { recursive: true, force: true });
    });
    await outbox.start();
    const [name] = names as [string];
    await outbox.add(name, 'mqtt', 'req-1');
    assert.equal(outbox.get(name)?.sha256, hashes[0]);
    assert.deepEqual(await onDisk(dir), [`${name}.json`]);
    await outbox.transition(name, 'mqtt', 'offering', { attempts: 1, transfer_id: 't-1' });
    await outbox.transition(name, 'mqtt', 'awaiting_receipt', { next_at: Date.now() + 60_000 });
    assert.deepEqual(outbox.status('mqtt'), { ...outbox.status('mqtt'), pending: 1, awaiting_receipt: 1, delivered: 0 });
    assert.deepEqual(store.get(name).delivered, [], 'sent is not delivered');
    await assert.rejects(outbox.transition(name, 'mqtt', 'owed'), /cannot go from awaiting_receipt to owed/);
    await outbox.transition(name, 'mqtt', 'delivered');
    assert.deepEqual(seen.delivered, [{ filename: name, channel: 'mqtt', request_id: 'req-1' }]);
    assert.deepEqual(store.get(name).delivered, ['mqtt']);
    assert.deepEqual(await onDisk(dir), [], 'nothing owed: no file');
    assert.deepEqual(
      { ...outbox.status('mqtt'), last_delivered_at: null },
      {
        pending: 0,
        awaiting_receipt: 0,
        delivered: 1,
        failed: 0,
        retries: 0,
        last_error: null,
        last_delivered_at: null,
      },
    );
    await assert.rejects(outbox.transition(name, 'mqtt', 'delivered'), /not owed/);
  });

  test('after a crash every entry is read back; an offer cut short is owed again; a torn write is ignored', async (t) => {
    const dir = await tempDir('outbox-crash');
    const { store, names, hashes } = await storeWith(dir, 3);
    t.after(async () => {
      await store.stop();
      await rm(dir, { recursive: true, force: true });
    });
    const first = outboxFor(dir, store).outbox;
    await first.start();
    for (const name of names) await first.add(name, 'mqtt', null);
    await first.add(names[0]!, 'http', null);
    await first.transition(names[1]!, 'mqtt', 'offering', { attempts: 1 });
    await first.transition(names[2]!, 'mqtt', 'offering', { attempts: 1 });
    await first.transition(names[2]!, 'mqtt', 'awaiting_receipt', { next_at: Date.now() + 60_000 });
    // No stop(): the process is gone. A rename that never happened leaves a .partial behind.
    await writeFile(join(dir, OUTBOX_DIR, `${names[0]}.json.partial`), '{"filename":');

    const second = outboxFor(dir, store).outbox;
    await second.start();
    t.after(() => second.stop());
    console.log(`owed after the crash: mqtt ${second.status('mqtt').pending}, http ${second.status('http').pending}`);
    assert.equal(second.status('mqtt').pending, 3);
    assert.equal(second.status('http').pending, 1);
    assert.deepEqual(
      names.map((name) => second.get(name)?.channels.mqtt?.state),
      ['owed', 'owed', 'awaiting_receipt'],
    );
    assert.deepEqual(
      names.map((name) => second.get(name)?.sha256),
      hashes,
    );
    assert.deepEqual(
      await onDisk(dir),
      names.map((name) => `${name}.json`),
    );
  });

  test('full: the oldest owed image is given up (reported), the new one is kept', async (t) => {
    const dir = await tempDir('outbox-full');
    const { store, names } = await storeWith(dir, 3);
    const { outbox, seen } = outboxFor(dir, store, 2);
    t.after(async () => {
      await outbox.stop();
      await store.stop();
      await rm(dir, { recursive: true, force: true });
    });
    await outbox.start();
    for (const name of names) await outbox.add(name, 'mqtt', null);
    assert.equal(outbox.status('mqtt').pending, 2);
    assert.equal(outbox.status('mqtt').failed, 1);
    assert.deepEqual(
      seen.failed.map((f) => [f.filename, f.channel]),
      [[names[0], 'mqtt']],
    );
    assert.match(seen.failed[0]!.message, /outbox is full/);
    assert.deepEqual(
      await onDisk(dir),
      names.slice(1).map((name) => `${name}.json`),
    );
    assert.ok(store.get(names[0]!), 'the image itself stays stored');
  });

  test('an image deleted or evicted before delivery is given up; an upload entry of the earlier format is taken over', async (t) => {
    const dir = await tempDir('outbox-gone');
    const { store, names, hashes } = await storeWith(dir, 2);
    await mkdir(join(dir, OUTBOX_DIR), { recursive: true });
    const v1 = { filename: names[1], request_id: 'old', attempts: 2, next_at: 0, created_at: new Date().toISOString(), last_error: 'x' };
    await writeFile(join(dir, OUTBOX_DIR, `${names[1]}.json`), JSON.stringify(v1));
    const { outbox, events, seen } = outboxFor(dir, store);
    t.after(async () => {
      await outbox.stop();
      await store.stop();
      await rm(dir, { recursive: true, force: true });
    });
    await outbox.start();
    assert.equal(outbox.get(names[1]!)?.channels.http?.attempts, 2);
    assert.equal(outbox.get(names[1]!)?.sha256, hashes[1], 'hashed once, at the takeover');
    const saved = JSON.parse(await readFile(join(dir, OUTBOX_DIR, `${names[1]}.json`), 'utf8')) as { version: number; sha256: string };
    assert.deepEqual([saved.version, saved.sha256], [2, hashes[1]]);

    await outbox.add(names[0]!, 'mqtt', null);
    const image = await store.delete(names[0]!);
    events.emit('deleted', { image });
    await waitFor('the give-up', () => (seen.failed.length > 0 ? true : null));
    assert.deepEqual(
      seen.failed.map((f) => f.filename),
      [names[0]],
    );
    assert.equal(outbox.status('mqtt').pending, 0);
  });

  test('every backoff has a floor, Retry-After: 0 included', () => {
    assert.equal(backoffMs({ attempts: 1, baseMs: 1, maxMs: 60_000, retryAfterS: 0 }), BACKOFF_FLOOR_MS);
    assert.equal(backoffMs({ attempts: 1, baseMs: 0, maxMs: 0, random: () => 0 }), BACKOFF_FLOOR_MS);
    assert.equal(backoffMs({ attempts: 3, baseMs: 1000, maxMs: 60_000, random: () => 1 }), 4000);
    assert.equal(backoffMs({ attempts: 40, baseMs: 1000, maxMs: 60_000, random: () => 1 }), 60_000);
    assert.equal(backoffMs({ attempts: 1, baseMs: 1000, maxMs: 60_000, retryAfterS: 120 }), 60_000);
  });
});
