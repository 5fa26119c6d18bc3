import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { createSchemaRegistry } from '../src/schemas.js';
import { collect, connectClient, request } from './helpers/mqtt.js';
import { makeTestCertificates, mosquittoMissing, startMosquitto, type Mosquitto } from './helpers/mosquitto.js';
import { startTestNode, type TestNode } from './helpers/node.js';

const missing = mosquittoMissing();
const cliMissing = spawnSync('mosquitto_pub', ['--help'], { stdio: 'ignore' }).error ? 'mosquitto-clients are not installed' : null;
const opensslMissing = spawnSync('openssl', ['version'], { stdio: 'ignore' }).error ? 'openssl is not installed' : null;
const validReply = createSchemaRegistry().validator('response.schema.json');

/** A password file with a node user and a controller user, written by mosquitto_passwd. */
async function passwordFile(dir: string, users: Record<string, string>): Promise<string> {
  const file = join(dir, 'passwords');
  let first = true;
  for (const [user, password] of Object.entries(users)) {
    await execa('mosquitto_passwd', [...(first ? ['-c'] : []), '-b', file, user, password]);
    first = false;
  }
  return file;
}

describe('against Mosquitto with passwords', { skip: missing ?? false }, () => {
  let broker: Mosquitto;
  let node: TestNode;
  const secret = 'node-secret-8f2a';

  let secrets = '';
  let passwords = '';

  before(async () => {
    secrets = await mkdtemp(join(tmpdir(), 'camera-node-passwords-'));
    const file = await passwordFile(secrets, { cam: secret, controller: 'controller-secret' });
    passwords = file;
    broker = await startMosquitto([`password_file ${file}`, 'allow_anonymous false']);
    node = await startTestNode({ mqtt_url: broker.url, mqtt_username: 'cam', mqtt_password: secret, mqtt_session_expiry_s: 600 });
  });
  after(async () => {
    await node?.stop();
    await broker?.stop();
    await rm(secrets, { recursive: true, force: true });
  });

  test('mosquitto_pub and mosquitto_sub drive a capture', { skip: cliMissing ?? false }, async () => {
    const auth = ['-h', '127.0.0.1', '-p', String(broker.port), '-u', 'controller', '-P', 'controller-secret'];
    const sub = execa('mosquitto_sub', [...auth, '-t', `cameras/${node.config.node_id}/res`, '-C', '1', '-W', '20']);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await execa('mosquitto_pub', [
      ...auth,
      '-q',
      '1',
      '-t',
      `cameras/${node.config.node_id}/cmd`,
      '-m',
      '{"id":"cli-1","action":"capture"}',
    ]);
    const { stdout } = await sub;
    const reply = JSON.parse(stdout) as Record<string, unknown>;
    assert.ok(validReply(reply), JSON.stringify(validReply.errors));
    assert.equal(reply['id'], 'cli-1');
    assert.equal(reply['status'], 'success');
  });

  test('MQTT 5: the reply goes to the response topic with the correlation data', async () => {
    const client = await connectClient(broker.url, { protocolVersion: 5, username: 'controller', password: 'controller-secret' });
    try {
      const replies = await collect(client, 'controller/replies/42');
      const correlationData = Buffer.from([0xca, 0xfe, 0x01]);
      await client.publishAsync(`cameras/${node.config.node_id}/cmd`, JSON.stringify({ id: 'v5-1', action: 'status' }), {
        qos: 1,
        properties: { responseTopic: 'controller/replies/42', correlationData },
      });
      const [reply] = await replies.waitFor();
      await replies.close();
      assert.equal(reply!.json()['id'], 'v5-1');
      assert.deepEqual(reply!.packet.properties?.correlationData, correlationData);
      assert.equal(reply!.packet.retain, false);
    } finally {
      await client.endAsync();
    }
  });

  test('a wrong password is refused and the secret never reaches the log or the status', async () => {
    const status = await (await fetch(`${node.httpUrl}/status`)).text();
    assert.ok(!status.includes(secret));
    const logs = await (await fetch(`${node.httpUrl}/logs?lines=1000&format=json`)).text();
    assert.ok(!logs.includes(secret), 'the MQTT password is not logged');
    await assert.rejects(connectClient(broker.url, { username: 'controller', password: 'wrong' }));
  });

  test('credentials in the MQTT_URL userinfo work and are never shown or logged', async () => {
    const urlSecret = 'url-secret-3c9d';
    await execa('mosquitto_passwd', ['-b', passwords, 'urlcam', urlSecret]);
    broker.reload();
    const withUserinfo = await startTestNode({ mqtt_url: `mqtt://urlcam:${urlSecret}@127.0.0.1:${broker.port}` });
    const client = await connectClient(broker.url, { username: 'controller', password: 'controller-secret' });
    try {
      // Mosquitto may have reread its password file only after the node's first attempt: it retries.
      const watch = await collect(client, `cameras/${withUserinfo.config.node_id}/availability`);
      await watch.waitFor((m) => m.payload.toString() === 'online', 1, 20_000);
      await watch.close();
      const reply = await request(client, 'cameras', withUserinfo.config.node_id, { action: 'status' });
      assert.equal(reply['status'], 'success');
      const status = await (await fetch(`${withUserinfo.httpUrl}/status`)).text();
      assert.ok(!status.includes(urlSecret) && !status.includes('urlcam'), status);
      assert.equal((JSON.parse(status) as { mqtt: { broker: string } }).mqtt.broker, `mqtt://127.0.0.1:${broker.port}`);
      const logs = await (await fetch(`${withUserinfo.httpUrl}/logs?lines=1000`)).text();
      assert.ok(!logs.includes(urlSecret), 'the URL password is not logged');
    } finally {
      await client.endAsync();
      await withUserinfo.stop();
    }
  });

  test('a refused connection is retried: the node comes online once its user exists', async () => {
    const late = await startTestNode({ mqtt_url: broker.url, mqtt_username: 'late', mqtt_password: 'late-secret' });
    const client = await connectClient(broker.url, { username: 'controller', password: 'controller-secret' });
    try {
      const watch = await collect(client, `cameras/${late.config.node_id}/availability`);
      const refused = (await (await fetch(`${late.httpUrl}/status`)).json()) as { mqtt: { connected: boolean; last_error: string | null } };
      assert.equal(refused.mqtt.connected, false);
      assert.match(refused.mqtt.last_error ?? '', /refused/i);
      await execa('mosquitto_passwd', ['-b', passwords, 'late', 'late-secret']);
      broker.reload();
      await watch.waitFor((m) => m.payload.toString() === 'online', 1, 30_000);
      await watch.close();
      const reply = await request(client, 'cameras', late.config.node_id, { action: 'status' });
      assert.equal(reply['status'], 'success');
    } finally {
      await client.endAsync();
      await late.stop();
    }
  });

  test('a command published while the broker restarted is executed exactly once after reconnect', async () => {
    const client = await connectClient(broker.url, { username: 'controller', password: 'controller-secret' });
    const nodeId = node.config.node_id;
    try {
      const before = await request(client, 'cameras', nodeId, { action: 'list' });
      await client.endAsync();
      await broker.restart();
      // The node is now waiting out its reconnect backoff; the command is queued in its session.
      const controller = await connectClient(broker.url, {
        username: 'controller',
        password: 'controller-secret',
        clean: false,
        clientId: 'controller-restart',
      });
      const replies = await collect(controller, `cameras/${nodeId}/res`);
      await controller.publishAsync(`cameras/${nodeId}/cmd`, JSON.stringify({ id: 'away-1', action: 'capture' }), { qos: 1 });
      const [reply] = await replies.waitFor((m) => m.json()['id'] === 'away-1', 1, 30_000);
      assert.equal(reply!.json()['status'], 'success');
      const after = await request(controller, 'cameras', nodeId, { action: 'list' });
      assert.equal(after['count'], (before['count'] as number) + 1, 'captured exactly once');
      assert.equal(replies.messages.filter((m) => m.json()['id'] === 'away-1').length, 1);
      await replies.close();
      await controller.endAsync();
    } finally {
      if (client.connected) await client.endAsync();
    }
  });
});

describe('against Mosquitto over TLS', { skip: missing ?? opensslMissing ?? false }, () => {
  let broker: Mosquitto;
  let node: TestNode | null = null;
  let caFile = '';

  let dir = '';

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'camera-node-certs-'));
    const certs = await makeTestCertificates(dir);
    caFile = certs.caFile;
    broker = await startMosquitto(certs.config, { listener: 'mqtts' });
  });
  after(async () => {
    await node?.stop();
    await broker?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('the node connects with MQTT_CA_FILE and answers commands', async () => {
    node = await startTestNode({ mqtt_url: broker.url, mqtt_ca_file: caFile });
    const client = await connectClient(broker.url, { ca: await import('node:fs/promises').then((fs) => fs.readFile(caFile)) });
    try {
      const reply = await request(client, 'cameras', node.config.node_id, { action: 'status' });
      assert.equal(reply['status'], 'success');
      assert.equal((reply['node_status'] as { mqtt: { connected: boolean } }).mqtt.connected, true);
    } finally {
      await client.endAsync();
    }
  });
});
