import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import type { MqttClient } from 'mqtt';
import { waitFor } from './helpers/delivery.js';
import { connectClient } from './helpers/mqtt.js';
import { startTestNode, type TestNode } from './helpers/node.js';

/**
 * The image path of the shipped Node-RED flow (manifests and chunks in, the reassembly, the file
 * node, the rename, commands out) run against a real node over a real broker, each function node
 * called as Node-RED calls it. Node-RED itself runs the whole flow in `npm run test:e2e`; this keeps
 * the receipt protocol under `npm test`: the node counts an image delivered only on the flow's
 * receipt, and the flow recovers from a lost chunk and a lost receipt.
 */
type FlowNode = Record<string, unknown> & { id: string; type: string };
type Msg = Record<string, unknown> & { topic: string; payload: unknown };
type Fn = (msg: Msg, ...rest: unknown[]) => Msg | Array<Msg | null> | null;

const FLOW = new URL('../../deploy/node-red/flows.json', import.meta.url);
const LIBS: Record<string, unknown> = { crypto, fs, path, os };

let camera: TestNode;
let client: MqttClient;
let imagesDir: string;
const store: Record<'context' | 'flow', Record<string, unknown>> = { context: {}, flow: {} };
/** Filters on what the flow publishes and what it receives: the faults this test injects. */
let dropOut: (msg: Msg) => boolean = () => false;
let dropIn: (topic: string) => boolean = () => false;
const commands: Array<Record<string, unknown>> = [];

function compile(node: FlowNode | undefined): Fn {
  assert.ok(node, 'the flow has the node');
  const libs = (node['libs'] as Array<{ var: string; module: string }>) ?? [];
  const run = new Function('msg', 'node', 'context', 'flow', 'env', ...libs.map((lib) => lib.var), String(node['func']));
  const scope = (name: 'context' | 'flow') => ({
    get: (key: string) => store[name][key],
    set: (key: string, value: unknown) => {
      store[name][key] = value;
    },
  });
  const env = { get: (name: string) => ({ CAMERA_IMAGES_DIR: imagesDir, CAMERA_TOPIC_PREFIX: 'cameras' })[name] ?? '' };
  const red = { status: () => undefined, warn: () => undefined, error: () => undefined, log: () => undefined };
  return (msg) => run(msg, red, scope('context'), scope('flow'), env, ...libs.map((lib) => LIBS[lib.module])) as ReturnType<Fn>;
}

before(async () => {
  const flow = JSON.parse(await readFile(FLOW, 'utf8')) as FlowNode[];
  const byId = new Map(flow.map((node) => [node.id, node]));
  const reassemble = compile(byId.get('save-image'));
  const rename = compile(byId.get('publish-image'));
  imagesDir = await mkdtemp(path.join(os.tmpdir(), 'camera-node-red-images-'));
  camera = await startTestNode({ ha_discovery: false, delivery_reoffer_base_s: 1, delivery_reoffer_max_s: 1 });
  client = await connectClient(camera.node.mqttUrl ?? '');
  const publish = (msg: Msg | null | undefined): void => {
    if (!msg) return;
    // Every command the flow sends, including those the test then loses on the way.
    commands.push(msg.payload as Record<string, unknown>);
    if (dropOut(msg)) return;
    void client.publishAsync(msg.topic, JSON.stringify(msg.payload), { qos: 1 });
  };
  // One message at a time, in order, as Node-RED delivers them to a function node.
  let queue = Promise.resolve();
  client.on('message', (topic, payload) => {
    if (dropIn(topic)) return;
    queue = queue.then(async () => {
      const out = reassemble({ topic, payload });
      if (!Array.isArray(out)) return;
      const [image, command] = out;
      publish(command);
      if (!image) return;
      // The file node: creates the directory, writes the buffer to msg.filename.
      await mkdir(path.dirname(String(image['filename'])), { recursive: true });
      await writeFile(String(image['filename']), image.payload as Buffer);
      const saved = rename(image);
      if (Array.isArray(saved)) publish(saved[1]);
    });
  });
  await client.subscribeAsync(['cameras/+/images/+/manifest', 'cameras/+/images/+/chunk/+'], { qos: 1 });
});

after(async () => {
  await client?.endAsync();
  await camera?.stop();
  await rm(imagesDir, { recursive: true, force: true });
});

const mqttDelivery = async () =>
  ((await camera.node.commands.status()) as { delivery: { mqtt: { pending: number; delivered: number } } }).delivery.mqtt;

async function capture(): Promise<string> {
  const result = await camera.node.commands.capture({ deliver: 'mqtt' }, { source: 'http' });
  assert.equal(result.status, 'success', JSON.stringify(result));
  return (result as unknown as { file_info: { filename: string } }).file_info.filename;
}

async function delivered(count: number) {
  return waitFor(`${count} images delivered`, async () => {
    const status = await mqttDelivery();
    return status.delivered === count && status.pending === 0 ? status : null;
  });
}

const savedBytes = (filename: string) => readFile(path.join(imagesDir, camera.config.node_id, filename));
const storedBytes = (filename: string) => readFile(path.join(camera.config.capture_dir, filename));

test('an image the flow saved is delivered only by its receipt, sent after the file is in place', async () => {
  const filename = await capture();
  await delivered(1);
  assert.ok((await savedBytes(filename)).equals(await storedBytes(filename)));
  const receipt = commands.find((c) => c['action'] === 'receipt' && c['filename'] === filename);
  assert.equal(
    receipt?.['sha256'],
    crypto
      .createHash('sha256')
      .update(await storedBytes(filename))
      .digest('hex'),
  );
  assert.equal(receipt?.['reply_to'], 'node-red');
  assert.equal(typeof receipt?.['sent_at'], 'number');
  assert.deepEqual((await readdir(path.join(imagesDir, camera.config.node_id))).sort(), [filename], 'no .part file left');
});

test('a chunk lost on the first offer: at the re-offer the flow asks for that chunk alone, then receipts', async () => {
  let dropped = false;
  dropIn = (topic) => {
    if (dropped || !topic.endsWith('/chunk/0')) return false;
    dropped = true;
    return true;
  };
  const before = (await mqttDelivery()).delivered;
  const filename = await capture();
  await delivered(before + 1);
  dropIn = () => false;
  assert.ok(dropped, 'a chunk was dropped');
  const sends = commands.filter((c) => c['action'] === 'send' && c['filename'] === filename);
  assert.deepEqual(
    sends.map((c) => c['chunks']),
    [[0]],
    'one send, for the missing chunk only',
  );
  assert.ok((await savedBytes(filename)).equals(await storedBytes(filename)));
});

test('a receipt lost, then Node-RED restarted: the re-offer of the saved image gets a receipt, no transfer', async () => {
  let lost = 0;
  dropOut = (msg) => {
    const payload = msg.payload as Record<string, unknown>;
    if (payload['action'] !== 'receipt' || lost > 0) return false;
    lost += 1;
    // The restart: the flow's memory is gone, only the saved file is left.
    store.context = {};
    store.flow = {};
    return true;
  };
  const before = (await mqttDelivery()).delivered;
  const filename = await capture();
  await delivered(before + 1);
  dropOut = () => false;
  assert.equal(lost, 1, 'the first receipt was lost');
  const receipts = commands.filter((c) => c['action'] === 'receipt' && c['filename'] === filename);
  assert.equal(receipts.length, 2, 'the first (lost) receipt and the one for the re-offer');
  assert.equal(commands.filter((c) => c['action'] === 'send' && c['filename'] === filename).length, 0, 'the image was not sent again');
  assert.ok((await savedBytes(filename)).equals(await storedBytes(filename)));
});
