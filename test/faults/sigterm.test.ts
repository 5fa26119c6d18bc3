import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnDaemon, type Daemon } from '../helpers/daemon.js';
import { recordFigures } from '../helpers/faults-figures.js';
import { api, entries, listImages, sha256Of, waitFor } from '../helpers/faults-fs.js';
import { embeddedBrokerUrl, readRetained } from '../helpers/faults-mqtt.js';
import { flakyUploadServer, type Behaviour } from '../helpers/faults-upload.js';
import { collect, connectClient } from '../helpers/mqtt.js';
import { freePort, mosquittoMissing, startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';

const STORED = 'capture_20260101_120000.dng';
const NODE_ID = 'sigterm-node';

async function stopDaemon(daemon: Daemon | null): Promise<void> {
  if (!daemon || daemon.child.exitCode !== null || daemon.child.signalCode !== null) return;
  daemon.child.kill('SIGKILL');
  await daemon.exited;
}

test('SIGTERM during a chunked MQTT transfer of a 24 MB image: exit 0, offline published, the image intact', {
  timeout: 60_000,
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'camera-node-sigterm-mqtt-'));
  const captureDir = join(dir, 'images');
  await mkdir(captureDir, { recursive: true });
  await writeFile(join(captureDir, STORED), randomBytes(24 * 1024 * 1024));
  const before = await sha256Of(join(captureDir, STORED));
  // Mosquitto when installed (the retained offline can then be read after the node is gone), else
  // the node's embedded broker (which stops with it, so only the live message can be seen).
  const broker: Mosquitto | null = mosquittoMissing() ? null : await startMosquitto();
  let daemon: Daemon | null = null;
  try {
    // Small chunks and a small window: the transfer lasts long enough to be cut in the middle.
    daemon = await spawnDaemon({
      CAPTURE_DIR: captureDir,
      LOG_DIR: join(dir, 'logs'),
      NODE_ID,
      STORAGE_LIMIT_MB: '100',
      CHUNK_SIZE_KB: '16',
      DELIVERY_WINDOW: '2',
      HA_DISCOVERY: 'false',
      ...(broker ? { MQTT_URL: broker.url } : {}),
    });
    const brokerUrl = broker?.url ?? (await embeddedBrokerUrl(daemon));
    const client = await connectClient(brokerUrl);
    const availability = await collect(client, `cameras/${NODE_ID}/availability`);
    await availability.waitFor((m) => m.payload.toString() === 'online');
    const replies = await collect(client, `cameras/${NODE_ID}/res`);
    const chunks = await collect(client, `cameras/${NODE_ID}/images/${STORED}/chunk/+`);
    const node = daemon;
    await client.publishAsync(`cameras/${NODE_ID}/cmd`, JSON.stringify({ id: 'send-24mb', action: 'send', filename: STORED }), { qos: 1 });
    await chunks.waitFor(() => true, 20, 20_000);
    const chunksAtSignal = chunks.messages.length;
    node.child.kill('SIGTERM');
    const exit = await node.exited;
    const offline = await availability
      .waitFor((m) => m.payload.toString() === 'offline', 1, 5000)
      .then(
        () => true,
        () => false,
      );
    const reply = replies.messages.find((m) => m.json()['id'] === 'send-24mb')?.json();
    const retained = broker ? (await readRetained(broker.url, 'cameras', NODE_ID)).availability : 'n/a (embedded broker)';
    await client.endAsync(true);
    const after = await sha256Of(join(captureDir, STORED));
    const figures = {
      broker: broker ? 'mosquitto' : 'embedded',
      chunks_total: (24 * 1024) / 16,
      chunks_at_sigterm: chunksAtSignal,
      chunks_received: chunks.messages.length,
      exit_code: exit.code,
      offline_published: offline,
      retained_availability: retained,
      send_reply: reply
        ? `${String(reply['status'])} ${String((reply['error'] as { code?: string } | undefined)?.code ?? '')}`.trim()
        : 'none',
      image_intact: after === before,
      stopped_logged: node.records.some((r) => r['msg'] === 'camera-node stopped'),
    };
    daemon = null;
    await recordFigures('SIGTERM mid MQTT transfer (24 MB)', figures);
    assert.equal(exit.code, 0, 'a clean exit');
    assert.ok(chunksAtSignal < figures.chunks_total, 'the signal came in the middle of the transfer');
    assert.ok(offline, 'offline was published before the node left');
    if (broker) assert.equal(retained, 'offline', 'and stays retained');
    assert.notEqual(reply?.['status'], 'success', 'the cut transfer is not reported as sent');
    assert.ok(figures.image_intact, 'the stored image is untouched');
    assert.ok(figures.stopped_logged);
  } finally {
    await stopDaemon(daemon);
    await broker?.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test('SIGTERM during an HTTP upload: exit 0, the outbox keeps it, the upload completes at the next start', {
  timeout: 60_000,
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'camera-node-sigterm-upload-'));
  const captureDir = join(dir, 'images');
  let behaviour: Behaviour = 'stall-mid';
  // The target stops reading after 1 MB of the first upload and never answers it.
  const server = flakyUploadServer({ port: await freePort(), decide: () => behaviour, cutAfterBytes: 1024 * 1024 });
  await server.up();
  const env = {
    CAPTURE_DIR: captureDir,
    LOG_DIR: join(dir, 'logs'),
    MQTT_ENABLED: 'false',
    CAMERA_SIM_SENSOR: 'ov5647', // a 10 MB DNG: the upload is cut mid-body, not after it
    UPLOAD_URL: server.url,
    UPLOAD_METHOD: 'PUT',
    UPLOAD_TIMEOUT_S: '30',
    UPLOAD_RETRY_BASE_S: '0.5',
    UPLOAD_RETRY_MAX_S: '1',
  };
  let daemon: Daemon | null = null;
  try {
    daemon = await spawnDaemon(env);
    const captured = await api<{ file_info: { filename: string } }>(daemon.httpUrl, '/capture?deliver=http', { method: 'POST' });
    assert.equal(captured.status, 200);
    const filename = captured.body.file_info.filename;
    const upload = await waitFor('the upload under way', () =>
      server.records[0] && server.records[0].bytes >= 1024 * 1024 ? server.records[0] : null,
    );
    const bytesAtSignal = upload.bytes;
    const first = daemon;
    first.child.kill('SIGTERM');
    const exit = await first.exited;
    daemon = null;
    const outboxAfterStop = (await entries(join(captureDir, '.outbox'))).filter((name) => name.endsWith('.json'));

    behaviour = 'ok';
    daemon = await spawnDaemon(env);
    const restarted = daemon;
    const hash = await sha256Of(join(captureDir, filename));
    await waitFor('the upload after the restart', () => (server.acknowledged().get(hash) ? true : null), 30_000);
    const delivered = await waitFor('the delivered mark', async () =>
      (await listImages(restarted.httpUrl)).find((i) => i.filename === filename && i.delivered.includes('http')) ? true : null,
    );
    const outboxAtEnd = await waitFor('an empty outbox', async () =>
      (await readdir(join(captureDir, '.outbox'))).length === 0 ? true : null,
    );
    const figures = {
      image_bytes: (await listImages(restarted.httpUrl))[0]?.size ?? 0,
      bytes_sent_at_sigterm: bytesAtSignal,
      exit_code: exit.code,
      outbox_entries_after_stop: outboxAfterStop.length,
      uploads_acknowledged: server.acknowledged().get(hash) ?? 0,
      requests: server.records.length,
      delivered_mark: delivered,
      outbox_empty_at_end: outboxAtEnd,
    };
    await recordFigures('SIGTERM mid HTTP upload', figures);
    assert.equal(exit.code, 0);
    assert.deepEqual(outboxAfterStop, [`${filename}.json`], 'the pending upload survived the stop');
    assert.equal(figures.uploads_acknowledged, 1, 'delivered exactly once, complete (SHA-256 of the body = the stored file)');
    restarted.child.kill('SIGTERM');
    assert.equal((await restarted.exited).code, 0);
    daemon = null;
  } finally {
    await stopDaemon(daemon);
    await server.down();
    await rm(dir, { recursive: true, force: true });
  }
});
