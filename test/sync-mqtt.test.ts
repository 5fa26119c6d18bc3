import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt, { type MqttClient } from 'mqtt';
import { createSchemaRegistry } from '../src/schemas.js';
import { startTestNode, type TestNode } from './helpers/node.js';

const validReply = createSchemaRegistry().validator('response.schema.json');
const assertValid = (reply: unknown): void =>
  assert.ok(validReply(reply), `reply does not match response.schema.json: ${JSON.stringify(validReply.errors)}`);

interface Reply {
  id: string | null;
  node_id: string;
  status: string;
  error?: { code: string; message: string };
  scheduled_at?: string;
  triggered_at?: string;
  late_ms?: number;
  files?: unknown[];
}

/** Collects the replies on every node's res topic, by id. */
function replyCollector(client: MqttClient) {
  const replies: Reply[] = [];
  client.on('message', (_topic, payload) => {
    replies.push(JSON.parse(payload.toString()) as Reply);
  });
  return {
    async wait(id: string, count = 1, timeoutMs = 20_000): Promise<Reply[]> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = replies.filter((reply) => reply.id === id);
        if (found.length >= count) return found;
        if (Date.now() > deadline) throw new Error(`no ${count} replies for ${id} (got ${found.length})`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
  };
}

describe('capture commands with at over MQTT (a broadcast fires the fleet together)', () => {
  const nodes: TestNode[] = [];
  let client: MqttClient;
  let replies: ReturnType<typeof replyCollector>;
  const prefix = 'cameras';
  const nodeAt = (index: number): TestNode => {
    const node = nodes[index];
    assert.ok(node, `node ${index} started`);
    return node;
  };

  before(async () => {
    // The first node's embedded broker carries the second node too.
    nodes.push(await startTestNode({ camera_mode: 'warm', mqtt_protocol_version: 4 }));
    const url = nodes[0]?.node.mqttUrl ?? '';
    nodes.push(await startTestNode({ camera_mode: 'warm', mqtt_url: url, mqtt_protocol_version: 4 }));
    client = await mqtt.connectAsync(url, { protocolVersion: 4 });
    await client.subscribeAsync(`${prefix}/+/res`, { qos: 1 });
    replies = replyCollector(client);
  });
  after(async () => {
    await client?.endAsync();
    for (const node of nodes.reverse()) await node.stop();
  });

  test('a broadcast with at a little ahead: every node fires at that instant and says how late it was', async () => {
    const at = Date.now() + 1000;
    await client.publishAsync(`${prefix}/all/cmd`, JSON.stringify({ id: 'sync-1', action: 'capture', at }), { qos: 1 });
    const got = await replies.wait('sync-1', 2);
    assert.deepEqual(got.map((reply) => reply.node_id).sort(), nodes.map((node) => node.config.node_id).sort());
    for (const reply of got) {
      assertValid(reply);
      assert.equal(reply.status, 'success', JSON.stringify(reply));
      assert.equal(reply.scheduled_at, new Date(at).toISOString());
      assert.ok(Date.parse(reply.triggered_at ?? '') >= at - nodeAt(0).config.schedule_tolerance_ms);
      assert.equal(typeof reply.late_ms, 'number');
    }
  });

  test('at in the past is an error reply carrying the request id; nothing is captured', async () => {
    const node = nodeAt(0);
    const before = node.node.commands.list().count;
    await client.publishAsync(
      `${prefix}/${node.config.node_id}/cmd`,
      JSON.stringify({ id: 'sync-past', action: 'capture', at: Date.now() - 10_000 }),
      { qos: 1 },
    );
    const [reply] = await replies.wait('sync-past');
    assertValid(reply);
    assert.equal(reply?.status, 'error');
    // Its freshness is judged by its at: a capture due 10 s ago is stale, not taken late.
    assert.equal(reply?.error?.code, 'expired');
    assert.match(reply?.error?.message ?? '', /in the past/);
    assert.equal(node.node.commands.list().count, before);
  });

  test('a burst over MQTT answers once with every file', async () => {
    const node = nodeAt(1);
    await client.publishAsync(
      `${prefix}/${node.config.node_id}/cmd`,
      JSON.stringify({ id: 'burst-1', action: 'capture', count: 3, interval_ms: 50 }),
      { qos: 1 },
    );
    const [reply] = await replies.wait('burst-1');
    assertValid(reply);
    assert.equal(reply?.status, 'success', JSON.stringify(reply));
    assert.equal(reply?.files?.length, 3);
  });

  test('a wrongly typed at is refused by the command schema', async () => {
    const node = nodeAt(0);
    await client.publishAsync(`${prefix}/${node.config.node_id}/cmd`, JSON.stringify({ id: 'sync-bad', action: 'capture', at: true }), {
      qos: 1,
    });
    const [reply] = await replies.wait('sync-bad');
    assert.equal(reply?.error?.code, 'bad_request');
  });
});
