import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnDaemon, type Daemon } from '../helpers/daemon.js';
import { recordFigures } from '../helpers/faults-figures.js';
import { api, entries, imagesOnDisk, listImages, sha256Of, sleep, waitFor } from '../helpers/faults-fs.js';
import { flakyUploadServer, type Behaviour } from '../helpers/faults-upload.js';
import { freePort } from '../helpers/mosquitto.js';
import { startTestNode } from '../helpers/node.js';

const IMAGES = 10;

interface HttpDelivery {
  delivery: { http: { pending: number; delivered: number; failed: number; last_error: string | null } };
}

/** Hashes of the stored images, for telling which image an upload body was. */
async function storedHashes(captureDir: string): Promise<Map<string, string>> {
  const hashes = new Map<string, string>();
  for (const name of (await imagesOnDisk(captureDir)).keys()) hashes.set(await sha256Of(join(captureDir, name)), name);
  return hashes;
}

test('upload target down, then flapping (refused, 500, stall, 429 + Retry-After, reset): every image delivered exactly once', {
  timeout: 120_000,
}, async () => {
  // Retries start after 0.5 s and wait at most 1 s (upload_retry_base_s, upload_retry_max_s), and a stall
  // is given up after 1 s without progress (upload_timeout_s): minutes of flapping in the field take seconds here.
  const port = await freePort();
  const cycle: Behaviour[] = ['error500', 'stall', 'retry429', 'ok', 'reset', 'error500', 'ok', 'stall-mid', 'ok'];
  const server = flakyUploadServer({ port, decide: (n) => cycle[(n - 1) % cycle.length] ?? 'ok', retryAfterS: 1 });
  const node = await startTestNode({
    upload_url: server.url,
    upload_method: 'PUT',
    upload_retry_base_s: 0.5,
    upload_retry_max_s: 1,
    upload_timeout_s: 1,
  });
  try {
    // Down: nothing listens, every attempt is refused.
    for (let i = 0; i < IMAGES; i += 1) assert.equal((await api(node.httpUrl, '/capture?deliver=http', { method: 'POST' })).status, 200);
    await waitFor('a refused attempt', async () =>
      (await api<HttpDelivery>(node.httpUrl, '/status')).body.delivery.http.last_error?.includes('ECONNREFUSED') ? true : null,
    );
    const downSince = Date.now();
    await sleep(2000);
    const downSeconds = (Date.now() - downSince) / 1000;

    // Flapping: misbehaving answers, with two more outages in between.
    await server.up();
    for (let outage = 0; outage < 2; outage += 1) {
      await waitFor('a few requests', () => (server.records.length >= 6 * (outage + 1) ? true : null), 30_000);
      await server.down();
      await sleep(1500);
      await server.up();
    }
    await waitFor(
      'an empty upload queue',
      async () => ((await api<HttpDelivery>(node.httpUrl, '/status')).body.delivery.http.pending === 0 ? true : null),
      90_000,
    );
    await sleep(1500); // anything sent again after a success would show up here
    const http = (await api<HttpDelivery>(node.httpUrl, '/status')).body.delivery.http;

    const hashes = await storedHashes(node.config.capture_dir);
    // Attempts the node made while nothing listened (each image keeps its own backoff): a figure.
    const log = (await Promise.all((await entries(node.config.log_dir)).map((f) => readFile(join(node.config.log_dir, f), 'utf8')))).join(
      '\n',
    );
    const refused = log.split('\n').filter((line) => line.includes('upload failed; will retry') && line.includes('ECONNREFUSED')).length;
    const acks = server.acknowledged();
    const listed = await listImages(node.httpUrl);
    // How long after each 429 (Retry-After: 1) the node sent its next request, for any image: a figure, not a check.
    const gaps429 = server.records.flatMap((r, i) => {
      const next = server.records[i + 1];
      return r.behaviour === 'retry429' && next ? [(next.at - r.at) / 1000] : [];
    });
    const behaviours = new Map<string, number>();
    for (const r of server.records) behaviours.set(r.behaviour, (behaviours.get(r.behaviour) ?? 0) + 1);
    const figures = {
      images: IMAGES,
      requests: server.records.length,
      refused_windows: 3,
      refused_attempts: refused,
      first_outage_s: downSeconds.toFixed(1),
      by_behaviour: [...behaviours].map(([b, n]) => `${b}:${n}`).join(' '),
      delivered_once: [...hashes.keys()].filter((hash) => acks.get(hash) === 1).length,
      delivered_twice: [...acks.values()].filter((n) => n > 1).length,
      not_delivered: [...hashes.keys()].filter((hash) => !acks.has(hash)).length,
      acked_unknown_body: [...acks.keys()].filter((hash) => !hashes.has(hash)).length,
      given_up: http.failed,
      marked_delivered: listed.filter((i) => i.delivered.includes('http')).length,
      min_s_to_next_request_after_429: gaps429.length ? Math.min(...gaps429).toFixed(2) : 'n/a',
    };
    await recordFigures('upload target down, then flapping', figures);
    assert.equal(hashes.size, IMAGES);
    assert.equal(figures.not_delivered, 0, 'no image lost');
    assert.equal(figures.delivered_twice, 0, 'no image acknowledged twice');
    assert.equal(figures.acked_unknown_body, 0, 'every acknowledged body is a complete stored image');
    assert.equal(figures.given_up, 0, 'transient failures are never given up');
    assert.equal(figures.marked_delivered, IMAGES);
    assert.equal(http.delivered, IMAGES);
    assert.deepEqual(await entries(join(node.config.capture_dir, '.outbox')), [], 'the outbox is empty');
  } finally {
    await node.stop();
    await server.down();
  }
});

test('kill -9 during an upload, 3 times in a row: the outbox survives and the image is delivered exactly once', {
  timeout: 90_000,
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'camera-node-upload-kill9-'));
  const captureDir = join(dir, 'images');
  let behaviour: Behaviour = 'stall-mid';
  const server = flakyUploadServer({ port: await freePort(), decide: () => behaviour, cutAfterBytes: 1024 * 1024 });
  await server.up();
  const env = {
    CAPTURE_DIR: captureDir,
    LOG_DIR: join(dir, 'logs'),
    MQTT_ENABLED: 'false',
    CAMERA_SIM_SENSOR: 'ov5647',
    UPLOAD_URL: server.url,
    UPLOAD_METHOD: 'PUT',
    UPLOAD_TIMEOUT_S: '30',
    UPLOAD_RETRY_BASE_S: '0.5',
    UPLOAD_RETRY_MAX_S: '1',
  };
  let daemon: Daemon | null = null;
  const kills = 3;
  let outboxSurvived = 0;
  try {
    daemon = await spawnDaemon(env);
    const captured = await api<{ file_info: { filename: string } }>(daemon.httpUrl, '/capture?deliver=http', { method: 'POST' });
    const filename = captured.body.file_info.filename;
    const hash = await sha256Of(join(captureDir, filename));
    for (let kill = 1; kill <= kills; kill += 1) {
      await waitFor(
        `upload attempt ${kill} under way`,
        () => ((server.records[kill - 1]?.bytes ?? 0) >= 1024 * 1024 ? true : null),
        30_000,
      );
      daemon.child.kill('SIGKILL');
      await daemon.exited;
      daemon = null;
      if ((await entries(join(captureDir, '.outbox'))).includes(`${filename}.json`)) outboxSurvived += 1;
      if (kill === kills) behaviour = 'ok';
      daemon = await spawnDaemon(env);
    }
    const node = daemon;
    await waitFor('the upload', () => (server.acknowledged().get(hash) ? true : null), 30_000);
    await waitFor('the delivered mark', async () =>
      (await listImages(node.httpUrl)).find((i) => i.delivered.includes('http')) ? true : null,
    );
    await sleep(1000);
    const figures = {
      kills_mid_upload: kills,
      outbox_survived: outboxSurvived,
      requests: server.records.length,
      acknowledged: server.acknowledged().get(hash) ?? 0,
      outbox_left: (await entries(join(captureDir, '.outbox'))).length,
      temp_left: (await entries(join(captureDir, '.tmp'))).length,
    };
    await recordFigures('kill -9 mid upload x3', figures);
    assert.equal(outboxSurvived, kills, 'the outbox entry was on disk after every kill');
    assert.equal(figures.acknowledged, 1, 'delivered exactly once, complete');
    assert.equal(figures.outbox_left, 0);
    node.child.kill('SIGTERM');
    assert.equal((await node.exited).code, 0);
    daemon = null;
  } finally {
    if (daemon) {
      daemon.child.kill('SIGKILL');
      await daemon.exited;
    }
    await server.down();
    await rm(dir, { recursive: true, force: true });
  }
});
