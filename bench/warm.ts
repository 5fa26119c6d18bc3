/**
 * Cold against warm capture: trigger-to-file latency through a whole node (POST /capture until the
 * reply, the DNG stored), with the simulator's realistic timings (camera start, per-capture cost,
 * SD-card write rate), not the fast test settings.
 *
 *   node dist/bench/warm.js [--runs N] [--sensor imx477|tiny]
 *
 * A cold and a warm node run side by side and are asked in turn, so both see the same machine
 * noise. Reported: the median of each and the ratio warm ÷ cold (one run), and the same for the
 * camera's own share (triggered → files complete, from the reply's timing).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config/config.js';
import { createNode, type CameraNode } from '../src/node.js';
import { elapsedMs, printTable, summarize } from './stats.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '10' },
    sensor: { type: 'string', default: 'imx477' },
  },
});
const runs = Number(values.runs);
// Only the sensor is chosen: every delay keeps the simulator's realistic default.
const cameraEnv = { CAMERA_SIM_SENSOR: values.sensor ?? 'imx477' };

async function startNode(dir: string, mode: 'cold' | 'warm'): Promise<CameraNode> {
  const config = {
    ...(await loadConfig({ argv: [], env: {} })),
    node_id: `bench-${mode}`,
    host: '127.0.0.1',
    port: 0,
    capture_dir: join(dir, mode, 'images'),
    log_dir: join(dir, mode, 'logs'),
    camera_backend: 'simulated' as const,
    camera_mode: mode,
    mqtt_enabled: false,
    min_free_disk_mb: 0,
    http_rate_limit: 0,
    camera_check_interval_s: 0,
    storage_limit_mb: 2000,
  };
  const node = createNode(config, { cameraEnv });
  await node.start();
  return node;
}

interface Sample {
  total: number;
}

async function captureOnce(node: CameraNode): Promise<Sample> {
  const start = process.hrtime.bigint();
  const response = await fetch(`${node.httpUrl}/capture`, { method: 'POST' });
  const body = (await response.json()) as { file_info?: { filename: string } };
  const total = elapsedMs(start);
  if (!response.ok || !body.file_info) throw new Error(`capture failed: ${response.status} ${JSON.stringify(body)}`);
  await fetch(`${node.httpUrl}/images/${body.file_info.filename}`, { method: 'DELETE' });
  return { total };
}

const dir = await mkdtemp(join(tmpdir(), 'camera-node-bench-warm-'));
const nodes: CameraNode[] = [];
try {
  const coldNode = await startNode(dir, 'cold');
  nodes.push(coldNode);
  const warmStart = process.hrtime.bigint();
  const warmNode = await startNode(dir, 'warm');
  const warmStartMs = elapsedMs(warmStart);
  nodes.push(warmNode);
  const mode = ((await (await fetch(`${warmNode.httpUrl}/status`)).json()) as { camera: { mode: string } }).camera.mode;
  if (mode !== 'warm') throw new Error(`the warm node runs in ${mode} mode`);
  // One of each first: disk caches, JIT, and the warm app's first frame.
  await captureOnce(coldNode);
  await captureOnce(warmNode);
  const cold: number[] = [];
  const warm: number[] = [];
  for (let i = 0; i < runs; i++) {
    cold.push((await captureOnce(coldNode)).total);
    warm.push((await captureOnce(warmNode)).total);
  }
  const c = summarize(cold);
  const w = summarize(warm);
  printTable(
    `POST /capture until stored, sensor ${values.sensor}, ${runs} runs each (ms)`,
    ['camera', 'median', 'p95', 'min', 'max'],
    [
      ['cold (one app run per capture)', c.median, c.p95, c.min, c.max],
      ['warm (signal mode, SIGUSR1)', w.median, w.p95, w.min, w.max],
    ],
  );
  printTable(
    'ratios (one run)',
    ['figure', 'ratio'],
    [
      ['warm ÷ cold, median capture latency', w.median / c.median],
      ['warm node start ÷ cold capture (start cost paid once)', warmStartMs / c.median],
    ],
  );
} finally {
  for (const node of nodes.reverse()) await node.stop();
  await rm(dir, { recursive: true, force: true });
}
