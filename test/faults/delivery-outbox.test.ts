import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { IPublishPacket } from 'mqtt';
import { clientIdFor } from '../../src/mqtt/client-options.js';
import { startTestCollector, type TestCollector } from '../helpers/receipt-collector.js';
import { spawnDaemon, type Daemon } from '../helpers/daemon.js';
import { startAedes, tempDir } from '../helpers/delivery.js';
import { recordFigures } from '../helpers/faults-figures.js';
import { api, waitFor } from '../helpers/faults-fs.js';
import { mosquittoMissing, startMosquitto } from '../helpers/mosquitto.js';
import { startTestNode } from '../helpers/node.js';
import { startTcpProxy } from '../helpers/proxy.js';

interface MqttChannel {
  pending: number;
  awaiting_receipt: number;
  delivered: number;
  failed: number;
  retries: number;
}
// The HTTP API serves before the MQTT part has started: its channel shows up once it has.
const mqttStatus = (httpUrl: string): Promise<MqttChannel> =>
  waitFor('the MQTT delivery channel in the status', async () => {
    const { body } = await api<{ delivery: { mqtt?: MqttChannel } }>(httpUrl, '/status');
    return body.delivery.mqtt ?? null;
  });

async function capture(httpUrl: string): Promise<string> {
  const { status, body } = await api<{ file_info: { filename: string } }>(httpUrl, '/capture?deliver=mqtt', { method: 'POST' });
  assert.equal(status, 200, JSON.stringify(body));
  return body.file_info.filename;
}

/** Each file received how many times, and whether every copy is byte-identical to the node's. */
async function receivedCounts(collector: TestCollector, captureDir: string) {
  const counts = new Map<string, number>();
  let corrupt = 0;
  for (const image of collector.images) {
    counts.set(image.filename, (counts.get(image.filename) ?? 0) + 1);
    if (!(await readFile(image.path)).equals(await readFile(join(captureDir, image.filename)))) corrupt += 1;
  }
  return { counts, corrupt, twice: [...counts.values()].filter((n) => n > 1).length };
}

test('node killed (kill -9) while 5 images are owed: after the restart all 5 are delivered, each received once', {
  skip: mosquittoMissing() ?? false,
  timeout: 120_000,
}, async (t) => {
  const broker = await startMosquitto();
  const dir = await tempDir('outbox-kill9');
  const daemons: Daemon[] = [];
  let collector: TestCollector | null = null;
  t.after(async () => {
    await collector?.stop();
    for (const daemon of daemons) {
      if (daemon.child.exitCode === null && daemon.child.signalCode === null) daemon.child.kill('SIGTERM');
      await daemon.exited;
    }
    await broker.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const env = {
    NODE_ID: `kill9-${process.pid}`,
    CAPTURE_DIR: join(dir, 'images'),
    LOG_DIR: join(dir, 'logs'),
    MQTT_URL: broker.url,
    MIN_FREE_DISK_MB: '0',
    HA_DISCOVERY: 'false',
    // Re-offers an hour apart: after the restart only the outbox on disk and the collector's
    // `online` can bring the images out.
    DELIVERY_REOFFER_BASE_S: '3600',
  };
  const first = await spawnDaemon(env);
  daemons.push(first);
  const owed: string[] = [];
  for (let i = 0; i < 5; i += 1) owed.push(await capture(first.httpUrl));
  const before = await mqttStatus(first.httpUrl);
  first.child.kill('SIGKILL');
  await first.exited;

  const second = await spawnDaemon(env);
  daemons.push(second);
  const afterRestart = await mqttStatus(second.httpUrl);
  collector = await startTestCollector(broker.url);
  await collector.waitForImages(5);
  const delivered = await waitFor('5 receipts', async () => {
    const found = await mqttStatus(second.httpUrl);
    return found.delivered === 5 ? found : null;
  });
  const { counts, corrupt, twice } = await receivedCounts(collector, env.CAPTURE_DIR);
  const figures = {
    owed_at_kill: before.pending,
    owed_after_restart: afterRestart.pending,
    received: counts.size,
    lost: owed.filter((name) => !counts.has(name)).length,
    received_twice: twice,
    corrupt,
    delivered: delivered.delivered,
    pending: delivered.pending,
    outbox_files_left: (await readdir(join(env.CAPTURE_DIR, '.outbox'))).length,
  };
  console.log(figures);
  await recordFigures('node kill -9 with 5 images owed (Mosquitto)', figures);
  assert.equal(figures.owed_at_kill, 5, 'nothing was delivered before a collector came');
  assert.equal(figures.owed_after_restart, 5, 'the outbox survived kill -9');
  assert.deepEqual([...counts.keys()].sort(), owed.sort(), 'every owed image arrived');
  assert.equal(twice, 0, 'each once');
  assert.equal(corrupt, 0);
  assert.equal(figures.pending, 0);
  assert.equal(figures.outbox_files_left, 0);
});

test('10 forced reconnects during transfers: each chunk sent at most once per offer, every image delivered exactly once', {
  timeout: 180_000,
}, async (t) => {
  const ROUNDS = 10;
  // Every PUBLISH the node makes, as the broker sees it. A QoS 1 retransmission after a reconnect
  // keeps its packet id, so (topic, packet id) tells a new send from the protocol's redelivery.
  const nodeSends = new Map<string, Set<number>>();
  /** Offers (manifests without `resend`) by image, as packet ids. */
  const offers = new Map<string, Set<number>>();
  let nodeClient = '';
  let packets = 0;
  const broker = await startAedes({
    authorizePublish: (client, packet, callback) => {
      if (client?.id === nodeClient && /\/images\//.test(packet.topic)) {
        packets += 1;
        const ids = nodeSends.get(packet.topic) ?? new Set<number>();
        ids.add(packet.messageId ?? -1);
        nodeSends.set(packet.topic, ids);
        if (packet.topic.endsWith('/manifest')) {
          const manifest = JSON.parse(packet.payload.toString()) as { filename: string; resend?: number[] };
          const offered = offers.get(manifest.filename) ?? new Set<number>();
          if (!manifest.resend) offered.add(packet.messageId ?? -1);
          offers.set(manifest.filename, offered);
        }
      }
      callback(null);
    },
  });
  const host = new URL(broker.url);
  const proxy = await startTcpProxy({ host: host.hostname, port: Number(host.port) });
  // Small chunks, one in flight: a transfer is long enough to be cut in the middle.
  const node = await startTestNode({
    mqtt_url: proxy.url,
    mqtt_protocol_version: 4,
    chunk_size_kb: 4,
    delivery_window: 1,
    delivery_reoffer_base_s: 3600,
    ha_discovery: false,
  });
  nodeClient = clientIdFor(node.config.node_id);
  // Slower to ask for missing chunks than the node is to reconnect: what it asks for is counted below.
  const collector = await startTestCollector(broker.url, { missingTimeoutMs: 5000 });
  t.after(async () => {
    await collector.stop();
    await node.stop();
    await proxy.stop();
    await broker.stop();
  });
  const requested = new Map<string, number>();
  broker.broker.on('publish', (packet, client) => {
    if (client?.id !== collector.name || !packet.topic.endsWith('/cmd')) return;
    const command = JSON.parse(packet.payload.toString()) as { action: string; filename: string; chunks?: number[] };
    if (command.action !== 'send') return;
    for (const index of command.chunks ?? [])
      requested.set(`${command.filename}/${index}`, (requested.get(`${command.filename}/${index}`) ?? 0) + 1);
  });

  const seenChunks = new Map<string, number>();
  collector.client.on('message', (topic: string, _payload: Buffer, _packet: IPublishPacket) => {
    const match = /\/images\/([^/]+)\/chunk\/\d+$/.exec(topic);
    if (match?.[1]) seenChunks.set(match[1], (seenChunks.get(match[1]) ?? 0) + 1);
  });
  const filenames: string[] = [];
  for (let round = 0; round < ROUNDS; round += 1) {
    const filename = await capture(node.httpUrl);
    filenames.push(filename);
    // Cut the node's connection once this image's transfer is under way.
    await waitFor(`chunks of ${filename}`, () => ((seenChunks.get(filename) ?? 0) >= 3 ? true : null), 30_000, 2);
    await proxy.cut();
    await proxy.restore();
  }
  await collector.waitForImages(ROUNDS, 90_000);
  const status = await waitFor('every receipt', async () => {
    const found = await mqttStatus(node.httpUrl);
    return found.delivered === ROUNDS ? found : null;
  });
  const { counts, corrupt, twice } = await receivedCounts(collector, node.config.capture_dir);

  let chunkSends = 0;
  let overSent = 0;
  for (const [topic, ids] of nodeSends) {
    const match = /\/images\/([^/]+)\/(manifest|chunk\/(\d+))$/.exec(topic);
    if (!match) continue;
    if (match[2] === 'manifest') continue;
    chunkSends += ids.size;
    // One offer per image (re-offers are an hour apart), plus whatever the collector asked for.
    if (ids.size > 1 + (requested.get(`${match[1]}/${match[3]}`) ?? 0)) overSent += 1;
  }
  const { mqtt } = (await api<{ mqtt: { connects: number } }>(node.httpUrl, '/status')).body;
  const figures = {
    reconnects: mqtt.connects - 1,
    images: ROUNDS,
    offers: [...offers.values()].reduce((sum, ids) => sum + ids.size, 0),
    images_offered_twice: [...offers.values()].filter((ids) => ids.size > 1).length,
    chunk_sends: chunkSends,
    chunks_requested_again: [...requested.values()].reduce((sum, n) => sum + n, 0),
    qos1_redeliveries: packets - [...nodeSends.values()].reduce((sum, ids) => sum + ids.size, 0),
    chunks_over_once_per_offer: overSent,
    received: counts.size,
    lost: filenames.filter((name) => !counts.has(name)).length,
    received_twice: twice,
    corrupt,
    delivered: status.delivered,
  };
  console.log(figures);
  await recordFigures('10 reconnects during MQTT transfers', figures);
  assert.ok(figures.reconnects >= ROUNDS, `the node reconnected ${figures.reconnects} times`);
  assert.equal(figures.offers, ROUNDS, 'one offer per image: a reconnect resends no whole transfer');
  assert.equal(overSent, 0, 'no chunk sent twice in one offer');
  assert.deepEqual([...counts.keys()].sort(), filenames.sort(), 'every image arrived');
  assert.equal(twice, 0, 'each exactly once');
  assert.equal(corrupt, 0);
  assert.equal(status.pending, 0);
});

test('Mosquitto restarted mid-transfer: every image delivered exactly once', {
  skip: mosquittoMissing() ?? false,
  timeout: 120_000,
}, async (t) => {
  const broker = await startMosquitto();
  const node = await startTestNode({
    mqtt_url: broker.url,
    chunk_size_kb: 4,
    delivery_window: 1,
    delivery_reoffer_base_s: 10,
    ha_discovery: false,
  });
  const collector = await startTestCollector(broker.url, { missingTimeoutMs: 2000 });
  t.after(async () => {
    await collector.stop();
    await node.stop();
    await broker.stop();
  });
  const seenChunks = new Map<string, number>();
  collector.client.on('message', (topic: string) => {
    const match = /\/images\/([^/]+)\/chunk\/\d+$/.exec(topic);
    if (match?.[1]) seenChunks.set(match[1], (seenChunks.get(match[1]) ?? 0) + 1);
  });
  const filenames = [await capture(node.httpUrl), await capture(node.httpUrl), await capture(node.httpUrl)];
  await waitFor('the first transfer under way', () => ((seenChunks.get(filenames[0]!) ?? 0) >= 3 ? true : null), 30_000, 2);
  await broker.restart();
  await collector.waitForImages(filenames.length, 90_000);
  const status = await waitFor('every receipt', async () => {
    const found = await mqttStatus(node.httpUrl);
    return found.delivered === filenames.length ? found : null;
  });
  const { counts, corrupt, twice } = await receivedCounts(collector, node.config.capture_dir);
  const figures = {
    images: filenames.length,
    received: counts.size,
    lost: filenames.filter((name) => !counts.has(name)).length,
    received_twice: twice,
    corrupt,
    delivered: status.delivered,
    retries: status.retries,
  };
  console.log(figures);
  await recordFigures('Mosquitto restarted mid-transfer', figures);
  assert.deepEqual([...counts.keys()].sort(), [...filenames].sort(), 'every image arrived');
  assert.equal(twice, 0, 'each exactly once');
  assert.equal(corrupt, 0);
  assert.equal(status.pending, 0);
});
