import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { Script } from 'node:vm';
import { nodeTopics } from '../src/mqtt/topics.js';

/**
 * The shipped Node-RED flow, checked without Node-RED (the end-to-end run is `npm run test:e2e`):
 * that it imports as is (ids, wiring, config references), that each function node compiles the way
 * Node-RED wraps it, and that it subscribes to the topics the node publishes.
 */
type FlowNode = Record<string, unknown> & { id: string; type: string };
const FLOW = new URL('../../deploy/node-red/flows.json', import.meta.url);
/** Core node types of Node-RED 3.1+: the flow needs no palette install. */
const CORE_TYPES = new Set([
  'tab',
  'global-config',
  'mqtt-broker',
  'comment',
  'inject',
  'function',
  'mqtt in',
  'mqtt out',
  'debug',
  'file',
]);
const BUILT_IN_MODULES = new Set(['crypto', 'fs', 'path', 'os']);

const load = async (): Promise<FlowNode[]> => JSON.parse(await readFile(FLOW, 'utf8')) as FlowNode[];

/** MQTT filter matching, for checking that the flow's subscriptions catch the node's topics. */
function matches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i += 1) {
    if (f[i] === '#') return true;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

test('the flow imports as is: unique ids, one tab, wires and broker references that exist, core nodes only', async () => {
  const flow = await load();
  assert.ok(Array.isArray(flow));
  const ids = new Map(flow.map((node) => [node.id, node]));
  assert.equal(ids.size, flow.length, 'ids are unique');
  const tabs = flow.filter((node) => node.type === 'tab');
  assert.equal(tabs.length, 1);
  for (const node of flow) {
    assert.ok(CORE_TYPES.has(node.type), `${node.id}: ${node.type} is not a core node`);
    if (['tab', 'global-config', 'mqtt-broker'].includes(node.type)) continue;
    assert.equal(node['z'], tabs[0]?.id, `${node.id} is on the tab`);
    for (const output of (node['wires'] as string[][] | undefined) ?? []) {
      for (const target of output) assert.ok(ids.has(target), `${node.id} is wired to ${target}, which does not exist`);
    }
    if (node.type.startsWith('mqtt ')) assert.equal(ids.get(String(node['broker']))?.type, 'mqtt-broker', `${node.id}: broker`);
    if (node.type === 'function') {
      assert.equal((node['wires'] as unknown[]).length, node['outputs'], `${node.id}: one wire list per output`);
      for (const lib of (node['libs'] as Array<{ var: string; module: string }>) ?? []) {
        assert.ok(BUILT_IN_MODULES.has(lib.module), `${node.id}: ${lib.module} would need an install`);
      }
    }
  }
  // The broker settings come from the global environment the flow declares.
  const broker = flow.find((node) => node.type === 'mqtt-broker');
  const globals = ((flow.find((node) => node.type === 'global-config')?.['env'] as Array<{ name: string }>) ?? []).map((e) => e.name);
  for (const key of ['broker', 'port', 'protocolVersion']) {
    const variable = /^\$\{(\w+)\}$/.exec(String(broker?.[key]))?.[1];
    assert.ok(variable && globals.includes(variable), `broker ${key} from a declared variable`);
  }
});

test('every function node compiles as Node-RED wraps it', async () => {
  for (const node of (await load()).filter((n) => n.type === 'function')) {
    const libs = ((node['libs'] as Array<{ var: string }>) ?? []).map((lib) => lib.var);
    const params = ['msg', 'node', 'context', 'flow', 'global', 'env', 'RED', ...libs].join(', ');
    assert.doesNotThrow(() => new Script(`(async function (${params}) {\n${String(node['func'])}\n})`), `${node.id} does not compile`);
  }
});

test('the flow subscribes to what a node publishes and commands the node’s topic', async () => {
  const flow = await load();
  const topics = nodeTopics('cameras', 'pi-garden');
  const filters = flow.filter((node) => node.type === 'mqtt in').map((node) => String(node['topic']));
  const published = [
    topics.availability,
    topics.telemetry,
    `${topics.res}/node-red`,
    `${topics.images}/capture_20260101_120000.dng/manifest`,
    `${topics.images}/capture_20260101_120000.dng/chunk/7`,
  ];
  for (const topic of published)
    assert.ok(
      filters.some((filter) => matches(filter, topic)),
      `nothing subscribes to ${topic}`,
    );
  // Replies come under each node's own namespace (the ACL lets only that node write there), for
  // this flow's requester: no shared replies topic any node could write to.
  assert.ok(filters.includes('cameras/+/res/node-red'));
  assert.ok(!filters.some((filter) => filter.includes('replies')));
  const acl = await readFile(new URL('../../deploy/mosquitto/acl', import.meta.url), 'utf8');
  assert.doesNotMatch(acl, /cameras\/replies/);
  // The capture command goes to the node's own command topic, asks for MQTT delivery, says when it was
  // sent and where to reply, and expires in the broker (MQTT 5).
  const command = flow.find((node) => node.id === 'capture-command');
  assert.match(String(command?.['func']), /`\$\{prefix\}\/\$\{nodeId\}\/cmd`/);
  assert.match(String(command?.['func']), /action: 'capture', deliver: 'mqtt', sent_at: now, reply_to: requester/);
  assert.match(String(command?.['func']), /msg\.messageExpiryInterval = \d+/);
  // Images are written by a file node, named by the reassembly.
  const writer = flow.find((node) => node.type === 'file');
  assert.equal(writer?.['filenameType'], 'msg');
  assert.equal(writer?.['overwriteFile'], 'true');
  assert.equal(writer?.['encoding'], 'none');
});

test('the flow takes a reply only from the node whose namespace it came on', async () => {
  const match = (await load()).find((node) => node.id === 'match-reply');
  const run = new Function('msg', 'node', 'flow', String(match?.['func'])) as (msg: unknown, node: unknown, flow: unknown) => unknown;
  const store: Record<string, unknown> = {};
  const flow = { get: (key: string) => store[key], set: (key: string, value: unknown) => (store[key] = value) };
  const node = { status: () => undefined };
  const reply = (nodeId: string) => ({ id: 'r1', node_id: nodeId, status: 'success', action: 'capture' });
  store['pending'] = { r1: { node_id: 'pi-garden', at: Date.now() } };
  assert.equal(run({ topic: 'cameras/pi-shed/res/node-red', payload: reply('pi-garden') }, node, flow), null, 'forged by pi-shed');
  const taken = run({ topic: 'cameras/pi-garden/res/node-red', payload: reply('pi-garden') }, node, flow) as unknown[];
  assert.ok(Array.isArray(taken) && taken[0], 'the genuine reply is matched');
});
