import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fsPromises from 'node:fs/promises';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import type { ReceiverFs } from '../src/client/partial.js';
import { connectClient } from './helpers/mqtt.js';
import { answerSends, manualImage, randomFile, startAedes, startReceiver, tempDir, waitFor, type TestBroker } from './helpers/delivery.js';

const NAME = 'capture_20260101_120000.dng';
const KB = 1024;

/** The real file system, with every fsync, close and rename written down in order. */
function recordingFs(calls: string[]): ReceiverFs {
  return {
    ...fsPromises,
    open: (async (path: string, flags?: string) => {
      const handle = await fsPromises.open(path, flags);
      const name = String(path);
      return new Proxy(handle, {
        get(target, key) {
          const value = Reflect.get(target, key, target) as unknown;
          if (typeof value !== 'function') return value;
          if (key === 'sync' || key === 'datasync' || key === 'close')
            return (...args: unknown[]) => {
              calls.push(`${String(key)} ${name}`);
              return (value as (...a: unknown[]) => unknown).apply(target, args);
            };
          return (value as (...a: unknown[]) => unknown).bind(target);
        },
      });
    }) as ReceiverFs['open'],
    rename: async (from, to) => {
      calls.push(`rename ${String(from)} ${String(to)}`);
      return fsPromises.rename(from, to);
    },
  };
}

describe('receiver durability', () => {
  let broker: TestBroker;
  let node: MqttClient;
  let controller: MqttClient;
  let dir: string;

  before(async () => {
    broker = await startAedes();
    node = await connectClient(broker.url, { clientId: 'node-side' });
    controller = await connectClient(broker.url, { clientId: 'receiver-side' });
    dir = await tempDir('durable-src');
  });
  after(async () => {
    await node.endAsync();
    await controller.endAsync();
    await broker.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('the image is fsynced, then renamed into place, then its folder fsynced; the receipt comes after', async (t) => {
    const { bytes } = await randomFile(dir, 'a.bin', 100 * KB);
    const calls: string[] = [];
    const receipts: Array<Record<string, unknown>> = [];
    const asks = await answerSends(node, { nodeId: 'sync', path: join(dir, 'a.bin'), filename: NAME, chunkSizeBytes: 32 * KB });
    t.after(() => asks.close());
    const r = await startReceiver(controller, { fs: recordingFs(calls), receipts: true, requester: 'shelf', checkpointMs: 60_000 });
    t.after(async () => {
      await r.receiver.stop();
      await rm(r.outDir, { recursive: true, force: true });
    });
    const send = manualImage(node, { nodeId: 'sync', filename: NAME, bytes, chunkSizeBytes: 32 * KB, requestId: 'shot-1' });
    await send.manifest();
    for (let i = 0; i < send.chunks; i += 1) await send.chunk(i);
    const image = await r.next();
    assert.equal(image.path, join(r.outDir, 'shot-1', 'sync', NAME), 'a shot has its own folder');
    const part = join(r.outDir, '.partial', 'shelf', 'sync', `${NAME}.part`);
    const finalDir = join(r.outDir, 'shot-1', 'sync');
    const tail = calls.slice(calls.indexOf(`sync ${part}`));
    console.log(`file system calls after the last chunk: ${tail.join('; ')}`);
    assert.deepEqual(tail.slice(0, 5), [
      `sync ${part}`,
      `close ${part}`,
      `rename ${part} ${image.path}`,
      `sync ${finalDir}`,
      `close ${finalDir}`,
    ]);
    await waitFor('the receipt', () => (asks.commands.some((c) => c['action'] === 'receipt') ? true : null));
    receipts.push(...asks.commands.filter((c) => c['action'] === 'receipt'));
    assert.equal(receipts.length, 1);
    const { id, sent_at, ...rest } = receipts[0]!;
    assert.match(String(id), /.+/);
    assert.equal(typeof sent_at, 'number');
    assert.deepEqual(rest, {
      action: 'receipt',
      reply_to: 'shelf',
      filename: NAME,
      sha256: image.sha256,
      transfer_id: 't-sync',
      collector: 'shelf',
    });
  });

  test('a receiver stopped mid-image leaves it hidden; the next one resumes it and asks only for what is missing', async (t) => {
    const { path, bytes } = await randomFile(dir, 'b.bin', 320 * KB);
    const outDir = await tempDir('durable-resume');
    t.after(() => rm(outDir, { recursive: true, force: true }));
    const first = await startReceiver(controller, { outDir, missingTimeoutMs: 60_000, checkpointMs: 50, persistent: true });
    const send = manualImage(node, { nodeId: 'resume', filename: NAME, bytes, chunkSizeBytes: 32 * KB });
    await send.manifest();
    for (const index of [0, 1, 2, 5, 6]) await send.chunk(index);
    await waitFor('five chunks in', () => (first.receiver.inProgress()[0]?.received === 5 ? true : null));
    await first.receiver.stop();
    const listed = await readdir(outDir, { recursive: true });
    assert.deepEqual(
      listed.filter((f) => !f.startsWith('.partial')),
      [],
      'nothing shown but the hidden partial folder',
    );
    const asks = await answerSends(node, { nodeId: 'resume', path, filename: NAME, chunkSizeBytes: 32 * KB });
    t.after(() => asks.close());
    const second = await startReceiver(controller, { outDir, missingTimeoutMs: 100, persistent: true });
    t.after(() => second.receiver.stop());
    const image = await second.next();
    assert.ok((await readFile(image.path)).equals(bytes));
    const asked = asks.commands.map((c) => c['chunks']);
    console.log(`chunks asked for after the restart: ${JSON.stringify(asked)}`);
    assert.deepEqual(asked[0], [3, 4, 7, 8, 9], 'only the chunks the first receiver had not saved');
    assert.deepEqual(await readdir(join(outDir, '.partial', 'receiver', 'resume')), [], 'the partial files are gone');
  });

  test('beyond maxTransfers an image waits its turn and is asked for when a slot frees', async (t) => {
    const one = await randomFile(dir, 'c1.bin', 96 * KB);
    const two = await randomFile(dir, 'c2.bin', 64 * KB);
    const r = await startReceiver(controller, { maxTransfers: 1, missingTimeoutMs: 60_000 });
    t.after(async () => {
      await r.receiver.stop();
      await rm(r.outDir, { recursive: true, force: true });
    });
    const asks = await answerSends(node, { nodeId: 'second', path: two.path, filename: NAME, chunkSizeBytes: 32 * KB });
    t.after(() => asks.close());
    const a = manualImage(node, { nodeId: 'first', filename: NAME, bytes: one.bytes, chunkSizeBytes: 32 * KB });
    const b = manualImage(node, { nodeId: 'second', filename: NAME, bytes: two.bytes, chunkSizeBytes: 32 * KB });
    await a.manifest();
    await b.manifest();
    for (let i = 0; i < b.chunks; i += 1) await b.chunk(i);
    for (let i = 0; i < a.chunks; i += 1) await a.chunk(i);
    await waitFor('both images', () => (r.images.length === 2 ? true : null));
    assert.deepEqual(
      r.images.map((image) => image.nodeId),
      ['first', 'second'],
      'the second waited for the first',
    );
    assert.deepEqual(
      asks.commands.map((c) => [c['action'], c['filename'], c['chunks']]),
      [['send', NAME, undefined]],
      'the waiting image was asked for once, whole',
    );
    assert.ok((await readFile(join(r.outDir, 'second', NAME))).equals(two.bytes));
    assert.ok((await readFile(join(r.outDir, 'first', NAME))).equals(one.bytes));
  });
});
