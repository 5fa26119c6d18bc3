import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectAsync, type MqttClient } from 'mqtt';
import { execa } from 'execa';
import { MAIN } from './helpers/daemon.js';
import { startEmbeddedBroker } from '../src/mqtt/broker.js';
import { startTcpProxy } from './helpers/proxy.js';
import pino from 'pino';
import { EventBus } from '../src/events.js';
import { createHomeAssistant } from '../src/ha/ha.js';
import { removeHaDiscovery, parseHaRemoveArgs } from '../src/ha/remove.js';
import { discoveryTopicsFor, ENTITIES } from '../src/ha/discovery.js';
import type { ImageInfo } from '../src/storage/types.js';
import type { CameraInfo } from '../src/camera/types.js';

const logger = pino({ level: 'silent' });

/** An in-process broker on a free loopback port (retained messages kept in memory). */
const startBroker = () => startEmbeddedBroker({ host: '127.0.0.1', port: 0, logger });

/** Retained messages under a filter, as a late subscriber (Home Assistant) sees them. */
async function retained(url: string, filter: string, waitMs = 300): Promise<Map<string, Buffer>> {
  const client = await connectAsync(url, { protocolVersion: 4 });
  const seen = new Map<string, Buffer>();
  client.on('message', (topic, payload, packet) => {
    if (packet.retain) seen.set(topic, payload);
  });
  await client.subscribeAsync(filter);
  await new Promise((resolve) => setTimeout(resolve, waitMs));
  await client.endAsync();
  return seen;
}

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const image: ImageInfo = { filename: 'capture_20250101_120000.dng', size: 1000, created: '', modified: '', delivered: [] };
const camera = (sensor: string | null): CameraInfo => ({
  backend: 'simulated',
  command: 'x',
  simulated: true,
  connected: sensor !== null,
  sensor,
  cameras: [],
  mode: 'cold',
  checked_at: null,
  last_error: null,
});

function part(client: MqttClient, events: EventBus, overrides: { discovery?: boolean; sensor?: () => string | null } = {}) {
  return createHomeAssistant({
    client: () => client,
    events,
    logger,
    nodeId: 'cam-a',
    topicPrefix: 'cameras',
    haPrefix: 'homeassistant',
    version: '1.0.0',
    discovery: overrides.discovery ?? true,
    sensor: overrides.sensor ?? (() => 'imx477'),
    configurationUrl: 'http://cam-a.local:5003/status',
    republishDelayMs: 0,
  });
}

test('publishes retained discovery, republishes on Home Assistant’s birth, publishes previews; off removes', async (t) => {
  const broker = await startBroker();
  const client = await connectAsync(broker.url, { protocolVersion: 4 });
  const events = new EventBus(logger);
  t.after(async () => {
    await client.endAsync();
    await broker.stop();
  });

  let sensor: string | null = 'imx477';
  const ha = part(client, events, { sensor: () => sensor });
  await ha.start();
  const topics = discoveryTopicsFor('homeassistant', 'cam-a');
  await until(async () => (await retained(broker.url, 'homeassistant/#', 100)).size === ENTITIES.length, 'discovery');
  const configs = await retained(broker.url, 'homeassistant/#');
  assert.deepEqual([...configs.keys()].sort(), [...topics].sort());
  const button = JSON.parse(configs.get('homeassistant/button/cam-a/capture/config')?.toString() ?? '{}') as Record<string, unknown>;
  assert.equal(button['command_topic'], 'cameras/cam-a/cmd');

  // Home Assistant restarts: its birth message makes the node publish again (a watcher counts them).
  const watcher = await connectAsync(broker.url, { protocolVersion: 4 });
  t.after(() => watcher.endAsync());
  let republished = 0;
  watcher.on('message', (_topic, _payload, packet) => {
    if (!packet.retain) republished += 1;
  });
  await watcher.subscribeAsync('homeassistant/+/cam-a/+/config');
  sensor = 'imx708';
  await watcher.publishAsync('homeassistant/status', 'online');
  await until(() => republished >= ENTITIES.length, 'republish after birth');
  const model = JSON.parse(
    (await retained(broker.url, 'homeassistant/button/cam-a/capture/config'))
      .get('homeassistant/button/cam-a/capture/config')
      ?.toString() ?? '{}',
  ) as {
    device: { model: string };
  };
  assert.match(model.device.model, /imx708/);
  // "offline" (Home Assistant's last will) does not trigger anything.
  republished = 0;
  await watcher.publishAsync('homeassistant/status', 'offline');
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(republished, 0);

  // A camera swap with a new sensor model republishes the device.
  events.emit('camera_changed', { camera: camera('imx219') });
  sensor = 'imx219';
  await until(() => republished >= ENTITIES.length, 'republish after camera change');

  // A capture's preview is published retained, bytes unchanged.
  const jpeg = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 0xff, 0xd9]);
  events.emit('captured', { image, duration_ms: 10, metadata: null, preview: jpeg });
  await until(
    async () => (await retained(broker.url, 'cameras/cam-a/preview', 100)).get('cameras/cam-a/preview')?.equals(jpeg) === true,
    'preview',
  );
  // No preview (a camera app without --thumb): nothing published, the last one stays.
  events.emit('captured', { image, duration_ms: 10, metadata: null, preview: null });
  await ha.stop();
  assert.ok((await retained(broker.url, 'cameras/cam-a/preview')).get('cameras/cam-a/preview')?.equals(jpeg));
  // Stopping leaves the configs (entities go unavailable, they do not vanish).
  assert.equal((await retained(broker.url, 'homeassistant/#')).size, ENTITIES.length);
  // After stop, events and births are ignored.
  republished = 0;
  await watcher.publishAsync('homeassistant/status', 'online');
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(republished, 0);

  // HA_DISCOVERY=false at the next start removes the entities (empty retained configs).
  const off = part(client, events, { discovery: false });
  await off.start();
  await until(async () => (await retained(broker.url, 'homeassistant/#', 100)).size === 0, 'removal');
  await off.stop();
});

test('ha-remove finds camera-node configs by unique id, leaves other integrations alone', async (t) => {
  const broker = await startBroker();
  const client = await connectAsync(broker.url, { protocolVersion: 4 });
  t.after(async () => {
    await client.endAsync();
    await broker.stop();
  });
  const events = new EventBus(logger);
  for (const nodeId of ['cam-a', 'cam-b']) {
    const ha = createHomeAssistant({
      client: () => client,
      events,
      logger,
      nodeId,
      topicPrefix: 'cameras',
      haPrefix: 'homeassistant',
      version: '1',
      discovery: true,
      sensor: () => null,
      configurationUrl: null,
      republishDelayMs: 0,
    });
    await ha.start();
    await ha.publishDiscovery();
    await ha.stop();
  }
  // An entity of an older camera-node version, and one of another integration.
  await client.publishAsync('homeassistant/sensor/cam-b/old_thing/config', JSON.stringify({ unique_id: 'camera_node_cam-b_old_thing' }), {
    retain: true,
    qos: 1,
  });
  await client.publishAsync('homeassistant/light/lamp/light/config', JSON.stringify({ unique_id: 'zigbee_lamp' }), {
    retain: true,
    qos: 1,
  });
  assert.equal((await retained(broker.url, 'homeassistant/#')).size, ENTITIES.length * 2 + 2);

  const one = await removeHaDiscovery({ client, haPrefix: 'homeassistant', nodeIds: ['cam-b'], all: false, quietMs: 200 });
  assert.deepEqual(one.nodeIds, ['cam-b']);
  assert.equal(one.topics.length, ENTITIES.length + 1);
  let left = await retained(broker.url, 'homeassistant/#');
  assert.equal(left.size, ENTITIES.length + 1);
  assert.ok(left.has('homeassistant/light/lamp/light/config'));

  const all = await removeHaDiscovery({ client, haPrefix: 'homeassistant', nodeIds: [], all: true, quietMs: 200 });
  assert.deepEqual(all.nodeIds, ['cam-a']);
  left = await retained(broker.url, 'homeassistant/#');
  assert.deepEqual([...left.keys()], ['homeassistant/light/lamp/light/config']);
});

test('ha-remove arguments: --node (repeatable, comma lists), --all, the rest for the config loader', () => {
  assert.deepEqual(parseHaRemoveArgs(['--node', 'a,b', '--node=c', '--mqtt-url', 'mqtt://x', '--all']), {
    nodeIds: ['a', 'b', 'c'],
    all: true,
    rest: ['--mqtt-url', 'mqtt://x'],
  });
  assert.throws(() => parseHaRemoveArgs(['--node']), /--node needs a node id/);
});

test('`camera-node ha-remove --broker URL --node ID` clears that node’s entities', async (t) => {
  const broker = await startBroker();
  const client = await connectAsync(broker.url, { protocolVersion: 4 });
  t.after(async () => {
    await client.endAsync();
    await broker.stop();
  });
  const events = new EventBus(logger);
  const ha = part(client, events);
  await ha.start();
  await ha.publishDiscovery();
  await ha.stop();
  assert.equal((await retained(broker.url, 'homeassistant/#')).size, ENTITIES.length);

  const run = await execa(process.execPath, [MAIN, 'ha-remove', '--broker', broker.url, '--node', 'cam-a'], {
    reject: false,
    timeout: 30_000,
  });
  assert.equal(run.exitCode, 0, run.stderr);
  assert.match(run.stdout, /cam-a/);
  assert.equal((await retained(broker.url, 'homeassistant/#')).size, 0);
  // Without a node or --all it explains itself and changes nothing.
  const bare = await execa(process.execPath, [MAIN, 'ha-remove', '--broker', broker.url], { reject: false, timeout: 30_000 });
  assert.equal(bare.exitCode, 2);
  assert.match(`${bare.stdout}${bare.stderr}`, /--node ID/);
  // A usage mistake in ha-remove's own options exits 2 as well, with the usage.
  const noId = await execa(process.execPath, [MAIN, 'ha-remove', '--broker', broker.url, '--node'], { reject: false, timeout: 30_000 });
  assert.equal(noId.exitCode, 2, noId.stderr);
  assert.match(noId.stderr, /--node needs a node id[\s\S]*--broker URL/);
});

test('previews taken while offline do not pile up: only the latest is sent, once reconnected', async (t) => {
  const broker = await startBroker();
  const proxy = await startTcpProxy({ host: '127.0.0.1', port: broker.port });
  const client = await connectAsync(proxy.url, { protocolVersion: 4, reconnectPeriod: 50 });
  const watcher = await connectAsync(broker.url, { protocolVersion: 4 });
  t.after(async () => {
    await client.endAsync(true);
    await watcher.endAsync();
    await proxy.stop();
    await broker.stop();
  });
  const events = new EventBus(logger);
  const ha = part(client, events, { discovery: false });
  await ha.start();
  t.after(() => ha.stop());
  const previews: Buffer[] = [];
  watcher.on('message', (topic, payload) => {
    if (topic === 'cameras/cam-a/preview' && payload.length > 0) previews.push(payload);
  });
  await watcher.subscribeAsync('cameras/cam-a/preview', { qos: 1 });

  await proxy.cut();
  await until(() => !client.connected, 'the client offline');
  const shots = ['first', 'second', 'latest'].map((name) => Buffer.from(`\xff\xd8 ${name} \xff\xd9`, 'latin1'));
  for (const preview of shots) events.emit('captured', { image, duration_ms: 10, metadata: null, preview });
  assert.equal((client as unknown as { queue: unknown[] }).queue.length, 0, 'nothing queued in mqtt.js while offline');
  await proxy.restore();
  await until(() => previews.some((p) => p.equals(shots[2]!)), 'the latest preview after reconnecting', 10_000);
  assert.deepEqual(
    previews.map((p) => p.toString('latin1')),
    [shots[2]!.toString('latin1')],
    'the earlier ones were superseded',
  );
});
