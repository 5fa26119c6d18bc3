/**
 * The daemon's overhead on a capture, and the cost of GET /logs against the log's size.
 *
 *   node dist/bench/capture.js [--runs N] [--sensor imx477|tiny]
 *
 * 1. Capture latency through `POST /capture` against running the simulator directly with the same
 *    arguments, interleaved run by run so both see the same machine noise; reported as the ratio of
 *    the medians. The simulator keeps its realistic default timings (the ones tests switch off).
 * 2. `GET /logs?lines=100` on a 1 MB and on a 10 MB log file (ratio of medians): reading from the end
 *    keeps the cost flat, so the ratio should stay near 1.
 */
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { coldCaptureArgs } from '../src/camera/args.js';
import { SIMULATOR_SCRIPT } from '../src/camera/backend.js';
import { SENSORS } from '../src/simulator/sensors.js';
import { loadConfig } from '../src/config/config.js';
import { createNode, type CameraNode } from '../src/node.js';
import { elapsedMs, printTable, summarize } from './stats.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '8' },
    sensor: { type: 'string', default: 'imx477' },
    'log-runs': { type: 'string', default: '50' },
  },
});
const runs = Number(values.runs);
const logRuns = Number(values['log-runs']);
const cameraEnv = { CAMERA_SIM_SENSOR: values.sensor ?? 'imx477' };

async function startNode(dir: string, logSizeMb: number): Promise<CameraNode> {
  const config = {
    ...(await loadConfig({ argv: [], env: {} })),
    node_id: 'bench-node',
    host: '127.0.0.1',
    port: 0,
    capture_dir: join(dir, 'images'),
    log_dir: join(dir, 'logs'),
    camera_backend: 'simulated' as const,
    mqtt_enabled: false,
    min_free_disk_mb: 0,
    http_rate_limit: 0,
    camera_check_interval_s: 0,
    max_log_size_mb: logSizeMb,
    log_level: 'info' as const,
  };
  const node = createNode(config, { cameraEnv });
  await node.start();
  return node;
}

async function directCapture(dir: string, index: number): Promise<number> {
  const outputBase = join(dir, `direct_${index}`);
  // The node's own arguments: after its first probe it knows the sensor's mode (a small preview JPEG).
  const rawMode = SENSORS[values.sensor ?? 'imx477'];
  const args = coldCaptureArgs({
    outputBase,
    settings: {},
    immediate: true,
    cameraIndex: 0,
    rawMode: rawMode ? { width: rawMode.width, height: rawMode.height, bits: rawMode.bits } : null,
  });
  const start = process.hrtime.bigint();
  await execa(process.execPath, [SIMULATOR_SCRIPT, ...args], { env: cameraEnv, stdin: 'ignore' });
  const ms = elapsedMs(start);
  await Promise.all(['.dng', '.jpg', '.json'].map((ext) => rm(`${outputBase}${ext}`, { force: true })));
  return ms;
}

async function httpCapture(node: CameraNode): Promise<number> {
  const start = process.hrtime.bigint();
  const response = await fetch(`${node.httpUrl}/capture`, { method: 'POST' });
  const body = (await response.json()) as { file_info?: { filename: string } };
  const ms = elapsedMs(start);
  if (!response.ok || !body.file_info) throw new Error(`capture failed: ${response.status} ${JSON.stringify(body)}`);
  // Keep the store from filling the disk over many runs.
  await fetch(`${node.httpUrl}/images/${body.file_info.filename}`, { method: 'DELETE' });
  return ms;
}

async function benchCapture(dir: string): Promise<[number, number]> {
  const node = await startNode(dir, 10);
  const direct: number[] = [];
  const viaHttp: number[] = [];
  try {
    // One warm-up of each: the first spawn pays for disk caches and JIT.
    await directCapture(dir, -1);
    await httpCapture(node);
    for (let i = 0; i < runs; i += 1) {
      direct.push(await directCapture(dir, i));
      viaHttp.push(await httpCapture(node));
    }
  } finally {
    await node.stop();
  }
  const d = summarize(direct);
  const h = summarize(viaHttp);
  printTable(
    `capture latency, sensor ${values.sensor}, ${runs} runs each (ms)`,
    ['path', 'median', 'p95', 'min', 'max'],
    [
      ['simulator run directly', d.median, d.p95, d.min, d.max],
      ['POST /capture', h.median, h.p95, h.min, h.max],
    ],
  );
  return [d.median, h.median];
}

/** The largest file in the log dir is the live one (no rotation: the size limit is set above the target). */
async function logFileSize(dir: string): Promise<number> {
  const names = await readdir(dir);
  const sizes = await Promise.all(names.map(async (name) => (await stat(join(dir, name))).size));
  return Math.max(0, ...sizes);
}

async function fillLog(node: CameraNode, logDir: string, bytes: number): Promise<void> {
  const padding = 'x'.repeat(160);
  let i = 0;
  while ((await logFileSize(logDir)) < bytes) {
    for (let k = 0; k < 2000; k += 1) {
      i += 1;
      node.logger.info({ i, padding }, 'bench filler entry');
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function benchLogs(dir: string, sizeMb: number): Promise<number[]> {
  const nodeDir = join(dir, `logs-${sizeMb}`);
  const node = await startNode(nodeDir, sizeMb * 4);
  try {
    await fillLog(node, join(nodeDir, 'logs'), sizeMb * 1024 * 1024);
    const samples: number[] = [];
    for (let i = 0; i < logRuns + 5; i += 1) {
      const start = process.hrtime.bigint();
      const response = await fetch(`${node.httpUrl}/logs?lines=100`);
      const body = (await response.json()) as { lines: number };
      const ms = elapsedMs(start);
      if (body.lines !== 100) throw new Error(`expected 100 lines, got ${body.lines}`);
      if (i >= 5) samples.push(ms);
    }
    return samples;
  } finally {
    await node.stop();
  }
}

const dir = await mkdtemp(join(tmpdir(), 'camera-node-bench-'));
try {
  const [direct, viaHttp] = await benchCapture(dir);
  const small = summarize(await benchLogs(dir, 1));
  const large = summarize(await benchLogs(dir, 10));
  printTable(
    `GET /logs?lines=100, ${logRuns} runs each (ms)`,
    ['log size', 'median', 'p95', 'min'],
    [
      ['1 MB', small.median, small.p95, small.min],
      ['10 MB', large.median, large.p95, large.min],
    ],
  );
  printTable(
    'ratios (one run)',
    ['figure', 'ratio'],
    [
      ['POST /capture ÷ simulator directly (daemon overhead)', viaHttp / direct],
      ['GET /logs 10 MB log ÷ 1 MB log', large.median / small.median],
    ],
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
