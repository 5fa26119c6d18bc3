import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import type { ShotReport } from '../../src/client/shot.js';
import { knownNodes } from '../../src/client/shot.js';
import { createSchemaRegistry, describeSchemaError } from '../../src/schemas.js';
import { filesUnder, spawnCollector, type CollectorProcess } from '../helpers/collector.js';
import { MAIN, spawnDaemon, type Daemon } from '../helpers/daemon.js';
import { recordFigures } from '../helpers/faults-figures.js';
import { sha256Of, waitFor } from '../helpers/faults-fs.js';
import { mosquittoMissing, startMosquitto } from '../helpers/mosquitto.js';

/** 20 nodes take the shot; one more is stopped before it and must be reported missing. */
const NODES = 20;
const STOPPED = `fleet-${NODES}`;

test('fleet shot: 20 node processes, one broadcast capture, one collector: 20/20 images and a complete shot.json; a stopped node is missing', {
  skip: mosquittoMissing() ?? false,
  timeout: 300_000,
}, async () => {
  const broker = await startMosquitto(['max_queued_messages 10000']);
  const dir = await mkdtemp(join(tmpdir(), 'camera-node-fleet-shot-'));
  // The shot's report and images (the capture command receives them itself), and the collector's copy.
  const out = join(dir, 'shots');
  const collected = join(dir, 'collected');
  const nodes: Daemon[] = [];
  let collector: CollectorProcess | null = null;
  const watcher = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
  try {
    // Started a few at a time, so the two cores are not swamped by 21 Node start-ups at once.
    for (let i = 0; i <= NODES; i += 4) {
      const batch = Array.from({ length: Math.min(4, NODES + 1 - i) }, (_, j) =>
        spawnDaemon(
          {
            NODE_ID: `fleet-${i + j}`,
            CAPTURE_DIR: join(dir, `fleet-${i + j}`, 'images'),
            LOG_DIR: join(dir, `fleet-${i + j}`, 'logs'),
            MQTT_URL: broker.url,
            HA_DISCOVERY: 'false',
            MIN_FREE_DISK_MB: '0',
            CAMERA_CHECK_INTERVAL_S: '0',
            TELEMETRY_INTERVAL_S: '3600',
          },
          { timeoutMs: 60_000 },
        ),
      );
      nodes.push(...(await Promise.all(batch)));
    }
    await waitFor(
      'every node online',
      async () => {
        const known = await knownNodes(watcher, 'cameras', 300);
        return [...known.values()].filter((node) => node.availability === 'online').length === NODES + 1 ? true : null;
      },
      60_000,
    );
    const stopped = nodes.pop();
    stopped?.child.kill('SIGTERM');
    await stopped?.exited;
    await waitFor('the stopped node offline', async () =>
      (await knownNodes(watcher, 'cameras', 300)).get(STOPPED)?.availability === 'offline' ? true : null,
    );

    collector = await spawnCollector(broker.url, collected, 'shelf');
    const capture = spawn(
      process.execPath,
      [MAIN, 'capture', '--broker', broker.url, '--all', '--out', out, '--json', '--timeout', '120'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    capture.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    capture.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => capture.once('exit', resolve));
    assert.equal(code, 1, `one node is missing, so the shot is not a full success: ${stderr}`);
    const report = JSON.parse(stdout) as ShotReport;
    const written = JSON.parse(await readFile(join(out, report.shot_id, 'shot.json'), 'utf8')) as ShotReport;
    const valid = createSchemaRegistry().validator<ShotReport>('shot.schema.json');
    assert.ok(valid(written), `shot.json matches its schema: ${describeSchemaError(valid.errors)}`);
    assert.deepEqual(written, report, '--json prints the report written to shot.json');

    // Every image byte-identical to the node's own copy, in DIR/<shot>/<node>/.
    let identical = 0;
    for (const node of report.nodes.filter((n) => n.status === 'ok')) {
      const path = join(out, report.shot_id, node.node_id, node.filename ?? '');
      if (
        (await sha256Of(path)) === node.sha256 &&
        node.sha256 === (await sha256Of(join(dir, node.node_id, 'images', node.filename ?? '')))
      )
        identical += 1;
    }
    // The collector service has every image too, in its own DIR/<shot>/<node>/.
    await waitFor('the collector to have every image', () =>
      collector && collector.lines.filter((line) => line.includes(`/${report.shot_id}/`)).length >= NODES ? true : null,
    ).catch((err: Error) => {
      throw new Error(`${err.message}: ${collector?.lines.length} lines; ${collector?.stderr().slice(-3000)}`);
    });
    let collectedIdentical = 0;
    for (const node of report.nodes.filter((n) => n.status === 'ok'))
      if ((await sha256Of(join(collected, report.shot_id, node.node_id, node.filename ?? ''))) === node.sha256) collectedIdentical += 1;
    const listed = (await filesUnder(out)).filter((path) => !path.startsWith('.partial/') && path.endsWith('.dng'));
    const figures = {
      nodes_started: NODES + 1,
      stopped_before_shot: 1,
      asked: report.summary.asked,
      answered: report.summary.answered,
      delivered: report.summary.delivered,
      identical,
      collector_identical: collectedIdentical,
      images_listed: listed.length,
      missing: report.missing.join(','),
      trigger_spread_ms: report.summary.trigger_spread_ms,
      lost: NODES - Math.min(identical, collectedIdentical),
    };
    await recordFigures('fleet shot', figures);
    assert.equal(report.summary.asked, NODES + 1);
    assert.equal(report.summary.answered, NODES);
    assert.equal(report.summary.delivered, NODES);
    assert.equal(identical, NODES, '20/20 images, byte-identical');
    assert.equal(collectedIdentical, NODES, '20/20 images at the collector, byte-identical');
    assert.equal(listed.length, NODES, 'one file per node in the shot folder, nothing else');
    assert.deepEqual(report.missing, [STOPPED]);
    const missing = report.nodes.find((n) => n.node_id === STOPPED);
    assert.equal(missing?.status, 'missing');
    assert.equal(missing?.availability, 'offline', 'known offline from its retained availability');
    for (const node of report.nodes.filter((n) => n.status === 'ok')) {
      assert.ok(node.triggered_at, `${node.node_id} has triggered_at`);
      assert.equal(node.delivered, true);
      assert.equal(typeof node.clock, 'object');
    }
  } finally {
    await watcher.endAsync();
    collector?.child.kill('SIGTERM');
    await collector?.exited;
    for (const node of nodes) node.child.kill('SIGTERM');
    await Promise.all(nodes.map((node) => node.exited));
    await broker.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
