import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createReceiver, type ReceivedImage } from '../../src/client/receiver.js';
import { recordFigures } from '../helpers/faults-figures.js';
import { api, listImages, sleep, waitFor, within } from '../helpers/faults-fs.js';
import { readRetained } from '../helpers/faults-mqtt.js';
import { connectClient, request } from '../helpers/mqtt.js';
import { freePort, mosquittoMissing, startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { startTestNode } from '../helpers/node.js';

/** How long the broker stays away after the node starts: a Pi that boots before its broker's host. */
const BROKER_DELAY_MS = 20_000;

interface MqttStatus {
  mqtt: { connected: boolean; connects: number };
  delivery: { mqtt: { pending: number; delivered: number } };
}

test('broker absent for 20 s after the node starts: HTTP serves meanwhile, MQTT comes online, nothing queued is lost', {
  skip: mosquittoMissing() ?? false,
  timeout: 120_000,
}, async () => {
  const port = await freePort();
  const url = `mqtt://127.0.0.1:${port}`;
  const startedAt = Date.now();
  const node = await startTestNode({ mqtt_url: url, ha_discovery: false });
  const nodeId = node.config.node_id;
  let broker: Mosquitto | null = null;
  const outDir = await mkdtemp(join(tmpdir(), 'camera-node-late-received-'));
  try {
    // While the broker is away: status, captures (one asking for MQTT delivery) and listings all work.
    let httpRequests = 0;
    let httpFailures = 0;
    const check = (ok: boolean): void => {
      httpRequests += 1;
      if (!ok) httpFailures += 1;
    };
    const early = await api<{ file_info: { filename: string } }>(node.httpUrl, '/capture?deliver=mqtt', { method: 'POST' });
    check(early.status === 200);
    const queued = early.body.file_info.filename;
    while (Date.now() - startedAt < BROKER_DELAY_MS) {
      const status = await api<MqttStatus>(node.httpUrl, '/status');
      check(status.status === 200 && status.body.mqtt.connected === false);
      check((await api(node.httpUrl, '/health')).status === 200);
      check((await api(node.httpUrl, '/images')).status === 200);
      await sleep(500);
    }
    const capture = await api(node.httpUrl, '/capture', { method: 'POST' });
    check(capture.status === 200);
    const pendingBefore = (await api<MqttStatus>(node.httpUrl, '/status')).body.delivery.mqtt.pending;

    broker = await startMosquitto([], { port });
    const brokerAt = Date.now();
    // A receiver subscribes before the node finds the broker (its next retry is seconds away).
    const client = await connectClient(url, { clientId: `faults-late-${process.pid}` });
    let resolveImage!: (image: ReceivedImage) => void;
    const received = new Promise<ReceivedImage>((resolve) => {
      resolveImage = resolve;
    });
    const receiver = createReceiver({ client, prefix: 'cameras', outDir, onImage: resolveImage });
    await receiver.start();
    const connectedBeforeReceiver = (await api<MqttStatus>(node.httpUrl, '/status')).body.mqtt.connected;
    try {
      await waitFor(
        'the node online on MQTT',
        async () => ((await readRetained(url, 'cameras', nodeId)).availability === 'online' ? true : null),
        60_000,
        200,
      );
      const secondsToOnline = (Date.now() - brokerAt) / 1000;
      const reply = await request(client, 'cameras', nodeId, { action: 'status' });
      assert.equal(connectedBeforeReceiver, false, 'the receiver subscribed before the node reconnected');
      const image = await within('the queued image delivered', received, 30_000);
      const stored = await readFile(join(node.config.capture_dir, queued));
      // Verified and on disk: the receiver's side confirms it, and only then is it delivered.
      const receipt = await request(client, 'cameras', nodeId, { action: 'receipt', filename: image.filename, sha256: image.sha256 });
      assert.equal(receipt['status'], 'success', JSON.stringify(receipt));
      const listed = await listImages(node.httpUrl);
      const figures = {
        broker_delay_s: BROKER_DELAY_MS / 1000,
        http_requests_while_absent: httpRequests,
        http_failures: httpFailures,
        queued_for_mqtt: pendingBefore,
        delivered_after_connect: image.filename === queued && (await readFile(image.path)).equals(stored) ? 1 : 0,
        s_to_online_after_broker: secondsToOnline.toFixed(1),
        lost: pendingBefore - (image.filename === queued ? 1 : 0),
      };
      await recordFigures('broker absent at start (20 s)', figures);
      assert.equal(httpFailures, 0, 'the HTTP API served every request while the broker was away');
      assert.equal(pendingBefore, 1, 'the capture asking for MQTT delivery waited for the broker');
      assert.equal(reply['status'], 'success');
      assert.equal((reply['node_status'] as MqttStatus).mqtt.connected, true);
      assert.equal(image.filename, queued);
      assert.ok((await readFile(image.path)).equals(stored), 'the queued image arrived byte-identical');
      assert.ok(listed.find((i) => i.filename === queued)?.delivered.includes('mqtt'), 'and is marked delivered');
      assert.equal(figures.lost, 0);
    } finally {
      await receiver.stop();
      await client.endAsync();
    }
  } finally {
    await node.stop();
    await broker?.stop();
    await rm(outDir, { recursive: true, force: true });
  }
});
