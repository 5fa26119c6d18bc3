import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { pino } from 'pino';
import { UsageError } from '../src/client/cli-broker.js';
import { runDashboard } from '../src/client/cli-dashboard.js';
import { startEmbeddedBroker } from '../src/mqtt/broker.js';
import { createFleetDashboard, type FleetDashboard, type ShotRequest } from '../src/web/fleet.js';
import { createFleetState, type FleetNode } from '../src/web/fleet-state.js';
import { createFleetShots, type FleetShots } from '../src/web/fleet-shots.js';
import type { ShotView } from '../src/web/shots.js';
import { mosquittoMissing, startMosquitto, type Mosquitto } from './helpers/mosquitto.js';
import { connectClient } from './helpers/mqtt.js';
import { startTestNode, type TestNode } from './helpers/node.js';
import { openSse } from './helpers/sse.js';

const silent = pino({ level: 'silent' });
/**
 * The dashboard's collector speaks MQTT 5 first, as a fleet's Mosquitto does; against a 3.1.1-only
 * broker (aedes) its refused first attempt is left reconnecting, so these run on Mosquitto.
 */
const noMosquitto = mosquittoMissing();

describe('fleet state', () => {
  test('merges availability, status, telemetry and preview per node, and ignores what is not a node', () => {
    const state = createFleetState('rig/a');
    const status = {
      status: 'online',
      version: '1.0',
      camera: { connected: true, sensor: 'imx477', simulated: false, mode: 'warm' },
      storage: { used_mb: 12, limit_mb: 100, image_count: 3 },
      system: { cpu_temperature: 51.5, uptime: 99 },
      mqtt: { groups: ['north'] },
      clock: { synchronized: true, offset_ms: 0.4, source: 'chrony' },
    };
    assert.equal(state.apply('rig/a/cam1/availability', Buffer.from('online'))?.availability, 'online');
    state.apply('rig/a/cam1/status', Buffer.from(JSON.stringify(status)));
    state.apply(
      'rig/a/cam1/telemetry',
      Buffer.from(JSON.stringify({ cpu_temperature: 60, clock: { synchronized: false, offset_ms: 40, source: 'chrony' } })),
    );
    state.apply('rig/a/cam1/status', Buffer.from('{not json'));
    state.apply('rig/a/cam1/preview', Buffer.from([0xff, 0xd8, 0xff, 0xd9]));
    for (const topic of [
      'rig/a/all/cmd',
      'rig/a/group/north/cmd',
      'rig/a/collectors/x/availability',
      'rig/b/cam9/status',
      'rig/a/cam1/res',
    ]) {
      assert.equal(state.apply(topic, Buffer.from('online')), null, topic);
    }
    const [node] = state.nodes();
    assert.deepEqual(
      { ...node, seen_at: undefined, preview_at: typeof node?.preview_at },
      {
        node_id: 'cam1',
        availability: 'online',
        status: 'online',
        camera: status.camera,
        storage: status.storage,
        cpu_temperature: 60,
        uptime: 99,
        clock: { synchronized: false, offset_ms: 40, source: 'chrony' },
        groups: ['north'],
        version: '1.0',
        preview_at: 'string',
        seen_at: undefined,
      },
    );
    assert.equal(state.preview('cam1')?.length, 4);
    assert.equal(state.nodes().length, 1);
  });
});

describe('fleet dashboard', { skip: noMosquitto ?? false }, () => {
  let broker: Mosquitto;
  let nodes: TestNode[];
  let client: MqttClient;
  let dashboard: FleetDashboard;
  let shots: FleetShots;
  let url: string;
  let outDir: string;
  const asked: ShotRequest[] = [];

  before(async () => {
    broker = await startMosquitto();
    const shared = { mqtt_url: broker.url };
    nodes = await Promise.all([
      startTestNode({ ...shared, groups: ['north'] }),
      startTestNode({ ...shared, groups: ['north'] }),
      startTestNode({ ...shared, groups: ['south'] }),
    ]);
    outDir = await mkdtemp(join(tmpdir(), 'camera-node-shots-'));
    client = await connectClient(broker.url);
    dashboard = createFleetDashboard({
      client,
      prefix: 'cameras',
      outDir,
      host: '127.0.0.1',
      port: 0,
      logger: silent,
      runShot: (request) => {
        asked.push(request);
        return shots.run(request);
      },
    });
    shots = createFleetShots({ client, url: broker.url, prefix: 'cameras', outDir, name: 'dashboard-test', logger: silent });
    await shots.start();
    url = await dashboard.start();
  });
  after(async () => {
    await dashboard?.stop();
    await shots?.stop();
    await client?.endAsync();
    await Promise.all(nodes.map((n) => n.stop()));
    await broker?.stop();
    await rm(outDir, { recursive: true, force: true });
  });

  test('the live stream starts with every node, then sends a card update when a node captures, with its preview', async () => {
    const ids = nodes.map((n) => n.config.node_id).sort();
    const stream = await openSse(`${url}/events`);
    try {
      // The greeting may come before every retained message arrived; the cards that follow complete it.
      const seen = new Map<string, FleetNode>();
      for (const node of await stream.next<FleetNode[]>('nodes')) seen.set(node.node_id, node);
      while (![...ids].every((id) => seen.get(id)?.status === 'online' && seen.get(id)?.availability === 'online')) {
        const node = await stream.next<FleetNode>('node');
        seen.set(node.node_id, node);
      }
      assert.deepEqual((await stream.next<{ shots: boolean }>('capabilities')).shots, true);
      const [first] = nodes;
      assert.ok(first);
      const response = await fetch(`${first.httpUrl}/capture`, { method: 'POST' });
      assert.equal(response.status, 200);
      const card = await stream.next<FleetNode>('node', (n) => n.node_id === first.config.node_id && n.preview_at !== null);
      assert.equal(card.camera?.sensor, 'tiny');
      const preview = await fetch(`${url}/api/nodes/${first.config.node_id}/preview.jpg`);
      assert.equal(preview.status, 200);
      assert.deepEqual([...Buffer.from(await preview.arrayBuffer()).subarray(0, 2)], [0xff, 0xd8]);
      const listed = (await (await fetch(`${url}/api/nodes`)).json()) as FleetNode[];
      assert.deepEqual(
        listed.map((n) => n.node_id),
        ids,
      );
      assert.deepEqual(listed.find((n) => n.node_id === first.config.node_id)?.groups, ['north']);
    } finally {
      stream.close();
    }
  });

  test('a shot request is checked first; a good one runs on the nodes, and its report lists them all with their images', async () => {
    const stream = await openSse(`${url}/events`);
    try {
      const post = (body: unknown) =>
        fetch(`${url}/api/shots`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      for (const bad of [
        {},
        { target: 'some' },
        { target: [] },
        { target: ['a/b'] },
        { target: 'all', count: 0 },
        { target: 'all', at: 'soon' },
        { target: 'all', x: 1 },
      ]) {
        const response = await post(bad);
        assert.ok(response.status === 400 || response.status === 422, `${JSON.stringify(bad)} → ${response.status}`);
      }
      assert.equal(asked.length, 0, 'nothing bad was run');
      const before = Date.now();
      const response = await post({ target: 'group:north', at: '+1s', count: 2, interval_ms: 100, timeout_s: 30 });
      assert.equal(response.status, 202);
      const { ref } = (await response.json()) as { ref: string };
      const done = await stream.next<{ ref: string; state: string; report: ShotView }>(
        'shot',
        (s) => s.ref === ref && s.state !== 'running',
      );
      assert.equal(done.state, 'done', JSON.stringify(done));
      const [request] = asked;
      assert.ok(request?.at !== undefined && request.at >= before + 1000 && request.at <= Date.now() + 1000);
      assert.deepEqual([request.target, request.count, request.interval_ms, request.timeoutMs], ['group:north', 2, 100, 30_000]);

      const north = nodes.filter((n) => n.config.groups.includes('north')).map((n) => n.config.node_id);
      const report = done.report;
      assert.deepEqual(report.nodes.map((n) => n.node_id).sort(), [...north].sort());
      assert.equal(report.summary.missing, 0);
      for (const entry of report.nodes) {
        assert.equal(entry.status, 'ok', JSON.stringify(entry));
        assert.equal(entry.files.length, 2, 'a burst of two');
        for (const file of entry.files) {
          assert.ok(file.path, `${entry.node_id} ${file.filename} received`);
          const download = await fetch(`${url}/files/${report.folder}/${file.path}`);
          assert.equal(download.status, 200);
          assert.equal(Number(download.headers.get('content-length')), file.size);
          await download.arrayBuffer();
        }
      }
      const { reports } = (await (await fetch(`${url}/api/shots`)).json()) as { reports: ShotView[] };
      assert.equal(reports[0]?.shot_id, report.shot_id, 'listed from DIR');
    } finally {
      stream.close();
    }
  });

  test('shot reports are listed from DIR, newest first, and their files download, nothing outside DIR', async () => {
    const write = async (id: string, createdAt: string) => {
      await mkdir(join(outDir, id, 'cam1'), { recursive: true });
      await writeFile(join(outDir, id, 'cam1', 'capture_20260101_000000.dng'), 'DNG bytes');
      await writeFile(join(outDir, id, 'shot.json'), JSON.stringify({ shot_id: id, created_at: createdAt, target: 'all', nodes: [] }));
    };
    await write('older', '2026-01-01T00:00:00.000Z');
    await write('newer', '2026-01-02T00:00:00.000Z');
    await mkdir(join(outDir, 'half-written'));
    await writeFile(join(outDir, 'half-written', 'shot.json'), '{"shot_id": "half');
    await symlink('/etc', join(outDir, 'newer', 'etc'));
    const { reports } = (await (await fetch(`${url}/api/shots`)).json()) as { reports: ShotView[] };
    assert.deepEqual(
      reports.map((r) => r.shot_id).filter((id) => id === 'newer' || id === 'older' || id === 'half'),
      ['newer', 'older'],
      'newest first; a report still being written is not listed',
    );
    const file = await fetch(`${url}/files/newer/cam1/capture_20260101_000000.dng`);
    assert.equal(file.status, 200);
    assert.equal(await file.text(), 'DNG bytes');
    assert.match(file.headers.get('content-disposition') ?? '', /attachment/);
    for (const path of [
      '/files/newer/cam1/nope.dng',
      '/files/newer/..%2F..%2Fetc/passwd',
      '/files/newer/etc/passwd',
      '/files/.x/cam1/a',
      '/files/newer/cam1',
    ]) {
      const response = await fetch(`${url}${path}`);
      assert.ok([400, 404].includes(response.status), `${path} → ${response.status}`);
    }
  });
});

describe('camera-node dashboard', { skip: noMosquitto ?? false }, () => {
  test('serves the page from the command line until stopped, on 127.0.0.1 by default', async () => {
    const broker = await startMosquitto();
    const out = await mkdtemp(join(tmpdir(), 'camera-node-dashboard-'));
    const controller = new AbortController();
    try {
      let listening!: (url: string) => void;
      const started = new Promise<string>((resolve) => {
        listening = resolve;
      });
      const exit = runDashboard(['--broker', broker.url, '--port', '0', '--out', out], controller.signal, listening);
      const url = await started;
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const page = await fetch(`${url}/`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<title>camera-node fleet<\/title>/);
      assert.deepEqual(await (await fetch(`${url}/api/shots`)).json(), { running: [], reports: [] });
      controller.abort();
      assert.equal(await exit, 0);
    } finally {
      controller.abort();
      await broker.stop();
      await rm(out, { recursive: true, force: true });
    }
  });

  test('a bad port is a usage error, before anything connects', async () => {
    await assert.rejects(runDashboard(['--broker', 'mqtt://127.0.0.1:1', '--port', 'eighty']), UsageError);
  });
});

// No collector here (no fleet capture), so the node's own embedded broker will do.
describe('fleet dashboard with a token', () => {
  test('the page loads without it; the API, the stream and the files need it', async () => {
    const broker = await startEmbeddedBroker({ host: '127.0.0.1', port: 0, logger: silent });
    const client = await connectClient(broker.url);
    const outDir = await mkdtemp(join(tmpdir(), 'camera-node-dashboard-token-'));
    const dashboard = createFleetDashboard({
      client,
      prefix: 'cameras',
      outDir,
      host: '127.0.0.1',
      port: 0,
      token: 'fleet-secret',
      logger: silent,
      runShot: null,
    });
    try {
      const url = await dashboard.start();
      for (const path of ['/', '/ui/fleet.js', '/ui/common.js', '/ui/style.css'])
        assert.equal((await fetch(`${url}${path}`)).status, 200, path);
      for (const path of ['/api/nodes', '/api/shots', '/events', '/files/a/b/c', '/ui/node.js']) {
        const status = (await fetch(`${url}${path}`)).status;
        assert.ok(status === 401 || (path === '/ui/node.js' && status === 404), `${path} → ${status}`);
      }
      const authorized = await fetch(`${url}/api/nodes`, { headers: { authorization: 'Bearer fleet-secret' } });
      assert.equal(authorized.status, 200);
      assert.deepEqual(await authorized.json(), []);
    } finally {
      await dashboard.stop();
      await client.endAsync();
      await broker.stop();
      await rm(outDir, { recursive: true, force: true });
    }
  });
});
