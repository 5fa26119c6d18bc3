import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { createReceiver, type ReceivedImage } from '../src/client/receiver.js';
import { chunkSizeFor, imageTopics } from '../src/delivery/manifest.js';
import { createSchemaRegistry } from '../src/schemas.js';
import { collect, connectClient, request } from './helpers/mqtt.js';
import { mosquittoMissing, startMosquitto } from './helpers/mosquitto.js';
import { spawnDaemon } from './helpers/daemon.js';
import { startTestNode, type TestNode } from './helpers/node.js';
import { startTestCollector, type TestCollector } from './helpers/receipt-collector.js';
import { startAedes, waitFor } from './helpers/delivery.js';

const missing = mosquittoMissing();
const validManifest = createSchemaRegistry().validator('manifest.schema.json');
const STORED = 'capture_20260101_120000.dng';
const MB = 1024 * 1024;

/** A node whose store already holds a 24 MB image (found at start like any earlier capture). */
async function nodeWithImage(overrides: Parameters<typeof startTestNode>[0] = {}): Promise<{ node: TestNode; bytes: Buffer; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'camera-node-delivery-'));
  const bytes = randomBytes(24 * MB);
  await mkdir(join(dir, 'images'), { recursive: true });
  await writeFile(join(dir, 'images', STORED), bytes);
  const node = await startTestNode({ storage_limit_mb: 200, ...overrides }, { keepDir: dir });
  return { node, bytes, dir };
}

/** Receives into a temp dir; resolves with the first image. */
async function receiveOne(client: MqttClient, options: { missingTimeoutMs?: number } = {}) {
  const outDir = await mkdtemp(join(tmpdir(), 'camera-node-received-'));
  let resolveImage!: (image: ReceivedImage) => void;
  const image = new Promise<ReceivedImage>((resolve) => {
    resolveImage = resolve;
  });
  const receiver = createReceiver({
    client,
    prefix: 'cameras',
    outDir,
    missingTimeoutMs: options.missingTimeoutMs ?? 1000,
    onImage: resolveImage,
  });
  await receiver.start();
  return { outDir, receiver, image };
}

describe('chunked MQTT delivery through the embedded broker', () => {
  const cleanup: Array<() => Promise<void>> = [];
  after(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  test('a 24 MB image is sent in chunks and reassembled byte-identical', async () => {
    const { node, bytes, dir } = await nodeWithImage({ chunk_size_kb: 256 });
    cleanup.push(
      () => rm(dir, { recursive: true, force: true }),
      () => node.stop(),
    );
    const client = await connectClient(node.node.mqttUrl!);
    cleanup.push(() => client.endAsync());
    const manifests = await collect(client, `cameras/${node.config.node_id}/images/+/manifest`);
    const { outDir, receiver, image } = await receiveOne(client);
    cleanup.push(
      () => rm(outDir, { recursive: true, force: true }),
      () => receiver.stop(),
    );

    const reply = await request(client, 'cameras', node.config.node_id, { action: 'send', filename: STORED }, 60_000);
    assert.equal(reply['status'], 'success', JSON.stringify(reply));
    const received = await image;
    assert.equal(received.filename, STORED);
    assert.ok((await readFile(received.path)).equals(bytes), 'byte-identical');
    const [manifest] = await manifests.waitFor();
    assert.ok(validManifest(manifest!.json()), JSON.stringify(validManifest.errors));
    assert.equal(manifest!.json()['chunks'], 96);
    // Sent for a command, so filed under its id: <out>/<request id>/<node>/<file>.
    assert.equal(dirname(received.path), join(outDir, String(reply['id']), node.config.node_id));
    assert.deepEqual((await readdir(dirname(received.path))).sort(), [STORED], 'no temp file left');
  });

  test('chunks the broker drops are asked for again and recovered', async () => {
    // The broker loses chunks 3 and 17 on their way to the receiver, the first time they pass.
    const dropped = new Set<string>();
    const broker = await startAedes({
      authorizeForward: (client, packet) => {
        const index = /\/chunk\/(\d+)$/.exec(packet.topic)?.[1];
        if (client?.id.startsWith('receiver') && (index === '3' || index === '17') && !dropped.has(index)) {
          dropped.add(index);
          return null;
        }
        return packet;
      },
    });
    cleanup.push(() => broker.stop());
    const { node, bytes, dir } = await nodeWithImage({ chunk_size_kb: 1024, mqtt_url: broker.url, mqtt_protocol_version: 4 });
    cleanup.push(
      () => rm(dir, { recursive: true, force: true }),
      () => node.stop(),
    );
    const client = await connectClient(broker.url, { clientId: `receiver-${node.config.node_id}` });
    cleanup.push(() => client.endAsync());
    const resends = await collect(client, `cameras/${node.config.node_id}/cmd`);
    const { outDir, receiver, image } = await receiveOne(client, { missingTimeoutMs: 500 });
    cleanup.push(
      () => rm(outDir, { recursive: true, force: true }),
      () => receiver.stop(),
    );

    await client.publishAsync(
      `cameras/${node.config.node_id}/cmd`,
      JSON.stringify({ id: 'send-lossy', action: 'send', filename: STORED }),
      { qos: 1 },
    );
    const received = await image;
    assert.deepEqual([...dropped].sort(), ['17', '3']);
    assert.ok((await readFile(received.path)).equals(bytes), 'byte-identical after the resend');
    const asked = resends.messages.map((m) => m.json()).filter((c) => c['action'] === 'send' && Array.isArray(c['chunks']));
    assert.ok(asked.length >= 1, 'the receiver asked for the missing chunks');
    assert.deepEqual(asked[0]!['chunks'], [3, 17]);
  });

  test('a capture with deliver=mqtt is delivered once a collector sends its receipt', async () => {
    const node = await startTestNode();
    cleanup.push(() => node.stop());
    const client = await connectClient(node.node.mqttUrl!);
    cleanup.push(() => client.endAsync());
    const collector = await startTestCollector(node.node.mqttUrl!);
    cleanup.push(() => collector.stop());
    const reply = await request(client, 'cameras', node.config.node_id, { id: 'cap-deliver', action: 'capture', deliver: 'mqtt' });
    const filename = (reply['file_info'] as { filename: string }).filename;
    await collector.waitForImages(1);
    const [received] = collector.images;
    assert.equal(received!.filename, filename);
    assert.equal(received!.requestId, 'cap-deliver');
    assert.ok((await readFile(received!.path)).equals(await readFile(join(node.config.capture_dir, filename))));
    const status = await waitFor('the receipt', async () => {
      const found = (await request(client, 'cameras', node.config.node_id, { action: 'status' }))['node_status'] as {
        delivery: { mqtt: { delivered: number; pending: number } };
      };
      return found.delivery.mqtt.delivered === 1 ? found : null;
    });
    assert.equal(status.delivery.mqtt.pending, 0);
    const list = await request(client, 'cameras', node.config.node_id, { action: 'list' });
    assert.deepEqual((list['images'] as Array<{ delivered: string[] }>)[0]!.delivered, ['mqtt']);
  });

  test('asking for a chunk that does not exist is an error reply', async () => {
    const { node, dir } = await nodeWithImage();
    cleanup.push(
      () => rm(dir, { recursive: true, force: true }),
      () => node.stop(),
    );
    const client = await connectClient(node.node.mqttUrl!);
    cleanup.push(() => client.endAsync());
    const reply = await request(client, 'cameras', node.config.node_id, { action: 'send', filename: STORED, chunks: [100000] });
    assert.equal(reply['status'], 'error');
    assert.equal((reply['error'] as { code: string }).code, 'bad_request');
    const traversal = await request(client, 'cameras', node.config.node_id, { action: 'send', filename: '../secrets.dng' });
    assert.equal((traversal['error'] as { code: string }).code, 'invalid_filename');
  });
});

describe('chunked MQTT delivery through Mosquitto', { skip: missing ?? false }, () => {
  test('24 MB byte-identical, with chunks shrunk to the broker maximum packet size', async () => {
    const broker = await startMosquitto(['max_packet_size 65536']);
    const { node, bytes, dir } = await nodeWithImage({ mqtt_url: broker.url, chunk_size_kb: 256 });
    const client = await connectClient(broker.url, { protocolVersion: 5 });
    try {
      const manifests = await collect(client, `cameras/${node.config.node_id}/images/+/manifest`);
      const { outDir, receiver, image } = await receiveOne(client);
      try {
        const reply = await request(client, 'cameras', node.config.node_id, { action: 'send', filename: STORED }, 120_000);
        assert.equal(reply['status'], 'success', JSON.stringify(reply));
        const received = await image;
        assert.ok((await readFile(received.path)).equals(bytes), 'byte-identical');
        const [manifest] = await manifests.waitFor();
        const chunkSize = manifest!.json()['chunk_size'] as number;
        const topics = imageTopics('cameras', node.config.node_id, STORED);
        assert.ok(chunkSize < 256 * 1024, `chunk size ${chunkSize} shrunk from 256 KiB`);
        assert.equal(chunkSize, chunkSizeFor(256 * 1024, 65536, topics), 'as large as the 64 KiB packets allow');
        assert.equal(manifest!.json()['chunks'], Math.ceil(bytes.length / chunkSize));
      } finally {
        await receiver.stop();
        await rm(outDir, { recursive: true, force: true });
      }
    } finally {
      await client.endAsync();
      await node.stop();
      await broker.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// The HTTP API serves before the MQTT part has started (it loads on demand): a capture asking for
// MQTT delivery in that window owes the image to the outbox, rather than being refused. A daemon of
// its own, as users run it: in a fresh process loading mqtt.js and aedes holds that window open far
// longer than a request takes (in this process they would already be loaded).
test('a capture with deliver=mqtt while the MQTT part is still starting is accepted, then delivered', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'camera-node-early-'));
  let collector: TestCollector | null = null;
  // Resolves at "HTTP API listening", before the MQTT part is loaded.
  const daemon = await spawnDaemon({
    NODE_ID: `early-${process.pid}`,
    CAPTURE_DIR: join(dir, 'images'),
    LOG_DIR: join(dir, 'logs'),
    HA_DISCOVERY: 'false',
    MIN_FREE_DISK_MB: '0',
  });
  t.after(async () => {
    await collector?.stop();
    daemon.child.kill('SIGTERM');
    await daemon.exited;
    await rm(dir, { recursive: true, force: true });
  });
  const response = await fetch(`${daemon.httpUrl}/capture?deliver=mqtt`, { method: 'POST' });
  const body = (await response.json()) as { file_info: { filename: string } };
  assert.equal(response.status, 200, JSON.stringify(body));
  const brokerUrl = await waitFor('the embedded broker', () => {
    const record = daemon.records.find((r) => String(r['msg']).startsWith('no MQTT_URL set: started the embedded MQTT broker'));
    return record ? String(record['url']) : null;
  });
  collector = await startTestCollector(brokerUrl);
  await collector.waitForImages(1);
  assert.deepEqual(
    collector.images.map((image) => image.filename),
    [body.file_info.filename],
  );
});
