import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { createSchemaRegistry } from '../src/schemas.js';
import { startTestNode, type TestNode } from './helpers/node.js';
import { collect, connectClient, request } from './helpers/mqtt.js';

const schemas = createSchemaRegistry();
const validReply = schemas.validator('response.schema.json');
const validStatus = schemas.validator('status.schema.json');
const validTelemetry = schemas.validator('telemetry.schema.json');

function assertValidReply(reply: Record<string, unknown>): void {
  assert.ok(validReply(reply), `reply does not match response.schema.json: ${JSON.stringify(validReply.errors)}`);
}

describe('MQTT commands through the embedded broker', () => {
  let node: TestNode;
  let client: MqttClient;
  let nodeId: string;
  const prefix = 'cameras';

  before(async () => {
    node = await startTestNode({ telemetry_interval_s: 1 });
    nodeId = node.config.node_id;
    assert.ok(node.node.mqttUrl, 'the node started the embedded broker');
    client = await connectClient(node.node.mqttUrl);
  });
  after(async () => {
    await client?.endAsync();
    await node?.stop();
  });

  test('status, capture, list, logs and delete round trip, in the HTTP API shapes', async () => {
    const status = await request(client, prefix, nodeId, { action: 'status' });
    assertValidReply(status);
    assert.equal(status['status'], 'success');
    assert.equal(status['node_id'], nodeId);
    assert.ok(validStatus(status['node_status']), JSON.stringify(validStatus.errors));

    const capture = await request(client, prefix, nodeId, { id: 'cap-1', action: 'capture', immediate: true });
    assertValidReply(capture);
    assert.equal(capture['id'], 'cap-1');
    assert.equal(capture['action'], 'capture');
    assert.equal(capture['status'], 'success');
    const fileInfo = capture['file_info'] as { filename: string; size: number };
    assert.match(fileInfo.filename, /^capture_\d{8}_\d{6}(_\d{3})?\.dng$/);
    assert.ok((await readdir(node.config.capture_dir)).includes(fileInfo.filename));

    const list = await request(client, prefix, nodeId, { action: 'list' });
    assertValidReply(list);
    assert.deepEqual(
      (list['images'] as Array<{ filename: string }>).map((i) => i.filename),
      [fileInfo.filename],
    );
    assert.equal(list['count'], 1);

    const logs = await request(client, prefix, nodeId, { action: 'logs', lines: 5 });
    assertValidReply(logs);
    assert.equal((logs['logs'] as unknown[]).length, logs['lines']);
    assert.ok((logs['lines'] as number) > 0 && (logs['lines'] as number) <= 5);

    const deleted = await request(client, prefix, nodeId, { action: 'delete', filename: fileInfo.filename });
    assertValidReply(deleted);
    assert.equal(deleted['status'], 'success');
    assert.ok(!(await readdir(node.config.capture_dir)).includes(fileInfo.filename));

    const again = await request(client, prefix, nodeId, { action: 'delete', filename: fileInfo.filename });
    assert.equal(again['status'], 'error');
    assert.equal((again['error'] as { code: string }).code, 'not_found');
  });

  test('a repeated id is executed once and answered twice with the same reply', async () => {
    const replies = await collect(client, `${prefix}/${nodeId}/res`);
    const command = JSON.stringify({ id: 'dup-1', action: 'capture' });
    await client.publishAsync(`${prefix}/${nodeId}/cmd`, command, { qos: 1 });
    await client.publishAsync(`${prefix}/${nodeId}/cmd`, command, { qos: 1 });
    const [first, second] = await replies.waitFor((m) => m.json()['id'] === 'dup-1', 2);
    await replies.close();
    assert.deepEqual(first!.json(), second!.json());
    const list = await request(client, prefix, nodeId, { action: 'list' });
    const captured = (first!.json()['file_info'] as { filename: string }).filename;
    assert.equal((list['images'] as Array<{ filename: string }>).filter((i) => i.filename === captured).length, 1);
    assert.equal(list['count'], 1, 'only one image was captured');
    await request(client, prefix, nodeId, { action: 'delete', filename: captured });
  });

  const badInputs: Array<[string, string | Buffer, string | null, string]> = [
    ['invalid JSON', '{"id": "b1", "action": ', null, 'bad_request'],
    ['a JSON array', '[1, 2]', null, 'bad_request'],
    ['a JSON string', '"capture"', null, 'bad_request'],
    ['no action', '{"id": "b2"}', 'b2', 'bad_request'],
    ['an unknown action', '{"id": "b3", "action": "reboot"}', 'b3', 'bad_request'],
    ['a wrong type', '{"id": "b4", "action": "capture", "shutter_us": "fast"}', 'b4', 'bad_request'],
    ['an unknown parameter', '{"id": "b5", "action": "capture", "shuter_us": 100}', 'b5', 'bad_request'],
    ['lines out of range', '{"id": "b6", "action": "logs", "lines": 0}', 'b6', 'bad_request'],
    ['traversal in filename', '{"id": "b7", "action": "delete", "filename": "../../etc/passwd"}', 'b7', 'invalid_filename'],
    ['a name the node never produces', '{"id": "b8", "action": "delete", "filename": "notes.txt"}', 'b8', 'invalid_filename'],
    ['shell metacharacters', '{"id": "b9", "action": "delete", "filename": "$(reboot);.dng"}', 'b9', 'invalid_filename'],
    ['an id that is not a string', '{"id": 42, "action": "status"}', null, 'bad_request'],
    ['an oversized payload', Buffer.alloc(20_000, 'a'), null, 'payload_too_large'],
  ];

  test('every kind of bad input gets an error reply with the id and changes nothing', async () => {
    const before = await readdir(node.config.capture_dir);
    const replies = await collect(client, `${prefix}/${nodeId}/res`);
    for (const [what, payload, id, code] of badInputs) {
      const seen = replies.messages.length;
      await client.publishAsync(`${prefix}/${nodeId}/cmd`, payload, { qos: 1 });
      const [reply] = await replies.waitFor((m) => replies.messages.indexOf(m) >= seen, 1);
      const body = reply!.json();
      assertValidReply(body);
      assert.equal(body['status'], 'error', what);
      assert.equal(body['id'], id, what);
      assert.equal((body['error'] as { code: string }).code, code, `${what}: ${JSON.stringify(body)}`);
    }
    await replies.close();
    assert.deepEqual(await readdir(node.config.capture_dir), before);
    const status = await request(client, prefix, nodeId, { action: 'status' });
    assert.equal(status['status'], 'success', 'the node still answers');
  });

  test('events are published for captures and deletions, not retained', async () => {
    const events = await collect(client, `${prefix}/${nodeId}/events`);
    const capture = await request(client, prefix, nodeId, { id: 'ev-1', action: 'capture' });
    const filename = (capture['file_info'] as { filename: string }).filename;
    await request(client, prefix, nodeId, { action: 'delete', filename });
    const [captured] = await events.waitFor((m) => m.json()['event'] === 'captured');
    const [deleted] = await events.waitFor((m) => m.json()['event'] === 'deleted');
    await events.close();
    assert.equal(captured!.json()['request_id'], 'ev-1');
    assert.equal((captured!.json()['image'] as { filename: string }).filename, filename);
    assert.equal((deleted!.json()['image'] as { filename: string }).filename, filename);
    assert.equal(captured!.packet.retain, false);
  });

  test('availability, status and telemetry are retained for a late subscriber', async () => {
    const late = await connectClient(node.node.mqttUrl!);
    try {
      const retained = await collect(late, `${prefix}/${nodeId}/+`);
      const [availability] = await retained.waitFor((m) => m.topic.endsWith('/availability'));
      const [status] = await retained.waitFor((m) => m.topic.endsWith('/status'));
      const [telemetry] = await retained.waitFor((m) => m.topic.endsWith('/telemetry'));
      await retained.close();
      assert.equal(availability!.payload.toString(), 'online');
      assert.equal(availability!.packet.retain, true);
      assert.ok(validStatus(status!.json()), JSON.stringify(validStatus.errors));
      assert.ok(validTelemetry(telemetry!.json()), JSON.stringify(validTelemetry.errors));
      assert.ok(
        !retained.messages.some((m) => m.topic.endsWith('/res') || m.topic.endsWith('/cmd')),
        'commands and replies are never retained',
      );
    } finally {
      await late.endAsync();
    }
  });

  test('the status is republished when it changes', async () => {
    const statuses = await collect(client, `${prefix}/${nodeId}/status`);
    await statuses.waitFor();
    const seen = statuses.messages.length;
    const capture = await request(client, prefix, nodeId, { action: 'capture' });
    const filename = (capture['file_info'] as { filename: string }).filename;
    const [changed] = await statuses.waitFor(
      (m) => statuses.messages.indexOf(m) >= seen && (m.json()['storage'] as { image_count: number }).image_count === 1,
    );
    await statuses.close();
    assert.ok(changed);
    await request(client, prefix, nodeId, { action: 'delete', filename });
  });

  test('telemetry is republished every TELEMETRY_INTERVAL_S', async () => {
    const telemetry = await collect(client, `${prefix}/${nodeId}/telemetry`);
    const [first, second] = await telemetry.waitFor(() => true, 2);
    await telemetry.close();
    for (const message of [first!, second!]) assert.ok(validTelemetry(message.json()), JSON.stringify(validTelemetry.errors));
    assert.notEqual(first!.json()['timestamp'], second!.json()['timestamp']);
  });

  test('a burst of events is coalesced into a few status messages', async () => {
    const statuses = await collect(client, `${prefix}/${nodeId}/status`);
    await statuses.waitFor();
    const seen = statuses.messages.length;
    for (let i = 0; i < 100; i += 1) node.node.events.emit('status_changed', { reason: 'burst' });
    const capture = await request(client, prefix, nodeId, { action: 'capture' });
    const imageCount = (m: { json(): Record<string, unknown> }) => (m.json()['storage'] as { image_count: number }).image_count;
    const [after] = await statuses.waitFor((m) => statuses.messages.indexOf(m) >= seen && imageCount(m) === 1);
    const published = statuses.messages.indexOf(after!) - seen + 1;
    await statuses.close();
    assert.ok(published <= 2, `${published} status messages for 100 events and a capture`);
    await request(client, prefix, nodeId, { action: 'delete', filename: (capture['file_info'] as { filename: string }).filename });
  });
});

describe('MQTT commands on a slow camera', () => {
  let node: TestNode;
  let client: MqttClient;
  let nodeId: string;
  let control = '';
  const prefix = 'cameras';

  before(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'camera-node-control-'));
    control = join(dir, 'fail');
    // One capture at a time and none waiting: a second capture while one runs is refused as busy.
    node = await startTestNode({ max_queued_captures: 0 }, { cameraEnv: { CAMERA_SIM_CAPTURE_MS: '700', CAMERA_SIM_CONTROL: control } });
    nodeId = node.config.node_id;
    client = await connectClient(node.node.mqttUrl!);
  });
  after(async () => {
    await client?.endAsync();
    await node?.stop();
    if (control) await rm(join(control, '..'), { recursive: true, force: true });
  });

  test('a duplicate arriving while the command runs gets the same reply when it finishes', async () => {
    const replies = await collect(client, `${prefix}/${nodeId}/res`);
    const before = (await request(client, prefix, nodeId, { action: 'list' }))['count'] as number;
    const command = JSON.stringify({ id: 'slow-dup', action: 'capture' });
    await client.publishAsync(`${prefix}/${nodeId}/cmd`, command, { qos: 1 });
    await client.publishAsync(`${prefix}/${nodeId}/cmd`, command, { qos: 1 });
    const [first, second] = await replies.waitFor((m) => m.json()['id'] === 'slow-dup', 2);
    await replies.close();
    assert.equal(first!.json()['status'], 'success');
    assert.deepEqual(second!.json(), first!.json());
    const after = (await request(client, prefix, nodeId, { action: 'list' }))['count'] as number;
    assert.equal(after, before + 1);
  });

  test('a capture refused because the camera is busy gets a busy error reply', async () => {
    const replies = await collect(client, `${prefix}/${nodeId}/res`);
    await client.publishAsync(`${prefix}/${nodeId}/cmd`, JSON.stringify({ id: 'busy-a', action: 'capture' }), { qos: 1 });
    await client.publishAsync(`${prefix}/${nodeId}/cmd`, JSON.stringify({ id: 'busy-b', action: 'capture' }), { qos: 1 });
    const [a] = await replies.waitFor((m) => m.json()['id'] === 'busy-a');
    const [b] = await replies.waitFor((m) => m.json()['id'] === 'busy-b');
    await replies.close();
    assertValidReply(b!.json());
    assert.equal(a!.json()['status'], 'success');
    assert.equal(b!.json()['status'], 'error');
    assert.equal((b!.json()['error'] as { code: string }).code, 'busy');
  });

  test('a failed capture gets an error reply and a capture_failed event', async () => {
    const events = await collect(client, `${prefix}/${nodeId}/events`);
    await writeFile(control, 'capture-error');
    try {
      const reply = await request(client, prefix, nodeId, { id: 'fail-1', action: 'capture' });
      assertValidReply(reply);
      assert.equal(reply['status'], 'error');
      assert.match((reply['error'] as { code: string }).code, /^camera_/);
      const [event] = await events.waitFor((m) => m.json()['event'] === 'capture_failed');
      assert.equal(event!.json()['request_id'], 'fail-1');
      assert.equal(event!.json()['code'], (reply['error'] as { code: string }).code);
    } finally {
      await rm(control, { force: true });
      await events.close();
    }
  });
});

describe('MQTT events of a node at its storage limit', () => {
  test('an eviction is published on the events topic', async () => {
    // The tiny sensor's DNG is about 150 kB: the third capture evicts the first.
    const node = await startTestNode({ storage_limit_mb: 0.4 });
    const client = await connectClient(node.node.mqttUrl!);
    try {
      const nodeId = node.config.node_id;
      const events = await collect(client, `cameras/${nodeId}/events`);
      const first = await request(client, 'cameras', nodeId, { action: 'capture' });
      await request(client, 'cameras', nodeId, { action: 'capture' });
      const third = await request(client, 'cameras', nodeId, { action: 'capture' });
      const oldest = (first['file_info'] as { filename: string }).filename;
      assert.deepEqual(third['evicted'], [oldest]);
      const [evicted] = await events.waitFor((m) => m.json()['event'] === 'evicted');
      await events.close();
      assert.equal((evicted!.json()['image'] as { filename: string }).filename, oldest);
      assert.equal(evicted!.json()['reason'], 'storage_limit');
      assert.equal(evicted!.packet.retain, false);
    } finally {
      await client.endAsync();
      await node.stop();
    }
  });
});
