import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { MqttClient } from 'mqtt';
import { ConfigError, loadConfig, type Config } from '../src/config/config.js';
import {
  clientIdFor,
  connectionSettings,
  displayUrl,
  reconnectDelay,
  RECONNECT_MAX_MS,
  RECONNECT_MIN_MS,
} from '../src/mqtt/client-options.js';
import { createCommandHandler, type ActionDefinition, type Reply } from '../src/mqtt/command-handler.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../src/mqtt/broker.js';
import { createSchemaRegistry } from '../src/schemas.js';
import { collect, connectClient, request } from './helpers/mqtt.js';
import { startTcpProxy, type TcpProxy } from './helpers/proxy.js';
import { startTestNode, type TestNode } from './helpers/node.js';

const silentLogger = () => pino({ level: 'silent' });
const schemas = createSchemaRegistry();
const validReply = schemas.validator('response.schema.json');

async function baseConfig(overrides: Partial<Config> = {}): Promise<Config> {
  return { ...(await loadConfig({ argv: [], env: {} })), node_id: 'cam1', ...overrides };
}

describe('connection settings', () => {
  test('credentials in the URL move into the options and never stay in the URL', async () => {
    const settings = await connectionSettings(
      await baseConfig(),
      'mqtts://user:p%40ss-secret@broker.example:8883',
      'cameras/cam1/availability',
      5,
    );
    assert.ok(!settings.url.includes('secret') && !settings.url.includes('user'), settings.url);
    assert.equal(settings.options.username, 'user');
    assert.equal(settings.options.password, 'p@ss-secret');
    assert.equal(displayUrl('mqtt://user:secret@broker.example:1883'), 'mqtt://broker.example:1883');
    assert.equal(displayUrl('not a url'), '<invalid url>');
  });

  test('MQTT_USERNAME and MQTT_PASSWORD win over the URL userinfo', async () => {
    const config = await baseConfig({ mqtt_username: 'node', mqtt_password: 'from-config' });
    const settings = await connectionSettings(config, 'mqtt://user:from-url@broker.example', 'a', 5);
    assert.equal(settings.options.username, 'node');
    assert.equal(settings.options.password, 'from-config');
  });

  test('MQTT 5: a persistent session with an expiry, the offline Last Will, a client id from the node id', async () => {
    const config = await baseConfig({ mqtt_session_expiry_s: 1234 });
    const { options } = await connectionSettings(config, 'mqtt://broker.example', 'cameras/cam1/availability');
    assert.equal(options.protocolVersion, 5, 'MQTT 5 by default');
    assert.equal(options.clean, false);
    assert.equal(options.properties?.sessionExpiryInterval, 1234);
    assert.equal(options.clientId, clientIdFor('cam1'));
    assert.match(String(options.clientId), /cam1/);
    assert.deepEqual(
      { ...options.will, payload: options.will?.payload.toString() },
      {
        topic: 'cameras/cam1/availability',
        payload: 'offline',
        qos: 1,
        retain: true,
      },
    );
    assert.equal(options.reconnectOnConnackError, true, 'a refused connection is retried too');
  });

  test('MQTT 3.1.1: the same persistent session without MQTT 5 properties', async () => {
    const { options } = await connectionSettings(await baseConfig({ mqtt_protocol_version: 4 }), 'ws://broker.example/mqtt', 'a');
    assert.equal(options.protocolVersion, 4);
    assert.equal(options.clean, false);
    assert.equal(options.properties, undefined);
  });

  test('an unsupported scheme is a config error that does not show the password', async () => {
    await assert.rejects(connectionSettings(await baseConfig(), 'http://user:hunter2@broker.example', 'a'), (err: Error) => {
      assert.ok(err instanceof ConfigError);
      assert.ok(!err.message.includes('hunter2'), err.message);
      return true;
    });
  });

  test('TLS files are read; an unreadable one is a config error naming the setting', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'camera-node-tls-'));
    try {
      await writeFile(join(dir, 'ca.pem'), 'CA PEM');
      await writeFile(join(dir, 'cert.pem'), 'CERT PEM');
      await writeFile(join(dir, 'key.pem'), 'KEY PEM');
      const config = await baseConfig({
        mqtt_ca_file: join(dir, 'ca.pem'),
        mqtt_cert_file: join(dir, 'cert.pem'),
        mqtt_key_file: join(dir, 'key.pem'),
      });
      const { options } = await connectionSettings(config, 'mqtts://broker.example', 'a');
      assert.equal(String(options.ca), 'CA PEM');
      assert.equal(String(options.cert), 'CERT PEM');
      assert.equal(String(options.key), 'KEY PEM');
      await assert.rejects(
        connectionSettings(await baseConfig({ mqtt_ca_file: join(dir, 'missing.pem') }), 'mqtts://broker.example', 'a'),
        /MQTT_CA_FILE/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('the reconnect wait doubles per failed attempt up to the cap, with bounded jitter', () => {
    const middle = () => 0.5;
    const waits = Array.from({ length: 12 }, (_, failures) => reconnectDelay(failures, middle));
    assert.equal(waits[0], RECONNECT_MIN_MS);
    assert.equal(waits[1], 2 * RECONNECT_MIN_MS);
    assert.equal(waits.at(-1), RECONNECT_MAX_MS);
    for (let i = 1; i < waits.length; i += 1) assert.ok(waits[i]! >= waits[i - 1]!, `not decreasing: ${waits.join(',')}`);
    assert.equal(reconnectDelay(1000, middle), RECONNECT_MAX_MS, 'a long outage stays at the cap');
    assert.equal(
      reconnectDelay(3, () => 0),
      Math.round(8 * RECONNECT_MIN_MS * 0.8),
    );
    assert.equal(
      reconnectDelay(3, () => 1),
      Math.round(8 * RECONNECT_MIN_MS * 1.2),
    );
  });
});

describe('command handler', () => {
  const ajv = createSchemaRegistry().ajv;

  function slowAction() {
    let runs = 0;
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const action: ActionDefinition = {
      validate: ajv.compile({ type: 'object', additionalProperties: false, properties: { n: { type: 'integer' } } }),
      run: async (params) => {
        runs += 1;
        await gate;
        return { n: params['n'] ?? null, run: runs };
      },
    };
    return { action, runs: () => runs, release: () => release() };
  }

  test('duplicates of a running command are executed once; every delivery gets the reply', async () => {
    const slow = slowAction();
    const handler = createCommandHandler({
      nodeId: 'cam1',
      maxCommandBytes: 1024,
      actions: new Map([['slow', slow.action]]),
      logger: silentLogger(),
    });
    const payload = Buffer.from(JSON.stringify({ id: 'x1', action: 'slow', n: 7 }));
    const first = handler.handle(payload, 'cameras/cam1/cmd');
    const second = handler.handle(payload, 'cameras/all/cmd');
    slow.release();
    const [a, b] = await Promise.all([first, second]);
    const third = await handler.handle(payload, 'cameras/cam1/cmd');
    assert.equal(slow.runs(), 1);
    assert.deepEqual(a, { n: 7, run: 1, id: 'x1', node_id: 'cam1', action: 'slow', status: 'success' });
    assert.deepEqual(b, a);
    assert.deepEqual(third, a);
    await handler.handle(Buffer.from(JSON.stringify({ id: 'x2', action: 'slow' })), 'cameras/cam1/cmd');
    assert.equal(slow.runs(), 2, 'another id runs again');
  });

  test('an unknown action names the actions there are; a failure becomes an error reply', async () => {
    const failing: ActionDefinition = {
      validate: ajv.compile({ type: 'object' }),
      run: async () => {
        throw new Error('boom');
      },
    };
    const handler = createCommandHandler({
      nodeId: 'cam1',
      maxCommandBytes: 1024,
      actions: new Map([['fail', failing]]),
      logger: silentLogger(),
    });
    const unknown: Reply = await handler.handle(Buffer.from('{"id":"u1","action":"reboot"}'), 't');
    assert.equal(unknown.error?.code, 'bad_request');
    assert.match(unknown.error?.message ?? '', /reboot.*fail/);
    const failed = await handler.handle(Buffer.from('{"id":"f1","action":"fail"}'), 't');
    assert.deepEqual(failed.error?.code, 'internal');
    assert.equal(failed.id, 'f1');
    for (const reply of [unknown, failed]) assert.ok(validReply(reply), JSON.stringify(validReply.errors));
  });
});

describe('a node whose network drops (embedded broker behind a relay)', () => {
  let broker: EmbeddedBroker;
  let proxy: TcpProxy;
  let node: TestNode;
  let client: MqttClient;
  let nodeId: string;

  before(async () => {
    broker = await startEmbeddedBroker({ host: '127.0.0.1', port: 0, logger: silentLogger() });
    proxy = await startTcpProxy({ host: '127.0.0.1', port: broker.port });
    node = await startTestNode({ mqtt_url: proxy.url, mqtt_protocol_version: 4 });
    nodeId = node.config.node_id;
    client = await connectClient(broker.url);
  });
  after(async () => {
    await client?.endAsync();
    await node?.stop();
    await proxy?.stop();
    await broker?.stop();
  });

  test('the Last Will marks it offline; a command sent meanwhile runs once after it is back; state is republished', async () => {
    const plane = node.node.mqtt!;
    // Other parts publish with the plane's client after every (re)connect.
    plane.onConnect(async () => {
      await plane.client()?.publishAsync(`test/${nodeId}/hook`, 'reconnected', { qos: 1 });
    });
    const availability = await collect(client, `cameras/${nodeId}/availability`);
    const statuses = await collect(client, `cameras/${nodeId}/status`);
    const hooks = await collect(client, `test/${nodeId}/hook`);
    const replies = await collect(client, `cameras/${nodeId}/res`);
    await availability.waitFor((m) => m.payload.toString() === 'online');
    const before = await request(client, 'cameras', nodeId, { action: 'list' });

    await proxy.cut();
    await availability.waitFor((m) => m.payload.toString() === 'offline');
    // The node is away: the broker keeps this in the node's persistent session.
    await client.publishAsync(`cameras/${nodeId}/cmd`, JSON.stringify({ id: 'while-away', action: 'capture' }), { qos: 1 });
    await proxy.restore();

    const [reply] = await replies.waitFor((m) => m.json()['id'] === 'while-away', 1, 20_000);
    assert.ok(validReply(reply!.json()), JSON.stringify(validReply.errors));
    assert.equal(reply!.json()['status'], 'success');
    await availability.waitFor((m) => m.payload.toString() === 'online', 2);
    // Republished on reconnect: the status now counts the second connection.
    await statuses.waitFor((m) => (m.json()['mqtt'] as { connects: number }).connects === 2);
    await hooks.waitFor((m) => m.payload.toString() === 'reconnected');

    const after = await request(client, 'cameras', nodeId, { action: 'list' });
    assert.equal(after['count'], (before['count'] as number) + 1, 'captured exactly once');
    assert.equal(replies.messages.filter((m) => m.json()['id'] === 'while-away').length, 1);
    const http = (await (await fetch(`${node.httpUrl}/status`)).json()) as {
      mqtt: { connected: boolean; connects: number; embedded: boolean };
    };
    assert.equal(http.mqtt.connected, true);
    assert.equal(http.mqtt.connects, 2);
    assert.equal(http.mqtt.embedded, false);
    for (const watch of [availability, statuses, hooks, replies]) await watch.close();
  });

  test('an action registered by another part is answered like the built-in ones', async () => {
    const plane = node.node.mqtt!;
    plane.registerAction('echo', {
      validate: schemas.ajv.compile({
        type: 'object',
        required: ['text'],
        additionalProperties: false,
        properties: { text: { type: 'string' } },
      }),
      run: async (params) => ({ echoed: params['text'] }),
    });
    assert.throws(
      () => plane.registerAction('capture', { validate: schemas.ajv.compile({}), run: async () => ({}) }),
      /already registered/,
    );
    const ok = await request(client, 'cameras', nodeId, { action: 'echo', text: 'hello' });
    assert.equal(ok['status'], 'success');
    assert.equal(ok['echoed'], 'hello');
    const bad = await request(client, 'cameras', nodeId, { id: 'echo-bad', action: 'echo', text: 5 });
    assert.equal(bad['id'], 'echo-bad');
    assert.equal((bad['error'] as { code: string }).code, 'bad_request');
  });
});

describe('a node whose broker stops answering', () => {
  test('stop() still ends: the offline publish and the disconnect are bounded waits', { timeout: 30_000 }, async () => {
    const broker = await startEmbeddedBroker({ host: '127.0.0.1', port: 0, logger: silentLogger() });
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: broker.port });
    const node = await startTestNode({ mqtt_url: proxy.url, mqtt_protocol_version: 4 });
    try {
      assert.equal(node.node.mqtt!.status().connected, true);
      proxy.freeze();
      await node.stop();
      assert.equal(node.node.mqtt!.client(), null, 'the client is gone');
      assert.equal(node.node.mqtt!.status().connected, false);
    } finally {
      await node.stop();
      await proxy.stop();
      await broker.stop();
    }
  });
});

describe('over WebSockets', () => {
  test('a ws:// broker URL works end to end', async (t) => {
    // `ws` is the WebSocket library mqtt.js itself uses in Node; the test serves aedes with it.
    const ws = (await import('ws' as string).catch(() => null)) as null | {
      WebSocketServer: new (options: {
        host: string;
        port: number;
      }) => {
        on(event: 'connection', fn: (socket: unknown) => void): void;
        once(event: 'listening', fn: () => void): void;
        address(): { port: number };
        clients: Set<{ terminate(): void }>;
        close(fn: () => void): void;
      };
      createWebSocketStream: (socket: unknown) => import('node:stream').Duplex;
    };
    if (!ws) {
      t.skip('the ws package (a dependency of mqtt) is not installed');
      return;
    }
    const { Aedes } = await import('aedes');
    const aedes = await Aedes.createBroker();
    const server = new ws.WebSocketServer({ host: '127.0.0.1', port: 0 });
    server.on('connection', (socket) => aedes.handle(ws.createWebSocketStream(socket)));
    await new Promise<void>((resolve) => server.once('listening', resolve));
    const url = `ws://127.0.0.1:${server.address().port}/mqtt`;
    let node: TestNode | null = null;
    let client: MqttClient | null = null;
    try {
      node = await startTestNode({ mqtt_url: url, mqtt_protocol_version: 4 });
      client = await connectClient(url);
      const reply = await request(client, 'cameras', node.config.node_id, { action: 'status' });
      assert.equal(reply['status'], 'success');
      assert.equal((reply['node_status'] as { mqtt: { broker: string } }).mqtt.broker, url);
    } finally {
      await client?.endAsync();
      await node?.stop();
      for (const socket of server.clients) socket.terminate();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
    }
  });
});

test('an error on the embedded broker’s listening server is logged, not thrown (it would crash the node)', async () => {
  const seen: string[] = [];
  const logger = pino({ level: 'error' }, { write: (line: string) => void seen.push(line) });
  const broker = await startEmbeddedBroker({ host: '127.0.0.1', port: 0, logger });
  try {
    assert.doesNotThrow(() => broker.server.emit('error', Object.assign(new Error('accept EMFILE'), { code: 'EMFILE' })));
    assert.ok(
      seen.some((line) => line.includes('EMFILE')),
      'logged',
    );
    const client = await connectClient(broker.url);
    await client.endAsync();
  } finally {
    await broker.stop();
  }
});
