import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { startEmbeddedBroker, type EmbeddedBroker } from '../src/mqtt/broker.js';
import { reconnectDelay } from '../src/mqtt/client-options.js';
import { spawnDaemon } from './helpers/daemon.js';
import { collect, connectClient, request } from './helpers/mqtt.js';
import { freePort } from './helpers/mosquitto.js';
import { startTestNode, type TestNode } from './helpers/node.js';

const silentLogger = () => pino({ level: 'silent' });

describe('a fleet on one broker', () => {
  let broker: EmbeddedBroker;
  let left: TestNode;
  let right: TestNode;
  let client: MqttClient;

  before(async () => {
    broker = await startEmbeddedBroker({ host: '127.0.0.1', port: 0, logger: silentLogger() });
    const shared = { mqtt_url: broker.url, mqtt_protocol_version: 4 as const };
    left = await startTestNode({ ...shared, groups: ['north'] });
    right = await startTestNode({ ...shared, groups: ['south'] });
    client = await connectClient(broker.url);
  });
  after(async () => {
    await client?.endAsync();
    await left?.stop();
    await right?.stop();
    await broker?.stop();
  });

  test('a broadcast reaches every node and each answers on its own reply topic', async () => {
    const replies = await collect(client, 'cameras/+/res');
    await client.publishAsync('cameras/all/cmd', JSON.stringify({ id: 'fleet-1', action: 'status' }), { qos: 1 });
    const answers = await replies.waitFor((m) => m.json()['id'] === 'fleet-1', 2);
    await replies.close();
    assert.deepEqual(answers.map((m) => m.json()['node_id']).sort(), [left.config.node_id, right.config.node_id].sort());
    for (const answer of answers) assert.equal(answer.topic, `cameras/${answer.json()['node_id'] as string}/res`);
  });

  test('a group command reaches only the group', async () => {
    const replies = await collect(client, 'cameras/+/res');
    await client.publishAsync('cameras/group/south/cmd', JSON.stringify({ id: 'group-1', action: 'status' }), { qos: 1 });
    const [answer] = await replies.waitFor((m) => m.json()['id'] === 'group-1');
    // A marker command sent after it to both nodes: once both answered it, the group reply would have come.
    await client.publishAsync('cameras/all/cmd', JSON.stringify({ id: 'marker-1', action: 'status' }), { qos: 1 });
    await replies.waitFor((m) => m.json()['id'] === 'marker-1', 2);
    await replies.close();
    assert.equal(answer!.json()['node_id'], right.config.node_id);
    assert.equal(replies.messages.filter((m) => m.json()['id'] === 'group-1').length, 1);
  });

  test('a clean stop leaves offline retained', async () => {
    const extra = await startTestNode({ mqtt_url: broker.url, mqtt_protocol_version: 4 });
    const topic = `cameras/${extra.config.node_id}/availability`;
    const watch = await collect(client, topic);
    await watch.waitFor((m) => m.payload.toString() === 'online');
    await extra.stop();
    await watch.waitFor((m) => m.payload.toString() === 'offline');
    await watch.close();
    const late = await connectClient(broker.url);
    const retained = await collect(late, topic);
    const [last] = await retained.waitFor();
    await late.endAsync();
    assert.equal(last!.payload.toString(), 'offline');
    assert.equal(last!.packet.retain, true);
  });
});

describe('connection life cycle', () => {
  test('kill -9 of a node process leaves offline retained through the Last Will', async () => {
    const broker = await startEmbeddedBroker({ host: '127.0.0.1', port: 0, logger: silentLogger() });
    const client = await connectClient(broker.url);
    const nodeId = `will-${process.pid}`;
    const dir = await mkdtemp(join(tmpdir(), 'camera-node-will-'));
    try {
      const watch = await collect(client, `cameras/${nodeId}/availability`);
      const daemon = await spawnDaemon({
        NODE_ID: nodeId,
        MQTT_URL: broker.url,
        MQTT_PROTOCOL_VERSION: '4',
        CAPTURE_DIR: join(dir, 'images'),
        LOG_DIR: join(dir, 'logs'),
      });
      await watch.waitFor((m) => m.payload.toString() === 'online');
      daemon.child.kill('SIGKILL');
      await daemon.exited;
      // The broker notices the dead socket at once (the TCP connection closes) and sends the will.
      await watch.waitFor((m) => m.payload.toString() === 'offline');
      await watch.close();
      const late = await connectClient(broker.url);
      const retained = await collect(late, `cameras/${nodeId}/availability`);
      const [last] = await retained.waitFor();
      await late.endAsync();
      assert.equal(last!.payload.toString(), 'offline', 'the will is retained for later subscribers');
      assert.equal(last!.packet.retain, true);
    } finally {
      await client.endAsync();
      await broker.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a node started before its broker serves HTTP meanwhile and comes online by itself', async () => {
    const port = await freePort();
    const node = await startTestNode({ mqtt_url: `mqtt://127.0.0.1:${port}`, mqtt_protocol_version: 4 });
    let broker: EmbeddedBroker | null = null;
    try {
      const status = (await (await fetch(`${node.httpUrl}/status`)).json()) as { mqtt: { connected: boolean; last_error: string | null } };
      assert.equal(status.mqtt.connected, false);
      assert.match(status.mqtt.last_error ?? '', /ECONNREFUSED/);
      // Each failed attempt lengthens the wait before the next one.
      const mqttClient = node.node.mqtt!.client()!;
      await new Promise<void>((resolve) => {
        let attempts = 0;
        const onAttempt = (): void => {
          attempts += 1;
          if (attempts < 2) return;
          mqttClient.off('reconnect', onAttempt);
          resolve();
        };
        mqttClient.on('reconnect', onAttempt);
      });
      assert.ok(
        mqttClient.options.reconnectPeriod! >= reconnectDelay(2, () => 0),
        `waits ${mqttClient.options.reconnectPeriod} ms after 2 failures`,
      );
      broker = await startEmbeddedBroker({ host: '127.0.0.1', port, logger: silentLogger() });
      const client = await connectClient(broker.url);
      const watch = await collect(client, `cameras/${node.config.node_id}/availability`);
      await watch.waitFor((m) => m.payload.toString() === 'online', 1, 20_000);
      const reply = await request(client, 'cameras', node.config.node_id, { action: 'status' });
      assert.equal(reply['status'], 'success');
      await watch.close();
      await client.endAsync();
    } finally {
      await node.stop();
      await broker?.stop();
    }
  });
});
