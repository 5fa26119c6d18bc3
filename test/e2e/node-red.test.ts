import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/mqtt/broker.js';
import { freePort, mosquittoMissing, startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { collect, connectClient } from '../helpers/mqtt.js';
import { waitFor } from '../helpers/delivery.js';
import { startTestNode, type TestNode } from '../helpers/node.js';

const FLOW = new URL('../../../deploy/node-red/flows.json', import.meta.url);

function nodeRedEntry(): string | null {
  try {
    return createRequire(import.meta.url).resolve('node-red/red.js');
  } catch {
    return null;
  }
}
const RED_JS = nodeRedEntry();

type FlowNode = Record<string, unknown> & { id: string; type: string };

/** The shipped flow, pointed at this test's broker, node and images dir. */
function adaptFlow(flow: FlowNode[], settings: { port: number; protocol: 4 | 5; nodeId: string; imagesDir: string }): FlowNode[] {
  const setEnv = (node: FlowNode | undefined, values: Record<string, string>): void => {
    assert.ok(node, 'the flow has the node to configure');
    const env = node['env'] as Array<{ name: string; value: string }>;
    for (const [name, value] of Object.entries(values)) {
      const entry = env.find((e) => e.name === name);
      assert.ok(entry, `the flow declares ${name}`);
      entry.value = value;
    }
  };
  setEnv(
    flow.find((n) => n.type === 'global-config'),
    { CAMERA_MQTT_HOST: '127.0.0.1', CAMERA_MQTT_PORT: String(settings.port), CAMERA_MQTT_PROTOCOL: String(settings.protocol) },
  );
  setEnv(
    flow.find((n) => n.type === 'tab'),
    { CAMERA_NODE_ID: settings.nodeId, CAMERA_IMAGES_DIR: settings.imagesDir },
  );
  // The sinks a person watches in the debug sidebar become one-line log probes the test can read.
  return flow.map((node) =>
    node.type === 'debug'
      ? {
          ...node,
          type: 'function',
          func: `node.log('PROBE ' + JSON.stringify({ probe: ${JSON.stringify(node.id)}, payload: msg.payload }));\nreturn null;`,
          outputs: 0,
          libs: [],
        }
      : node,
  );
}

interface NodeRed {
  child: ChildProcess;
  adminUrl: string;
  lines: string[];
  waitFor(pattern: RegExp, what: string): Promise<string>;
  stop(): Promise<void>;
}

async function startNodeRed(entry: string, userDir: string, flow: FlowNode[]): Promise<NodeRed> {
  const port = await freePort();
  await writeFile(join(userDir, 'flows.json'), JSON.stringify(flow, null, 2));
  await writeFile(
    join(userDir, 'settings.js'),
    `module.exports = ${JSON.stringify({
      uiHost: '127.0.0.1',
      uiPort: port,
      userDir,
      flowFile: 'flows.json',
      credentialSecret: false,
      httpAdminRoot: '/admin',
      httpNodeRoot: false,
      disableEditor: true,
      telemetry: { enabled: false, updateNotification: false },
      logging: { console: { level: 'info', metrics: false, audit: false } },
    })};\n`,
  );
  const child = spawn(process.execPath, [entry, '--userDir', userDir, '--settings', join(userDir, 'settings.js')], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env['PATH'] ?? '', HOME: userDir },
  });
  const lines: string[] = [];
  const waiters = new Set<{ pattern: RegExp; resolve: (line: string) => void }>();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => {
      lines.push(line);
      for (const waiter of [...waiters]) {
        if (waiter.pattern.test(line)) {
          waiters.delete(waiter);
          waiter.resolve(line);
        }
      }
    });
  }
  return {
    child,
    adminUrl: `http://127.0.0.1:${port}/admin`,
    lines,
    waitFor(pattern, what) {
      const seen = lines.find((line) => pattern.test(line));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const waiter = {
          pattern,
          resolve: (line: string) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`Node-RED: no ${what} within 30 s. Its output:\n${lines.join('\n')}`));
        }, 30_000);
        waiters.add(waiter);
        void exited.then(() => {
          if (!waiters.delete(waiter)) return;
          clearTimeout(timer);
          reject(new Error(`Node-RED exited before ${what}. Its output:\n${lines.join('\n')}`));
        });
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

/** Each PROBE line's JSON, for the named sink. */
function probes(lines: readonly string[], probe: string): Array<Record<string, unknown>> {
  return lines
    .map((line) => /PROBE (\{.*\})$/.exec(line)?.[1])
    .filter((json): json is string => json !== undefined)
    .map((json) => JSON.parse(json) as { probe: string; payload: Record<string, unknown> })
    .filter((entry) => entry.probe === probe)
    .map((entry) => entry.payload);
}

describe('the Node-RED flow (deploy/node-red/flows.json)', {
  skip: RED_JS ? false : 'node-red is not installed (npm install -D node-red)',
}, () => {
  let broker: EmbeddedBroker;
  let camera: TestNode;
  let red: NodeRed;
  let dir: string;
  let imagesDir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'camera-node-node-red-'));
    imagesDir = join(dir, 'images');
    await mkdir(join(dir, 'user'));
    broker = await startEmbeddedBroker({ host: '127.0.0.1', port: 0, logger: pino({ level: 'silent' }) });
    camera = await startTestNode({ mqtt_url: broker.url, mqtt_protocol_version: 4, ha_discovery: false });
    const flow = JSON.parse(await readFile(FLOW, 'utf8')) as FlowNode[];
    red = await startNodeRed(
      RED_JS ?? '',
      join(dir, 'user'),
      adaptFlow(flow, { port: broker.port, protocol: 4, nodeId: camera.config.node_id, imagesDir }),
    );
    await red.waitFor(/Started flows/, 'start of the flows');
    await red.waitFor(/Connected to broker/, 'broker connection');
  });
  after(async () => {
    await red?.stop();
    await camera?.stop();
    await broker?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('the Capture inject captures on the node, matches the reply and saves the image byte-identical', async () => {
    const injected = await fetch(`${red.adminUrl}/inject/capture-inject`, { method: 'POST' });
    assert.equal(injected.status, 200, await injected.text());

    await red.waitFor(/PROBE .*"probe":"capture-ok"/, 'matched capture reply');
    const [reply] = probes(red.lines, 'capture-ok');
    assert.equal(reply?.['status'], 'success');
    assert.equal(reply?.['node_id'], camera.config.node_id);
    const filename = (reply?.['file_info'] as { filename: string } | undefined)?.filename ?? '';
    assert.ok(filename, 'the reply names the image');

    await red.waitFor(/PROBE .*"probe":"image-saved"/, 'saved image');
    const [saved] = probes(red.lines, 'image-saved');
    const path = join(imagesDir, camera.config.node_id, filename);
    assert.equal(saved?.['path'], path);
    assert.equal(saved?.['request_id'], reply?.['id'], 'the image is the one this request asked for');
    const received = await readFile(path);
    const stored = await readFile(join(camera.config.capture_dir, filename));
    assert.ok(stored.length > 0);
    assert.ok(received.equals(stored), 'the saved file is byte-identical to the node’s');
    // No .part file is left behind: the file appears complete or not at all.
    assert.deepEqual(await readdir(join(imagesDir, camera.config.node_id)), [filename]);
    assert.deepEqual(probes(red.lines, 'capture-error'), []);
    // The flow's receipt, and only that, makes the node count the image delivered.
    const delivery = await waitFor('the receipt to mark the image delivered', async () => {
      const status = (await camera.node.commands.status()) as { delivery: { mqtt: { pending: number; delivered: number } } };
      return status.delivery.mqtt.delivered === 1 ? status.delivery.mqtt : null;
    });
    assert.equal(delivery.pending, 0);
  });

  test('the fleet output shows the node online with its telemetry', async () => {
    await red.waitFor(/PROBE .*"probe":"fleet-node".*"online":true.*"image_count"/, 'fleet entry with telemetry');
    const entry = probes(red.lines, 'fleet-node').findLast((e) => e['online'] === true && 'image_count' in e);
    assert.equal(entry?.['node_id'], camera.config.node_id);
    assert.equal(typeof entry?.['cpu_percent'], 'number');
    assert.equal(entry?.['camera_connected'], true);
  });
});

describe("the Node-RED flow over MQTT 5 (Mosquitto): replies under the node's namespace", {
  skip: !RED_JS ? 'node-red is not installed (npm install -D node-red)' : (mosquittoMissing() ?? false),
}, () => {
  let broker: Mosquitto;
  let camera: TestNode;
  let red: NodeRed;
  let dir: string;
  let imagesDir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'camera-node-node-red-v5-'));
    imagesDir = join(dir, 'images');
    await mkdir(join(dir, 'user'));
    broker = await startMosquitto();
    camera = await startTestNode({ mqtt_url: broker.url, mqtt_protocol_version: 5, ha_discovery: false });
    const flow = JSON.parse(await readFile(FLOW, 'utf8')) as FlowNode[];
    red = await startNodeRed(
      RED_JS ?? '',
      join(dir, 'user'),
      adaptFlow(flow, { port: broker.port, protocol: 5, nodeId: camera.config.node_id, imagesDir }),
    );
    await red.waitFor(/Started flows/, 'start of the flows');
    await red.waitFor(/Connected to broker/, 'broker connection');
  });
  after(async () => {
    await red?.stop();
    await camera?.stop();
    await broker?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('the capture command carries reply_to, sent_at and an expiry; the node answers under its namespace, the flow matches it', async () => {
    const watcher = await connectClient(broker.url, { protocolVersion: 5 });
    try {
      const commands = await collect(watcher, `cameras/${camera.config.node_id}/cmd`);
      const replies = await collect(watcher, `cameras/${camera.config.node_id}/res/node-red`);
      const plain = await collect(watcher, `cameras/${camera.config.node_id}/res`);
      const injected = await fetch(`${red.adminUrl}/inject/capture-inject`, { method: 'POST' });
      assert.equal(injected.status, 200, await injected.text());

      const [command] = await commands.waitFor();
      assert.ok(command);
      const id = command.json()['id'];
      assert.equal(command.json()['reply_to'], 'node-red');
      assert.equal(typeof command.json()['sent_at'], 'number');
      assert.ok((command.packet.properties?.messageExpiryInterval ?? 0) > 0, 'the broker may drop it once stale');
      const [reply] = await replies.waitFor((m) => m.json()['id'] === id);
      assert.ok(reply);
      await red.waitFor(/PROBE .*"probe":"capture-ok"/, 'matched capture reply');
      assert.equal(probes(red.lines, 'capture-ok')[0]?.['id'], id);
      await red.waitFor(/PROBE .*"probe":"image-saved"/, 'saved image');
      const filename = (reply.json()['file_info'] as { filename: string }).filename;
      assert.ok(
        (await readFile(join(imagesDir, camera.config.node_id, filename))).equals(
          await readFile(join(camera.config.capture_dir, filename)),
        ),
      );
      // The reply went to the requester's topic only.
      assert.deepEqual(
        plain.messages.map((m) => m.json()['id']),
        [],
      );
      for (const collector of [commands, replies, plain]) await collector.close();
    } finally {
      await watcher.endAsync();
    }
  });
});
