import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import type { MqttClient } from 'mqtt';
import { publishImage, type ChunkPublisher, type PublishImageOptions } from '../src/delivery/chunks.js';
import { brokerMaxPacketSize, chunkSizeFor, imageTopics, publishOverhead } from '../src/delivery/manifest.js';
import { NodeError } from '../src/errors.js';
import { createSchemaRegistry } from '../src/schemas.js';
import { collect, connectClient } from './helpers/mqtt.js';
import { mosquittoMissing, startMosquitto } from './helpers/mosquitto.js';
import { randomFile, startAedes, tempDir, type TestBroker } from './helpers/delivery.js';

const NAME = 'capture_20260101_120000.dng';
const KB = 1024;
const validManifest = createSchemaRegistry().validator('manifest.schema.json');
const missingMosquitto = mosquittoMissing();

const isCode = (code: string) => (err: unknown) => err instanceof NodeError && err.code === code;

describe('publishImage', () => {
  let broker: TestBroker;
  let publisher: MqttClient;
  let watcher: MqttClient;
  let dir: string;
  let file: { path: string; bytes: Buffer };
  // Publishes of chunk 5 of node "stalled" are held by the broker (never acknowledged) until released.
  const held: Array<() => void> = [];

  before(async () => {
    broker = await startAedes({
      authorizePublish: (_client, packet, callback) => {
        if (packet.topic.startsWith('cameras/stalled/') && packet.topic.endsWith('/chunk/5')) held.push(() => callback(null));
        else callback(null);
      },
    });
    publisher = await connectClient(broker.url);
    watcher = await connectClient(broker.url);
    dir = await tempDir('publisher');
    file = await randomFile(dir, NAME, 100 * KB + 1);
  });
  after(async () => {
    for (const release of held) release();
    await publisher.endAsync(true);
    await watcher.endAsync();
    await broker.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const options = (nodeId: string, extra: Partial<PublishImageOptions> = {}): PublishImageOptions => ({
    client: publisher,
    prefix: 'cameras',
    nodeId,
    image: { path: file.path, filename: NAME, capturedAt: '2026-01-01T12:00:00.000Z' },
    chunkSizeBytes: 32 * KB,
    window: 2,
    ...extra,
  });

  test('publishes a manifest the schema accepts, then every chunk, QoS 1', async () => {
    const seen = await collect(watcher, 'cameras/full/images/#');
    const manifest = await publishImage(options('full', { requestId: 'r-1' }));
    const messages = await seen.waitFor(() => true, 1 + 4);
    await seen.close();
    const [first, ...chunks] = messages;
    assert.equal(first!.topic, `cameras/full/images/${NAME}/manifest`, 'the manifest comes first');
    assert.ok(validManifest(first!.json()), JSON.stringify(validManifest.errors));
    assert.deepEqual(first!.json(), manifest);
    assert.equal(manifest.size, file.bytes.length);
    assert.equal(manifest.chunks, 4);
    assert.equal(manifest.chunk_size, 32 * KB);
    assert.equal(manifest.request_id, 'r-1');
    assert.equal(manifest.node_id, 'full');
    assert.equal(manifest.content_type, 'image/x-adobe-dng');
    assert.ok(messages.every((m) => m.packet.qos === 1));
    assert.deepEqual(
      chunks.map((m) => m.topic.split('/').at(-1)),
      ['0', '1', '2', '3'],
    );
    assert.ok(Buffer.concat(chunks.map((m) => m.payload)).equals(file.bytes), 'the chunks are the file');
  });

  test('a pool lends its buffers to the next transfer: at most window of them, none allocated again', async () => {
    const pool: Buffer[] = [];
    const seen = await collect(watcher, 'cameras/pooled/images/#');
    await publishImage(options('pooled', { pool }));
    assert.equal(pool.length, 2, 'the window of buffers is kept');
    const lent = new Set(pool);
    await publishImage(options('pooled', { pool }));
    assert.equal(pool.length, 2);
    assert.ok(
      pool.every((buffer) => lent.has(buffer)),
      'the same buffers came back',
    );
    // 4 chunks and a manifest per transfer, and every chunk arrived with its own bytes.
    const chunks = await seen.waitFor((m) => m.topic.includes('/chunk/'), 8);
    for (const chunk of chunks.slice(4)) {
      const index = Number(chunk.topic.split('/').at(-1));
      assert.ok(chunk.payload.equals(file.bytes.subarray(index * 32 * KB, (index + 1) * 32 * KB)), `chunk ${index}`);
    }
    await seen.close();
  });

  test('a resend publishes only the chunks asked for, and says so in the manifest', async () => {
    const seen = await collect(watcher, 'cameras/resend/images/#');
    const manifest = await publishImage(options('resend', { onlyChunks: [3, 1, 1] }));
    const messages = await seen.waitFor(() => true, 3);
    await seen.close();
    assert.deepEqual(manifest.resend, [1, 3]);
    assert.deepEqual(
      messages.slice(1).map((m) => m.topic.split('/').at(-1)),
      ['1', '3'],
    );
    assert.ok(messages[2]!.payload.equals(file.bytes.subarray(96 * KB)), 'the short last chunk');
    assert.equal(seen.messages.length, 3);
  });

  test('a chunk that does not exist is bad_request and nothing is published', async () => {
    const seen = await collect(watcher, 'cameras/bad/images/#');
    await assert.rejects(publishImage(options('bad', { onlyChunks: [4] })), isCode('bad_request'));
    await assert.rejects(
      publishImage({ ...options('bad'), image: { ...options('bad').image, path: `${file.path}.missing` } }),
      isCode('not_found'),
    );
    await watcher.publishAsync('cameras/bad/images/marker', 'x', { qos: 1 });
    const [marker] = await seen.waitFor();
    await seen.close();
    assert.equal(marker!.topic, 'cameras/bad/images/marker', 'nothing before the marker');
  });

  test('at most `window` chunks are unacknowledged at once', async () => {
    let inFlight = 0;
    let most = 0;
    const counting: ChunkPublisher = {
      publishAsync: async (topic, message, publishOptions) => {
        inFlight += 1;
        most = Math.max(most, inFlight);
        try {
          return await publisher.publishAsync(topic, message, publishOptions);
        } finally {
          inFlight -= 1;
        }
      },
    };
    await publishImage(options('window', { client: counting, chunkSizeBytes: 4 * KB, window: 3 }));
    assert.equal(most, 3);
  });

  test('an abort while the broker does not acknowledge rejects at once', async () => {
    const abort = new AbortController();
    let sent = 0;
    const publishing = publishImage(
      options('stalled', { chunkSizeBytes: 4 * KB, window: 3, signal: abort.signal, onProgress: (n) => (sent = n) }),
    );
    while (held.length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    abort.abort(new NodeError('shutting_down', 'stop'));
    await assert.rejects(publishing, isCode('shutting_down'));
    assert.ok(sent <= 5, `stopped at the stalled chunk (${sent} acknowledged)`);
  });
});

describe('chunk size against the broker maximum packet size', () => {
  const topics = imageTopics('cameras', 'node-1', NAME);

  test('a chunk PUBLISH is never larger than the limit; no limit keeps the configured size', () => {
    const size = chunkSizeFor(256 * KB, 65536, topics);
    assert.equal(size + publishOverhead(topics.chunk(9_999_999_999)), 65536);
    assert.ok(size + publishOverhead(topics.chunk(95)) <= 65536);
    assert.equal(chunkSizeFor(256 * KB, null, topics), 256 * KB);
    assert.equal(chunkSizeFor(16 * KB, 65536, topics), 16 * KB, 'a smaller configured size stays');
    assert.throws(() => chunkSizeFor(256 * KB, 900, topics), isCode('delivery_failed'));
  });

  test('Mosquitto announces max_packet_size in CONNACK and the publisher shrinks its chunks to fit', {
    skip: missingMosquitto ?? false,
  }, async () => {
    const mosquitto = await startMosquitto(['max_packet_size 20000']);
    const dir = await tempDir('publisher-mosquitto');
    const client = await connectClient(mosquitto.url, { protocolVersion: 5 });
    const watcher = await connectClient(mosquitto.url, { protocolVersion: 5 });
    try {
      assert.equal(brokerMaxPacketSize(client), 20000);
      const source = await randomFile(dir, NAME, 100 * KB);
      const seen = await collect(watcher, 'cameras/small/images/#');
      const manifest = await publishImage({
        client,
        prefix: 'cameras',
        nodeId: 'small',
        image: { path: source.path, filename: NAME, capturedAt: new Date(0).toISOString() },
        chunkSizeBytes: 256 * KB,
        window: 4,
      });
      assert.equal(manifest.chunk_size, chunkSizeFor(256 * KB, 20000, imageTopics('cameras', 'small', NAME)));
      const messages = await seen.waitFor(() => true, 1 + manifest.chunks);
      assert.ok(Buffer.concat(messages.slice(1).map((m) => m.payload)).equals(source.bytes), 'every chunk went through');
      assert.ok(client.connected, 'the broker did not cut the publisher off for an oversized packet');
    } finally {
      await client.endAsync();
      await watcher.endAsync();
      await mosquitto.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
