import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VERSION } from '../src/node.js';
import { startTestNode, type TestNode } from './helpers/node.js';

interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Exposition {
  help: Map<string, string>;
  types: Map<string, string>;
  samples: ParsedSample[];
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;

function parseValue(text: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  const value = Number(text);
  assert.ok(text === 'NaN' || !Number.isNaN(value), `not a sample value: ${text}`);
  return value;
}

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  LABEL.lastIndex = 0;
  while (LABEL.lastIndex < text.length) {
    const match = LABEL.exec(text);
    assert.ok(match, `bad label set: {${text}}`);
    labels[match[1]!] = match[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
  }
  return labels;
}

/** The Prometheus text format (0.0.4), strictly: every sample belongs to a family declared before it. */
function parseExposition(text: string): Exposition {
  const exposition: Exposition = { help: new Map(), types: new Map(), samples: [] };
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta;
      const map = kind === 'HELP' ? exposition.help : exposition.types;
      assert.ok(!map.has(name!), `${kind} ${name} given twice`);
      if (kind === 'TYPE') assert.match(rest!, /^(counter|gauge|histogram|summary|untyped)$/);
      map.set(name!, rest!);
      continue;
    }
    assert.ok(!line.startsWith('#'), `unexpected comment: ${line}`);
    const match = SAMPLE.exec(line);
    assert.ok(match, `not a sample line: ${line}`);
    const name = match[1]!;
    const family = exposition.types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
    assert.ok(exposition.types.has(family), `sample ${name} has no # TYPE`);
    if (family !== name) assert.equal(exposition.types.get(family), 'histogram', `${name} is only valid in a histogram`);
    exposition.samples.push({ name, labels: parseLabels(match[2] ?? ''), value: parseValue(match[3]!) });
  }
  for (const name of exposition.types.keys()) assert.ok(exposition.help.has(name), `${name} has no # HELP`);
  return exposition;
}

const samplesOf = (exposition: Exposition, name: string): ParsedSample[] => exposition.samples.filter((sample) => sample.name === name);

function one(exposition: Exposition, name: string, labels: Record<string, string> = {}): ParsedSample {
  const found = samplesOf(exposition, name).filter((sample) => Object.entries(labels).every(([key, value]) => sample.labels[key] === value));
  assert.equal(found.length, 1, `one ${name} sample with ${JSON.stringify(labels)}; got ${JSON.stringify(found)}`);
  return found[0]!;
}

describe('GET /metrics', () => {
  let t: TestNode;
  let control: string;
  let dir: string;
  let metrics: Exposition;
  let contentType: string | null;

  before(async () => {
    // The simulator reads this file at every run: present, the next capture fails; absent, it succeeds.
    dir = await mkdtemp(join(tmpdir(), 'camera-node-metrics-'));
    control = join(dir, 'camera-control.json');
    t = await startTestNode({ ha_discovery: false }, { cameraEnv: { CAMERA_SIM_CONTROL: control }, keepDir: dir });

    const delivered = new Promise<void>((resolve) => t.node.events.on('metrics-test', 'delivered', () => resolve()));
    const ok = await fetch(`${t.httpUrl}/capture?deliver=mqtt`, { method: 'POST' });
    assert.equal(ok.status, 200, await ok.clone().text());
    await delivered;
    await writeFile(control, JSON.stringify({ fail: 'capture-error' }));
    const failed = await fetch(`${t.httpUrl}/capture`, { method: 'POST' });
    assert.equal(failed.status, 500, await failed.clone().text());
    await rm(control, { force: true });

    const response = await fetch(`${t.httpUrl}/metrics`);
    assert.equal(response.status, 200);
    contentType = response.headers.get('content-type');
    metrics = parseExposition(await response.text());
  });
  after(async () => {
    t.node.events.removeOwner('metrics-test');
    await t.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('is the Prometheus text format, every family with HELP and TYPE', () => {
    assert.match(contentType ?? '', /^text\/plain; version=0\.0\.4/);
    assert.ok(metrics.samples.length > 20);
    for (const sample of metrics.samples.filter((s) => s.name.startsWith('camera_node_'))) {
      assert.equal(sample.labels['node_id'], t.config.node_id, `${sample.name} carries node_id`);
    }
  });

  test('names the node and its version', () => {
    const info = one(metrics, 'camera_node_info');
    assert.equal(info.value, 1);
    assert.equal(info.labels['version'], VERSION);
    assert.equal(info.labels['backend'], 'simulated');
    assert.equal(info.labels['sensor'], 'tiny');
    assert.equal(metrics.types.get('camera_node_info'), 'gauge');
  });

  test('shows the storage: bytes used, the budget and the image count', async () => {
    const listed = (await (await fetch(`${t.httpUrl}/images`)).json()) as { images: Array<{ size: number }> };
    assert.equal(listed.images.length, 1);
    assert.equal(one(metrics, 'camera_node_storage_images').value, 1);
    assert.equal(one(metrics, 'camera_node_storage_used_bytes').value, listed.images[0]!.size);
    assert.equal(one(metrics, 'camera_node_storage_limit_bytes').value, Math.floor(t.config.storage_limit_mb * 1024 * 1024));
    assert.ok(one(metrics, 'camera_node_disk_free_bytes').value > 0);
  });

  test('counts successful and failed captures (failures by error code)', () => {
    assert.equal(metrics.types.get('camera_node_captures_total'), 'counter');
    assert.equal(one(metrics, 'camera_node_captures_total').value, 1);
    assert.equal(one(metrics, 'camera_node_capture_failures_total', { code: 'camera_failed' }).value, 1);
    assert.ok(one(metrics, 'camera_node_captured_bytes_total').value > 0);
  });

  test('has a capture latency histogram: cumulative buckets, +Inf equal to the count', () => {
    const name = 'camera_node_capture_duration_seconds';
    assert.equal(metrics.types.get(name), 'histogram');
    const buckets = samplesOf(metrics, `${name}_bucket`);
    assert.ok(buckets.length >= 2);
    const bounds = buckets.map((bucket) => parseValue(bucket.labels['le'] ?? 'NaN'));
    assert.deepEqual(bounds, [...bounds].sort((a, b) => a - b), 'buckets in increasing le order');
    assert.equal(bounds.at(-1), Infinity);
    for (let i = 1; i < buckets.length; i += 1) assert.ok(buckets[i]!.value >= buckets[i - 1]!.value, 'cumulative');
    const count = one(metrics, `${name}_count`).value;
    assert.equal(count, 1, 'one successful capture observed');
    assert.equal(buckets.at(-1)!.value, count);
    assert.ok(one(metrics, `${name}_sum`).value > 0);
  });

  test('counts deliveries by channel', () => {
    assert.equal(metrics.types.get('camera_node_deliveries_total'), 'counter');
    assert.equal(one(metrics, 'camera_node_deliveries_total', { channel: 'mqtt' }).value, 1);
    assert.equal(one(metrics, 'camera_node_delivery_failures_total', { channel: 'mqtt' }).value, 0);
    assert.equal(one(metrics, 'camera_node_delivery_pending', { channel: 'mqtt' }).value, 0);
  });

  test('shows the MQTT connection', () => {
    assert.equal(one(metrics, 'camera_node_mqtt_connected').value, 1);
    assert.ok(one(metrics, 'camera_node_mqtt_connects_total').value >= 1);
  });
});

describe('GET /metrics with HTTP_TOKEN', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode({ http_token: 'metrics-secret', mqtt_enabled: false });
  });
  after(async () => {
    await t.stop();
  });

  test('needs the bearer token', async () => {
    const anonymous = await fetch(`${t.httpUrl}/metrics`);
    assert.equal(anonymous.status, 401);
    const wrong = await fetch(`${t.httpUrl}/metrics`, { headers: { authorization: 'Bearer nope' } });
    assert.equal(wrong.status, 401);
    const scraped = await fetch(`${t.httpUrl}/metrics`, { headers: { authorization: 'Bearer metrics-secret' } });
    assert.equal(scraped.status, 200);
    const exposition = parseExposition(await scraped.text());
    assert.equal(one(exposition, 'camera_node_info').labels['node_id'], t.config.node_id);
    // Without MQTT there is no connection to report, rather than a misleading 0.
    assert.equal(samplesOf(exposition, 'camera_node_mqtt_connected').length, 0);
  });
});
