import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { MqttClient } from 'mqtt';
import { startEmbeddedBroker } from '../src/mqtt/broker.js';
import { ENTITIES } from '../src/ha/discovery.js';
import { startTestNode } from './helpers/node.js';
import { collect, connectClient } from './helpers/mqtt.js';

const logger = pino({ level: 'silent' });
type Json = Record<string, unknown>;

/**
 * Renders the two template forms the discovery configs use, the way Home Assistant's Jinja would:
 * `{{ value_json.a.b }}` and `{{ 'ON' if value_json.a.b else 'OFF' }}`. A missing field fails here
 * (Home Assistant would log an error and show the entity as unknown).
 */
function renderValueTemplate(template: string, value: Json): string {
  const read = (path: string): unknown =>
    path.split('.').reduce<unknown>((node, key) => {
      assert.ok(node !== null && typeof node === 'object' && key in node, `${path}: no field ${key} in the message`);
      return (node as Json)[key];
    }, value);
  const conditional = /^\{\{ '(\w+)' if value_json\.([\w.]+) else '(\w+)' \}\}$/.exec(template);
  if (conditional) return read(conditional[2] ?? '') ? (conditional[1] ?? '') : (conditional[3] ?? '');
  const plain = /^\{\{ value_json\.([\w.]+) \}\}$/.exec(template);
  assert.ok(plain, `template form not known here: ${template}`);
  const field = read(plain[1] ?? '');
  return field === null ? 'None' : String(field);
}

/**
 * The message on a retained topic as a subscriber arriving now gets it: the retained one, or, when
 * the node's first publication is still on its way, that one live.
 */
async function messageOn(client: MqttClient, topic: string): Promise<Buffer> {
  const messages = await collect(client, topic);
  try {
    const [message] = await messages.waitFor();
    assert.ok(message);
    return message.payload;
  } finally {
    await messages.close();
  }
}

/** Teardown steps run last-registered first (node:test runs `after` hooks in registration order). */
function teardown(t: { after(fn: () => Promise<void>): void }): (step: () => Promise<unknown>) => void {
  const steps: Array<() => Promise<unknown>> = [];
  t.after(async () => {
    for (const step of steps.reverse()) await step();
  });
  return (step) => steps.push(step);
}

/** Every discovery config of a node, by topic, retained or (published just now) live. */
async function discoveryConfigs(client: MqttClient, nodeId: string): Promise<Map<string, Json>> {
  const configs = await collect(client, `homeassistant/+/${nodeId}/+/config`);
  try {
    const byTopic = (): Map<string, Json> => new Map(configs.messages.filter((m) => m.payload.length > 0).map((m) => [m.topic, m.json()]));
    const deadline = Date.now() + 10_000;
    while (byTopic().size < ENTITIES.length) {
      if (Date.now() > deadline) throw new Error(`discovery configs: ${[...byTopic().keys()].join(', ')}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return byTopic();
  } finally {
    await configs.close();
  }
}

test('a whole node: every topic its entities reference is published, templates render, the button captures, the preview shows', async (t) => {
  const broker = await startEmbeddedBroker({ host: '127.0.0.1', port: 0, logger });
  const dir = await mkdtemp(join(tmpdir(), 'camera-node-ha-'));
  const zone = join(dir, 'thermal');
  await writeFile(zone, '48500\n');
  const nodeId = `ha-node-${process.pid}`;
  const started = await startTestNode({ node_id: nodeId, mqtt_url: broker.url, mqtt_protocol_version: 4 }, { thermalZonePath: zone });
  const cleanup = teardown(t);
  cleanup(() => rm(dir, { recursive: true, force: true }));
  cleanup(() => broker.stop());
  cleanup(() => started.stop());
  const client = await connectClient(broker.url);
  cleanup(() => client.endAsync());

  const configs = await discoveryConfigs(client, nodeId);
  assert.equal(configs.size, ENTITIES.length);
  const port = new URL(started.httpUrl).port;
  const values = new Map<string, string>();
  for (const [topic, config] of configs) {
    // Availability: the node's retained availability says online.
    assert.equal((await messageOn(client, String(config['availability_topic']))).toString(), config['payload_available'], topic);
    assert.match(String((config['device'] as Json)['configuration_url']), new RegExp(`^http://.+:${port}$`));
    if (typeof config['state_topic'] === 'string') {
      const message = JSON.parse((await messageOn(client, config['state_topic'])).toString()) as Json;
      values.set(String(config['unique_id']), renderValueTemplate(String(config['value_template']), message));
    }
  }
  const value = (objectId: string): string => values.get(`camera_node_${nodeId}_${objectId}`) ?? '';
  assert.equal(value('cpu_temperature'), '48.5');
  for (const objectId of ['cpu_percent', 'memory_percent', 'disk_percent', 'storage_used', 'image_count', 'uptime']) {
    assert.ok(Number.isFinite(Number(value(objectId))) && value(objectId) !== '', `${objectId}: ${value(objectId)}`);
  }
  assert.equal(value('camera'), 'ON');

  // The Capture button: the press payload, and the rendered command template, each capture once.
  const button = configs.get(`homeassistant/button/${nodeId}/capture/config`) ?? {};
  const replies = await collect(client, `cameras/${nodeId}/res`);
  cleanup(() => replies.close());
  await client.publishAsync(String(button['command_topic']), String(button['payload_press']), { qos: 1 });
  const pressId = 'ha-1700000000000';
  const rendered = String(button['command_template']).replace(/\{\{.*?\}\}/, pressId.slice(3));
  await client.publishAsync(String(button['command_topic']), rendered, { qos: 1 });
  const answers = (await replies.waitFor((m) => m.json()['action'] === 'capture', 2, 30_000)).map((m) => m.json());
  for (const answer of answers) assert.equal(answer['status'], 'success', JSON.stringify(answer));
  assert.deepEqual(answers.map((a) => a['id']).sort(), [null, pressId].sort());
  assert.equal(((await fetch(`${started.httpUrl}/images`).then((r) => r.json())) as unknown[]).length, 2);

  // The image entity's topic holds the latest capture's preview, a JPEG.
  const image = configs.get(`homeassistant/image/${nodeId}/latest/config`) ?? {};
  const preview = await messageOn(client, String(image['image_topic']));
  assert.equal(image['content_type'], 'image/jpeg');
  assert.deepEqual([...preview.subarray(0, 2)], [0xff, 0xd8]);
  assert.deepEqual([...preview.subarray(-2)], [0xff, 0xd9]);
});

test('unique ids and topics survive a restart; HA_DISCOVERY=false removes the entities', async (t) => {
  const broker = await startEmbeddedBroker({ host: '127.0.0.1', port: 0, logger });
  const cleanup = teardown(t);
  cleanup(() => broker.stop());
  const client = await connectClient(broker.url);
  cleanup(() => client.endAsync());
  const nodeId = `ha-restart-${process.pid}`;
  const overrides = { node_id: nodeId, mqtt_url: broker.url, mqtt_protocol_version: 4 as const };
  // Subscribed before the nodes start, so each node's own publications arrive live (not retained).
  const published = await collect(client, `homeassistant/+/${nodeId}/+/config`);
  cleanup(() => published.close());
  const ids = (messages: typeof published.messages): string[] => messages.map((m) => `${m.topic} ${String(m.json()['unique_id'])}`).sort();

  const first = await startTestNode(overrides);
  const before = ids(await published.waitFor((m) => !m.packet.retain, ENTITIES.length));
  await first.stop();
  const second = await startTestNode(overrides);
  const both = await published.waitFor((m) => !m.packet.retain, ENTITIES.length * 2);
  await second.stop();
  assert.equal(new Set(before).size, ENTITIES.length);
  assert.deepEqual(ids(both.slice(ENTITIES.length)), before);

  const removals = await collect(client, `homeassistant/+/${nodeId}/+/config`);
  cleanup(() => removals.close());
  const off = await startTestNode({ ...overrides, ha_discovery: false });
  cleanup(() => off.stop());
  await removals.waitFor((m) => m.payload.length === 0, ENTITIES.length);
  // A subscriber arriving now gets no retained config: retained messages come right after the
  // subscription, so once a probe published after it arrives, none is left to come.
  const late = await connectClient(broker.url);
  cleanup(() => late.endAsync());
  const seen = await collect(late, `homeassistant/+/${nodeId}/+/config`);
  cleanup(() => seen.close());
  const probe = `homeassistant/probe/${nodeId}/end/config`;
  await client.publishAsync(probe, 'end', { qos: 1 });
  await seen.waitFor((m) => m.topic === probe);
  assert.deepEqual(
    seen.messages.filter((m) => m.topic !== probe).map((m) => m.topic),
    [],
  );
});
