import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { publishImage } from '../src/delivery/chunks.js';
import { connectClient } from './helpers/mqtt.js';
import { answerSends, manualImage, randomFile, startAedes, startReceiver, tempDir, waitFor, type TestBroker } from './helpers/delivery.js';

const NAME = 'capture_20260101_120000.dng';
const KB = 1024;

describe('receiver', () => {
  let broker: TestBroker;
  let node: MqttClient;
  let controller: MqttClient;
  let dir: string;

  before(async () => {
    // Chunk 2 of `lossy` is lost on its way to the receiver the first time it passes.
    const dropped = new Set<string>();
    broker = await startAedes({
      authorizeForward: (client, packet) => {
        if (client?.id.startsWith('receiver') && packet.topic === `cameras/lossy/images/${NAME}/chunk/2` && !dropped.has(packet.topic)) {
          dropped.add(packet.topic);
          return null;
        }
        return packet;
      },
    });
    node = await connectClient(broker.url, { clientId: 'node-side' });
    controller = await connectClient(broker.url, { clientId: 'receiver-side' });
    dir = await tempDir('receiver-src');
  });
  after(async () => {
    await node.endAsync();
    await controller.endAsync();
    await broker.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('chunks in any order and repeated are reassembled byte-identical; no temp file is left', async (t) => {
    const { bytes } = await randomFile(dir, 'a.bin', 300 * KB + 7);
    const r = await startReceiver(controller, { missingTimeoutMs: 5000 });
    t.after(async () => {
      await r.receiver.stop();
      await rm(r.outDir, { recursive: true, force: true });
    });
    const send = manualImage(node, { nodeId: 'shuffle', filename: NAME, bytes, chunkSizeBytes: 64 * KB });
    await send.manifest();
    for (const index of [4, 0, 3, 3, 1, 4]) await send.chunk(index);
    assert.equal(r.images.length, 0, 'incomplete: nothing is shown');
    assert.deepEqual(
      (await r.files('shuffle')).filter((f) => !f.startsWith('.')),
      [],
      'only a hidden temp file so far',
    );
    await send.chunk(2);
    await send.chunk(0);
    const image = await r.next();
    assert.ok((await readFile(image.path)).equals(bytes));
    assert.equal(image.path, join(r.outDir, 'shuffle', NAME));
    assert.deepEqual(await r.files('shuffle'), [NAME]);
    assert.deepEqual(r.errors, []);
  });

  test('chunks that arrive before their manifest are kept and placed once it comes', async (t) => {
    const { bytes } = await randomFile(dir, 'b.bin', 200 * KB);
    const r = await startReceiver(controller, { missingTimeoutMs: 5000 });
    t.after(async () => {
      await r.receiver.stop();
      await rm(r.outDir, { recursive: true, force: true });
    });
    const asks = await answerSends(node, { nodeId: 'late', path: join(dir, 'b.bin'), filename: NAME, chunkSizeBytes: 64 * KB });
    t.after(() => asks.close());
    const send = manualImage(node, { nodeId: 'late', filename: NAME, bytes, chunkSizeBytes: 64 * KB });
    for (let i = send.chunks - 1; i >= 0; i -= 1) await send.chunk(i);
    await send.manifest();
    const image = await r.next();
    assert.ok((await readFile(image.path)).equals(bytes));
    assert.deepEqual(asks.commands, [], 'nothing had to be asked for again');
  });

  test('two nodes sending the same file name are kept apart', async (t) => {
    const one = await randomFile(dir, 'c1.bin', 100 * KB);
    const two = await randomFile(dir, 'c2.bin', 150 * KB);
    const r = await startReceiver(controller);
    t.after(async () => {
      await r.receiver.stop();
      await rm(r.outDir, { recursive: true, force: true });
    });
    const a = manualImage(node, { nodeId: 'node-a', filename: NAME, bytes: one.bytes, chunkSizeBytes: 32 * KB });
    const b = manualImage(node, { nodeId: 'node-b', filename: NAME, bytes: two.bytes, chunkSizeBytes: 32 * KB });
    await a.manifest();
    await b.manifest();
    // Interleaved, so both transfers are open at once.
    for (let i = 0; i < Math.max(a.chunks, b.chunks); i += 1) {
      if (i < a.chunks) await a.chunk(i);
      if (i < b.chunks) await b.chunk(i);
    }
    await waitFor('both images', () => (r.images.length === 2 ? true : null));
    assert.ok((await readFile(join(r.outDir, 'node-a', NAME))).equals(one.bytes));
    assert.ok((await readFile(join(r.outDir, 'node-b', NAME))).equals(two.bytes));
  });

  test('a chunk lost by the broker is asked for with the send command and recovered', async (t) => {
    const source = await randomFile(dir, 'd.bin', 500 * KB);
    const r = await startReceiver(controller, { missingTimeoutMs: 300 });
    t.after(async () => {
      await r.receiver.stop();
      await rm(r.outDir, { recursive: true, force: true });
    });
    const asks = await answerSends(node, { nodeId: 'lossy', path: source.path, filename: NAME, chunkSizeBytes: 64 * KB });
    t.after(() => asks.close());
    await publishImage({
      client: node,
      prefix: 'cameras',
      nodeId: 'lossy',
      image: { path: source.path, filename: NAME, capturedAt: new Date(0).toISOString() },
      chunkSizeBytes: 64 * KB,
      window: 4,
    });
    const image = await r.next();
    assert.ok((await readFile(image.path)).equals(source.bytes));
    assert.ok(asks.commands.length >= 1, 'the receiver asked');
    assert.deepEqual({ ...asks.commands[0], id: 'x', sent_at: 0 }, { id: 'x', action: 'send', sent_at: 0, filename: NAME, chunks: [2] });
    assert.match(String(asks.commands[0]!['id']), /.+/, 'the request carries an id');
    assert.equal(typeof asks.commands[0]!['sent_at'], 'number', 'and when it was sent, so a stale one is not acted on');
  });

  test('a corrupted chunk fails the checksum; the whole image is asked for again and nothing bad is kept', async (t) => {
    const source = await randomFile(dir, 'e.bin', 128 * KB);
    const r = await startReceiver(controller, { missingTimeoutMs: 5000 });
    t.after(async () => {
      await r.receiver.stop();
      await rm(r.outDir, { recursive: true, force: true });
    });
    const asks = await answerSends(node, { nodeId: 'flaky', path: source.path, filename: NAME, chunkSizeBytes: 64 * KB });
    t.after(() => asks.close());
    const send = manualImage(node, { nodeId: 'flaky', filename: NAME, bytes: source.bytes, chunkSizeBytes: 64 * KB });
    await send.manifest();
    await send.chunk(0, Buffer.alloc(64 * KB, 0xaa));
    await send.chunk(1);
    const image = await r.next();
    assert.ok((await readFile(image.path)).equals(source.bytes));
    assert.ok(
      r.errors.some((e) => /checksum/.test(e)),
      r.errors.join('\n'),
    );
    assert.deepEqual(
      asks.commands.map((c) => [c['action'], c['chunks']]),
      [['send', undefined]],
    );
  });

  test('a resend another receiver asked for does not start the image over here', async (t) => {
    const source = await randomFile(dir, 'f.bin', 100 * KB);
    const r = await startReceiver(controller, { missingTimeoutMs: 200 });
    t.after(async () => {
      await r.receiver.stop();
      await rm(r.outDir, { recursive: true, force: true });
    });
    const asks = await answerSends(node, { nodeId: 'shared', path: source.path, filename: NAME, chunkSizeBytes: 32 * KB });
    t.after(() => asks.close());
    const publish = (onlyChunks?: number[]) =>
      publishImage({
        client: node,
        prefix: 'cameras',
        nodeId: 'shared',
        image: { path: source.path, filename: NAME, capturedAt: new Date(0).toISOString() },
        chunkSizeBytes: 32 * KB,
        window: 4,
        ...(onlyChunks ? { onlyChunks } : {}),
      });
    await publish();
    await r.next();
    await publish([1, 2]);
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.deepEqual(r.receiver.inProgress(), []);
    assert.deepEqual(asks.commands, [], 'no request for the chunks the resend did not carry');
    assert.equal(r.images.length, 1);
  });

  test('a bad manifest or a name that is not a plain file name writes nothing', async (t) => {
    const r = await startReceiver(controller, { missingTimeoutMs: 5000 });
    t.after(async () => {
      await r.receiver.stop();
      await rm(r.outDir, { recursive: true, force: true });
    });
    await node.publishAsync(`cameras/evil/images/${NAME}/manifest`, '{"filename": 1}', { qos: 1 });
    await node.publishAsync('cameras/evil/images/../manifest', JSON.stringify({ filename: '..' }), { qos: 1 });
    await node.publishAsync('cameras/evil/images/.hidden/chunk/0', Buffer.alloc(10), { qos: 1 });
    await waitFor('the bad manifest reported', () => (r.errors.length > 0 ? true : null));
    assert.deepEqual(r.errors, [`evil/${NAME}: invalid manifest`]);
    assert.deepEqual(await readdir(r.outDir), []);
  });
});
