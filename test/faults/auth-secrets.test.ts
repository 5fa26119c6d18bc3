import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import mqtt from 'mqtt';
import { recordFigures } from '../helpers/faults-figures.js';
import { api, sleep, waitFor } from '../helpers/faults-fs.js';
import { flakyUploadServer } from '../helpers/faults-upload.js';
import { request } from '../helpers/mqtt.js';
import { freePort, makeTestCertificates, mosquittoMissing, startMosquitto } from '../helpers/mosquitto.js';
import { startTestNode, type TestNode } from '../helpers/node.js';

const TOKEN = 'http-token-Zq81vX';
const SENTINEL_IMAGE = 'capture_20200101_000000.dng';

test('with HTTP_TOKEN set, every route but /health answers 401 without the token, and nothing happens', { timeout: 30_000 }, async () => {
  const node = await startTestNode({ http_token: TOKEN, mqtt_enabled: false });
  try {
    const routes: Array<[string, string]> = [
      ['GET', '/status'],
      ['GET', '/images'],
      ['GET', `/images/${SENTINEL_IMAGE}`],
      ['DELETE', `/images/${SENTINEL_IMAGE}`],
      ['POST', '/capture'],
      ['POST', '/capture?return_file=true'],
      ['GET', '/logs?lines=10'],
      ['GET', '/no-such-route'],
      ['PUT', '/images'],
    ];
    let refused = 0;
    let asked = 0;
    for (const [method, path] of routes) {
      for (const headers of [
        undefined,
        { authorization: 'Bearer wrong-token' },
        { authorization: TOKEN },
        { authorization: `Basic ${TOKEN}` },
      ]) {
        asked += 1;
        const response = await api<{ detail: string }>(node.httpUrl, path, { method, ...(headers ? { headers } : {}) });
        assert.equal(response.status, 401, `${method} ${path} with ${JSON.stringify(headers)}`);
        assert.equal(typeof response.body.detail, 'string');
        assert.equal(response.headers.get('www-authenticate'), 'Bearer');
        refused += 1;
      }
    }
    const health = await api(node.httpUrl, '/health');
    const auth = { authorization: `Bearer ${TOKEN}` };
    const imagesBefore = (await api<unknown[]>(node.httpUrl, '/images', { headers: auth })).body.length;
    const allowed = await Promise.all([
      api(node.httpUrl, '/status', { headers: auth }),
      api(node.httpUrl, '/logs?lines=5', { headers: auth }),
      api(node.httpUrl, '/capture', { method: 'POST', headers: auth }),
    ]);
    await recordFigures('HTTP token', {
      requests_without_valid_token: asked,
      answered_401: refused,
      health_open: health.status === 200,
      images_taken_without_token: imagesBefore,
      with_token: allowed.map((r) => r.status).join(' '),
    });
    assert.equal(health.status, 200, '/health stays open for probes');
    assert.equal(imagesBefore, 0, 'a refused capture took no picture');
    assert.deepEqual(
      allowed.map((r) => r.status),
      [200, 200, 200],
    );
  } finally {
    await node.stop();
  }
});

const tlsMissing =
  mosquittoMissing() ??
  (spawnSync('openssl', ['version'], { stdio: 'ignore' }).error ? 'openssl is not installed' : null) ??
  (spawnSync('mosquitto_passwd', ['-h'], { stdio: 'ignore' }).error ? 'mosquitto_passwd is not installed' : null);

test('MQTT over TLS with a password; no secret in logs, status, telemetry, replies or anything on the broker', {
  skip: tlsMissing ?? false,
  timeout: 90_000,
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'camera-node-secrets-'));
  const secrets = {
    http_token: TOKEN,
    mqtt_password: 'mqtt-pass-7Hc2Qw',
    wrong_mqtt_password: 'wrong-pass-9Ux4Lm',
    upload_url_password: 'url-pass-3Kd8Np',
    upload_url_signature: 'sig-5Tb1Rz',
    upload_header: 'hdr-token-6Wm0Ys',
    upload_api_key: 'api-key-2Fv7Jg',
  };
  const nodes: TestNode[] = [];
  const upload = flakyUploadServer({ port: await freePort(), decide: (n) => (n === 1 ? 'error500' : 'ok') });
  await upload.up();
  let broker: Awaited<ReturnType<typeof startMosquitto>> | null = null;
  let controller: mqtt.MqttClient | null = null;
  try {
    const certs = await makeTestCertificates(dir);
    const passwords = join(dir, 'passwords');
    await execa('mosquitto_passwd', ['-c', '-b', passwords, 'cam', secrets.mqtt_password]);
    await execa('mosquitto_passwd', ['-b', passwords, 'controller', 'controller-pass']);
    broker = await startMosquitto([...certs.config, `password_file ${passwords}`, 'allow_anonymous false'], { listener: 'mqtts' });
    const caPem = await readFile(certs.caFile);

    // Everything on the broker is recorded, retained or not, from before the node connects.
    controller = await mqtt.connectAsync(broker.url, {
      ca: caPem,
      username: 'controller',
      password: 'controller-pass',
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    const seen: string[] = [];
    controller.on('message', (topic, payload) => seen.push(`${topic} ${payload.toString('latin1')}`));
    await controller.subscribeAsync('#', { qos: 1 });

    const uploadUrl = new URL(upload.url);
    uploadUrl.username = 'uploader';
    uploadUrl.password = secrets.upload_url_password;
    uploadUrl.searchParams.set('X-Amz-Signature', secrets.upload_url_signature);
    const node = await startTestNode({
      mqtt_url: broker.url,
      mqtt_ca_file: certs.caFile,
      mqtt_username: 'cam',
      mqtt_password: secrets.mqtt_password,
      http_token: secrets.http_token,
      upload_url: uploadUrl.toString(),
      upload_method: 'PUT',
      upload_headers: { authorization: `Bearer ${secrets.upload_header}`, 'x-api-key': secrets.upload_api_key },
      upload_retry_max_s: 1,
      telemetry_interval_s: 1,
    });
    nodes.push(node);
    const nodeId = node.config.node_id;
    const auth = { authorization: `Bearer ${secrets.http_token}` };

    // Work that logs, replies and reports: a delivered capture (after one failed upload), errors.
    const replies = [
      await request(controller, 'cameras', nodeId, { action: 'status' }),
      await request(controller, 'cameras', nodeId, { action: 'capture', deliver: 'http' }),
      await request(controller, 'cameras', nodeId, { action: 'delete', filename: '../etc/passwd' }),
      await request(controller, 'cameras', nodeId, { action: 'logs', lines: 0 }),
      await request(controller, 'cameras', nodeId, { action: 'send', filename: SENTINEL_IMAGE }),
      await request(controller, 'cameras', nodeId, { action: 'nope' }),
    ];
    await waitFor('the upload', () => (upload.acknowledged().size === 1 ? true : null), 20_000);
    // The secrets were really in use: the target got the header, the key and the signed URL.
    const first = upload.records[0];
    const sentSecrets =
      first?.headers['authorization'] === `Bearer ${secrets.upload_header}` &&
      first.headers['x-api-key'] === secrets.upload_api_key &&
      first.url.includes(secrets.upload_url_signature);
    await sleep(1500); // a telemetry period

    // A second node with a wrong password: refused, and its error must not carry the password either.
    const refusedNode = await startTestNode({
      mqtt_url: broker.url,
      mqtt_ca_file: certs.caFile,
      mqtt_username: 'cam',
      mqtt_password: secrets.wrong_mqtt_password,
      http_token: secrets.http_token,
    });
    nodes.push(refusedNode);
    const refusedStatus = await waitFor('the refusal in the status', async () => {
      const status = await api<{ mqtt: { connected: boolean; last_error: string | null } }>(refusedNode.httpUrl, '/status', {
        headers: auth,
      });
      return status.body.mqtt.last_error ? status.body.mqtt : null;
    });

    const places: Record<string, string> = {
      replies: JSON.stringify(replies),
      broker_messages: seen.join('\n'),
    };
    for (const n of nodes) {
      places[`${n.config.node_id} /status`] = JSON.stringify((await api(n.httpUrl, '/status', { headers: auth })).body);
      places[`${n.config.node_id} /logs`] = JSON.stringify((await api(n.httpUrl, `/logs?lines=5000&format=json`, { headers: auth })).body);
      for (const file of await readdir(n.config.log_dir))
        places[`${n.config.node_id} ${file}`] = await readFile(join(n.config.log_dir, file), 'latin1');
    }
    const leaks: string[] = [];
    for (const [where, text] of Object.entries(places)) {
      for (const [name, secret] of Object.entries(secrets)) if (text.includes(secret)) leaks.push(`${name} in ${where}`);
    }
    const telemetry = seen.filter((line) => line.startsWith(`cameras/${nodeId}/telemetry `)).length;
    await recordFigures('secrets (TLS + passwords)', {
      secrets: Object.keys(secrets).length,
      places_searched: Object.keys(places).length,
      broker_messages: seen.length,
      telemetry_messages: telemetry,
      log_bytes: Object.entries(places)
        .filter(([where]) => where.endsWith('.log'))
        .reduce((sum, [, text]) => sum + text.length, 0),
      wrong_password_refused: !refusedStatus.connected,
      tls_node_connected: replies[0]?.['status'] === 'success',
      leaks: leaks.length,
    });
    assert.equal(replies[0]?.['status'], 'success', 'the node answers over TLS with its password');
    assert.equal(refusedStatus.connected, false, 'a wrong password is refused');
    assert.ok(sentSecrets && upload.acknowledged().size === 1, 'the upload (with its secret headers and URL) happened');
    assert.ok(telemetry >= 1, 'telemetry was published');
    assert.deepEqual(leaks, [], 'no secret anywhere');
  } finally {
    await controller?.endAsync(true);
    for (const n of nodes) await n.stop();
    await broker?.stop();
    await upload.down();
    await rm(dir, { recursive: true, force: true });
  }
});
