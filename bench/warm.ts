/**
 * Trigger to exposure, and trigger to stored file: cold, warm and warm with ZSL, per simulated board
 * (CAMERA_SIM_BOARD: the Pi Zero W, Zero 2 W and Pi 4 timings), through whole nodes.
 *
 *   node dist/bench/warm.js [--runs N] [--sensor imx477|tiny] [--boards zero-w,zero-2-w,pi-4]
 *
 * Each capture is scheduled (`at` 400 ms ahead, as a fleet fires), so the reply carries late_ms
 * (trigger − at) and exposure_late_ms (exposure start − at), both fractional: their difference is
 * trigger-to-exposure, the latency that decides whether a fleet's frames line up. The three nodes
 * of a board run side by side and are asked in turn, so they see the same machine noise. Reported
 * per board: medians, and the ratios warm ÷ cold and warm+ZSL ÷ cold (one run).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config/config.js';
import { createNode, type CameraNode } from '../src/node.js';
import { elapsedMs, fixed, printTable, summarize } from './stats.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    sensor: { type: 'string', default: 'imx477' },
    boards: { type: 'string', default: 'zero-w,zero-2-w,pi-4' },
  },
});
const runs = Number(values.runs);
const boards = (values.boards ?? '').split(',').filter(Boolean);
const AHEAD_MS = 400;

const MODES = {
  cold: { camera_mode: 'cold', camera_zsl: false },
  warm: { camera_mode: 'warm', camera_zsl: false },
  'warm+zsl': { camera_mode: 'warm', camera_zsl: true },
} as const;
type Mode = keyof typeof MODES;

async function startNode(dir: string, board: string, mode: Mode): Promise<CameraNode> {
  const config = {
    ...(await loadConfig({ argv: [], env: {} })),
    node_id: `bench-${board}-${mode}`,
    host: '127.0.0.1',
    port: 0,
    capture_dir: join(dir, board, mode, 'images'),
    log_dir: join(dir, board, mode, 'logs'),
    camera_backend: 'simulated' as const,
    ...MODES[mode],
    mqtt_enabled: false,
    min_free_disk_mb: 0,
    http_rate_limit: 0,
    camera_check_interval_s: 0,
    storage_limit_mb: 2000,
  };
  // Only the sensor and the board are chosen: every delay keeps the board's realistic default.
  const node = createNode(config, { cameraEnv: { CAMERA_SIM_SENSOR: values.sensor ?? 'imx477', CAMERA_SIM_BOARD: board } });
  await node.start();
  if (node.commands.status().camera.mode !== MODES[mode].camera_mode)
    throw new Error(`${mode} node runs ${node.commands.status().camera.mode}`);
  return node;
}

interface Sample {
  /** exposure start − trigger (ms). */
  exposure: number;
  /** The request until the reply, the DNG stored (ms). */
  total: number;
}

async function captureOnce(node: CameraNode): Promise<Sample> {
  const at = Date.now() + AHEAD_MS;
  const start = process.hrtime.bigint();
  const response = await fetch(`${node.httpUrl}/capture?at=${at}`, { method: 'POST' });
  const body = (await response.json()) as { file_info?: { filename: string }; late_ms?: number; exposure_late_ms?: number };
  const total = elapsedMs(start) - AHEAD_MS;
  if (!response.ok || !body.file_info || body.exposure_late_ms === undefined || body.late_ms === undefined)
    throw new Error(`capture failed: ${response.status} ${JSON.stringify(body)}`);
  await fetch(`${node.httpUrl}/images/${body.file_info.filename}`, { method: 'DELETE' });
  return { exposure: body.exposure_late_ms - body.late_ms, total };
}

const dir = await mkdtemp(join(tmpdir(), 'camera-node-bench-warm-'));
try {
  const ratios: Array<[string, string, string, string, string]> = [];
  for (const board of boards) {
    const nodes = new Map<Mode, CameraNode>();
    try {
      for (const mode of Object.keys(MODES) as Mode[]) nodes.set(mode, await startNode(dir, board, mode));
      const samples = new Map<Mode, Sample[]>([...nodes.keys()].map((mode) => [mode, []]));
      // One of each first: disk caches, JIT, and the warm apps' first frames.
      for (const node of nodes.values()) await captureOnce(node);
      for (let i = 0; i < runs; i++) for (const [mode, node] of nodes) samples.get(mode)?.push(await captureOnce(node));
      const median = (mode: Mode, key: keyof Sample): number => summarize((samples.get(mode) ?? []).map((s) => s[key])).median;
      printTable(
        `board ${board}, sensor ${values.sensor}, ${runs} scheduled captures each (ms)`,
        ['camera', 'trigger→exposure median', 'min', 'max', 'trigger→stored median'],
        [...samples].map(([mode, list]) => {
          const e = summarize(list.map((s) => s.exposure));
          return [mode, e.median, e.min, e.max, median(mode, 'total')];
        }),
      );
      ratios.push([
        board,
        fixed(median('warm', 'exposure') / median('cold', 'exposure'), 3),
        fixed(median('warm+zsl', 'exposure') / median('cold', 'exposure'), 3),
        fixed(median('warm', 'total') / median('cold', 'total'), 3),
        fixed(median('warm+zsl', 'total') / median('cold', 'total'), 3),
      ]);
    } finally {
      for (const node of [...nodes.values()].reverse()) await node.stop();
    }
  }
  printTable(
    'ratios against cold on the same board (medians, one run)',
    ['board', 'warm ÷ cold, to exposure', 'warm+ZSL ÷ cold, to exposure', 'warm ÷ cold, to stored', 'warm+ZSL ÷ cold, to stored'],
    ratios,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
