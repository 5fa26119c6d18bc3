import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONTENT_TYPE, Counter, gauge, Histogram, render } from '../src/metrics/text.js';
import { VERSION } from '../src/node.js';
import { startTestNode } from './helpers/node.js';

interface Series {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface Exposition {
  types: Map<string, string>;
  series: Series[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * A strict reader of the Prometheus text format 0.0.4, as Prometheus's own parser reads it: HELP and
 * TYPE once per family and before its samples, sample names of the family (histograms: `_bucket`,
 * `_sum`, `_count`), escaped label values, Go float values, no series twice.
 */
function parseExposition(text: string): Exposition {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const series: Series[] = [];
  const seen = new Set<string>();
  let family: string | null = null;
  for (const line of text.slice(0, -1).split('\n')) {
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      const [, kind, name = '', rest = ''] = meta;
      assert.match(name, METRIC_NAME, line);
      if (kind === 'HELP') {
        assert.ok(!helps.has(name), `HELP twice for ${name}`);
        helps.add(name);
      } else {
        assert.ok(!types.has(name), `TYPE twice for ${name}`);
        assert.ok(['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest), line);
        types.set(name, rest);
      }
      family = name;
      continue;
    }
    assert.ok(!line.startsWith('#') && line.trim() !== '', `unexpected line: ${JSON.stringify(line)}`);
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(sample, `not a sample: ${line}`);
    const [, name = '', , labelText = '', valueText = ''] = sample;
    const type = family ? types.get(family) : undefined;
    const suffixes = type === 'histogram' ? ['_bucket', '_sum', '_count'] : [''];
    assert.ok(family && suffixes.some((suffix) => name === `${family}${suffix}`), `${name} outside its family (${String(family)})`);
    const labels: Record<string, string> = {};
    const labelPattern = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;
    while (labelPattern.lastIndex < labelText.length) {
      const match = labelPattern.exec(labelText);
      if (!match) break;
      const [, key = '', raw = ''] = match;
      assert.match(key, LABEL_NAME);
      labels[key] = raw.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    assert.equal(labelPattern.lastIndex, labelText.length, `bad labels in ${line}`);
    assert.match(valueText, /^([+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]Inf|NaN)$/, line);
    const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : Number(valueText);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    assert.ok(!seen.has(key), `series twice: ${line}`);
    seen.add(key);
    series.push({ name, labels, value });
  }
  for (const [name, type] of types) {
    if (type !== 'histogram') continue;
    const buckets = series.filter((s) => s.name === `${name}_bucket`);
    const count = series.find((s) => s.name === `${name}_count`)?.value;
    assert.equal(buckets.at(-1)?.labels['le'], '+Inf', `${name}: +Inf bucket last`);
    assert.equal(buckets.at(-1)?.value, count, `${name}: +Inf bucket = count`);
    for (let i = 1; i < buckets.length; i += 1)
      assert.ok((buckets[i]?.value ?? 0) >= (buckets[i - 1]?.value ?? 0), `${name}: buckets cumulative`);
  }
  return { types, series };
}

/** The value of the one series with that name and (a subset of) those labels. */
function value(exposition: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  const found = exposition.series.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.ok(found.length <= 1, `${name} ${JSON.stringify(labels)}: ${found.length} series`);
  return found[0]?.value;
}

test('the text format: escaping, cumulative histogram buckets, counters that start at 0', () => {
  const counter = new Counter('things_total', 'Things.\nWith a "second" line \\ here.');
  counter.inc({ kind: 'a "quoted"\nvalue\\' }, 2);
  const histogram = new Histogram('wait_seconds', 'Waits.', [0.5, 1, 5]);
  for (const seconds of [0.2, 0.7, 0.9, 30]) histogram.observe(seconds);
  const text = render([
    counter.family({ node_id: 'n' }),
    new Counter('untouched_total', 'Never incremented.').family({ node_id: 'n' }),
    histogram.family({ node_id: 'n' }),
    gauge('temperature_celsius', 'T.', [{ labels: { node_id: 'n' }, value: -1.5 }]),
  ]);
  const parsed = parseExposition(text);
  assert.equal(value(parsed, 'things_total', { kind: 'a "quoted"\nvalue\\' }), 2);
  assert.equal(value(parsed, 'untouched_total', { node_id: 'n' }), 0);
  assert.deepEqual(
    parsed.series.filter((s) => s.name === 'wait_seconds_bucket').map((s) => [s.labels['le'], s.value]),
    [
      ['0.5', 1],
      ['1', 3],
      ['5', 3],
      ['+Inf', 4],
    ],
  );
  assert.equal(value(parsed, 'wait_seconds_sum'), 0.2 + 0.7 + 0.9 + 30);
  assert.equal(value(parsed, 'temperature_celsius'), -1.5);
  assert.match(text, /# HELP things_total Things\.\\nWith a "second" line \\\\ here\./);
});

test('GET /metrics of a whole node: node, storage, captures and latency, delivery, MQTT', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'camera-node-metrics-'));
  // The simulator reads the control file at every run: its content is the failure in force.
  const control = join(dir, 'camera-control');
  const zone = join(dir, 'thermal');
  await writeFile(zone, '51234\n');
  const node = await startTestNode({}, { cameraEnv: { CAMERA_SIM_CONTROL: control }, thermalZonePath: zone });
  t.after(async () => {
    await node.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const scrape = async (): Promise<Exposition> => {
    const response = await fetch(`${node.httpUrl}/metrics`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), CONTENT_TYPE);
    return parseExposition(await response.text());
  };

  const before = await scrape();
  const id = { node_id: node.config.node_id };
  assert.equal(value(before, 'camera_node_info', { ...id, version: VERSION, backend: 'simulated', sensor: 'tiny' }), 1);
  for (const series of before.series.filter((s) => s.name.startsWith('camera_node_')))
    assert.equal(series.labels['node_id'], id.node_id, series.name);
  assert.equal(value(before, 'camera_node_storage_limit_bytes', id), Math.floor(node.config.storage_limit_mb * 1024 * 1024));
  assert.ok((value(before, 'camera_node_disk_free_bytes', id) ?? 0) > 0);
  assert.equal(value(before, 'camera_node_camera_connected', id), 1);
  assert.equal(value(before, 'camera_node_captures_total', id), 0);
  assert.equal(value(before, 'camera_node_capture_duration_seconds_count', id), 0);
  assert.equal(value(before, 'camera_node_cpu_temperature_celsius', id), 51.2);
  assert.equal(value(before, 'camera_node_mqtt_connected', id), 1);
  assert.ok((value(before, 'camera_node_mqtt_connects_total', id) ?? 0) >= 1);
  assert.equal(value(before, 'camera_node_deliveries_total', { ...id, channel: 'mqtt' }), 0);
  assert.equal(before.types.get('camera_node_deliveries_total'), 'counter');
  assert.equal(before.types.get('camera_node_capture_duration_seconds'), 'histogram');

  // Two captures, one delivered over MQTT (no receiver needed: the broker acknowledges the chunks).
  const delivered = new Promise<void>((resolve) => node.node.events.on('metrics-test', 'delivered', () => resolve()));
  for (const query of ['', '?deliver=mqtt']) {
    const response = await fetch(`${node.httpUrl}/capture${query}`, { method: 'POST' });
    assert.equal(response.status, 200, await response.text());
  }
  // A capture the camera app fails.
  await writeFile(control, 'capture-error');
  const failed = await fetch(`${node.httpUrl}/capture`, { method: 'POST' });
  assert.ok(failed.status >= 500);
  await writeFile(control, 'none');

  const images = (await (await fetch(`${node.httpUrl}/images`)).json()) as Array<{ size: number }>;
  await delivered;
  node.node.events.removeOwner('metrics-test');
  const after = await scrape();
  assert.equal(value(after, 'camera_node_deliveries_total', { ...id, channel: 'mqtt' }), 1);
  assert.equal(value(after, 'camera_node_delivery_pending', { ...id, channel: 'mqtt' }), 0);
  assert.equal(value(after, 'camera_node_captures_total', id), 2);
  assert.equal(value(after, 'camera_node_capture_duration_seconds_count', id), 2);
  assert.ok((value(after, 'camera_node_capture_duration_seconds_sum', id) ?? 0) > 0);
  const failures = after.series.filter((s) => s.name === 'camera_node_capture_failures_total');
  assert.equal(
    failures.reduce((sum, s) => sum + s.value, 0),
    1,
  );
  assert.ok(
    failures.every((s) => s.value === 0 || (s.labels['code'] ?? '').startsWith('camera_')),
    JSON.stringify(failures),
  );
  assert.equal(value(after, 'camera_node_storage_images', id), 2);
  assert.equal(
    value(after, 'camera_node_storage_used_bytes', id),
    images.reduce((sum, image) => sum + image.size, 0),
  );
  assert.equal(
    value(after, 'camera_node_captured_bytes_total', id),
    images.reduce((sum, image) => sum + image.size, 0),
  );
});

test('GET /metrics is behind the HTTP token; two nodes in one process count apart', async (t) => {
  const guarded = await startTestNode({ http_token: 'secret-token' });
  t.after(() => guarded.stop());
  const other = await startTestNode({ mqtt_enabled: false });
  t.after(() => other.stop());

  assert.equal((await fetch(`${guarded.httpUrl}/metrics`)).status, 401);
  assert.equal((await fetch(`${guarded.httpUrl}/metrics`, { headers: { authorization: 'Bearer wrong' } })).status, 401);
  const allowed = await fetch(`${guarded.httpUrl}/metrics`, { headers: { authorization: 'Bearer secret-token' } });
  assert.equal(allowed.status, 200);
  assert.equal((await fetch(`${other.httpUrl}/capture`, { method: 'POST' })).status, 200);

  const mine = parseExposition(await allowed.text());
  const theirs = parseExposition(await (await fetch(`${other.httpUrl}/metrics`)).text());
  assert.equal(value(mine, 'camera_node_captures_total', { node_id: guarded.config.node_id }), 0);
  assert.equal(value(theirs, 'camera_node_captures_total', { node_id: other.config.node_id }), 1);
  // MQTT off: no connection state to report rather than a made-up 0.
  assert.equal(theirs.types.has('camera_node_mqtt_connected'), false);
});
