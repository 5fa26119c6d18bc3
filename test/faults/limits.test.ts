import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import { recordFigures } from '../helpers/faults-figures.js';
import { api, defined, imagesOnDisk } from '../helpers/faults-fs.js';
import { collect, connectClient, request } from '../helpers/mqtt.js';
import { startTestNode, type TestNode } from '../helpers/node.js';

const MAX_COMMAND_BYTES = 1024;
const MAX_QUEUED = 2;
const MAX_LOG_LINES = 400;
const RATE_LIMIT = 20;

interface Reply {
  id: string | null;
  status: string;
  error?: { code: string; message: string };
}

/** Publishes one payload as is and waits for the reply under `id` (null: an oversized command has none). */
async function publishRaw(client: MqttClient, nodeId: string, payload: string | Buffer, id: string | null = null): Promise<Reply> {
  const replies = await collect(client, `cameras/${nodeId}/res`);
  try {
    await client.publishAsync(`cameras/${nodeId}/cmd`, payload, { qos: 1 });
    const [reply] = await replies.waitFor((m) => m.json()['id'] === id);
    return defined(reply, 'the reply').json<Reply>();
  } finally {
    await replies.close();
  }
}

test('command size, capture queue, log lines and HTTP rate: each limit holds with a clear refusal', { timeout: 60_000 }, async () => {
  let node: TestNode | null = null;
  let limited: TestNode | null = null;
  let client: MqttClient | null = null;
  try {
    const started = await startTestNode(
      { mqtt_max_command_bytes: MAX_COMMAND_BYTES, max_queued_captures: MAX_QUEUED, max_log_lines: MAX_LOG_LINES, ha_discovery: false },
      { cameraEnv: { CAMERA_SIM_CAPTURE_MS: '500' } },
    );
    node = started;
    const nodeId = started.config.node_id;
    const controller = await connectClient(defined(started.node.mqttUrl, 'the broker URL'));
    client = controller;

    // Command size: exactly the limit is taken, one byte more is refused, far more too.
    const base = JSON.stringify({ id: 'size-ok', action: 'logs', lines: 1 });
    const atLimit = `${base.slice(0, -1)}${' '.repeat(MAX_COMMAND_BYTES - base.length)}}`;
    assert.equal(Buffer.byteLength(atLimit), MAX_COMMAND_BYTES);
    const accepted = await publishRaw(client, nodeId, atLimit, 'size-ok');
    const overBy1 = await publishRaw(client, nodeId, `${atLimit.slice(0, -1)} }`);
    const overBy1M = await publishRaw(client, nodeId, Buffer.alloc(1024 * 1024, 0x20));
    assert.equal(accepted.status, 'success');
    for (const refused of [overBy1, overBy1M]) {
      assert.equal(refused.error?.code, 'payload_too_large');
      assert.match(refused.error?.message ?? '', new RegExp(`limit is ${MAX_COMMAND_BYTES}`));
    }

    // Capture queue: one running and MAX_QUEUED waiting; the rest are refused as busy at once.
    const burst = await collect(client, `cameras/${nodeId}/res`);
    const ids = Array.from({ length: 10 }, (_, i) => `queue-${i}`);
    await Promise.all(
      ids.map((id) => controller.publishAsync(`cameras/${nodeId}/cmd`, JSON.stringify({ id, action: 'capture' }), { qos: 1 })),
    );
    const mqttReplies = (await burst.waitFor((m) => ids.includes(String(m.json()['id'])), ids.length, 30_000)).map((m) => m.json<Reply>());
    await burst.close();
    const httpReplies = await Promise.all(
      Array.from({ length: 10 }, () => api<{ detail?: string; code?: string }>(started.httpUrl, '/capture', { method: 'POST' })),
    );
    const mqttOk = mqttReplies.filter((r) => r.status === 'success').length;
    const mqttBusy = mqttReplies.filter((r) => r.error?.code === 'busy').length;
    const httpOk = httpReplies.filter((r) => r.status === 200).length;
    const httpBusy = httpReplies.filter((r) => r.status === 503 && r.body.code === 'busy' && /busy/.test(r.body.detail ?? '')).length;
    const images = (await imagesOnDisk(node.config.capture_dir)).size;

    // Log lines: the cap is taken, one more is refused, on both APIs.
    const logsAtCap = await request(client, 'cameras', nodeId, { action: 'logs', lines: MAX_LOG_LINES });
    const logsOverCap = await request(client, 'cameras', nodeId, { action: 'logs', lines: MAX_LOG_LINES + 1 });
    const httpAtCap = await api(node.httpUrl, `/logs?lines=${MAX_LOG_LINES}`);
    const httpOverCap = await api<{ detail: Array<{ msg: string }> }>(node.httpUrl, `/logs?lines=${MAX_LOG_LINES + 1}`);

    // HTTP rate: a separate node, so the requests above do not count against it.
    limited = await startTestNode({ http_rate_limit: RATE_LIMIT, mqtt_enabled: false });
    const rated = [];
    for (let i = 0; i < RATE_LIMIT + 10; i += 1)
      rated.push(await api<{ detail?: string; code?: string }>(limited.httpUrl, i % 2 ? '/status' : '/images'));
    const passed = rated.filter((r) => r.status === 200).length;
    const throttled = rated.filter(
      (r) =>
        r.status === 429 && r.body.code === 'rate_limited' && typeof r.body.detail === 'string' && Number(r.headers.get('retry-after')) > 0,
    ).length;

    const figures = {
      command_at_limit: accepted.status,
      command_over_by_1: overBy1.error?.code ?? 'accepted',
      command_1mb: overBy1M.error?.code ?? 'accepted',
      queue_mqtt: `${mqttOk} ran, ${mqttBusy} busy`,
      queue_http: `${httpOk} ran, ${httpBusy} busy`,
      images,
      logs_400: String(logsAtCap['status']),
      logs_401: (logsOverCap['error'] as { code: string } | undefined)?.code ?? 'accepted',
      http_logs_400: httpAtCap.status,
      http_logs_401: httpOverCap.status,
      rate_limit: `${passed} ok, ${throttled} x 429 of ${rated.length}`,
    };
    await recordFigures('limits (size, queue, lines, rate)', figures);
    for (const [ok, busy] of [
      [mqttOk, mqttBusy],
      [httpOk, httpBusy],
    ] as const) {
      assert.ok(ok >= 1 && ok <= MAX_QUEUED + 1, `at most ${MAX_QUEUED + 1} captures taken at once, got ${ok}`);
      assert.equal(ok + busy, 10, 'every other one refused as busy');
    }
    assert.equal(images, mqttOk + httpOk, 'refused captures took no picture');
    assert.equal(logsAtCap['status'], 'success');
    assert.equal((logsOverCap['error'] as { code: string }).code, 'bad_request');
    assert.match((logsOverCap['error'] as { message: string }).message, new RegExp(`${MAX_LOG_LINES}`));
    assert.equal(httpAtCap.status, 200);
    assert.equal(httpOverCap.status, 422);
    assert.match(httpOverCap.body.detail[0]?.msg ?? '', new RegExp(`${MAX_LOG_LINES}`));
    assert.equal(passed, RATE_LIMIT);
    assert.equal(throttled, 10, 'every request over the limit gets 429 with a Retry-After and a detail');
  } finally {
    await client?.endAsync();
    await node?.stop();
    await limited?.stop();
  }
});
