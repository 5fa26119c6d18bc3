/**
 * SD-card wear per capture: the bytes the node and its camera app write to the capture file system
 * for one capture, divided by the size of the DNG that capture stored (the goal: at most 1.05).
 *
 *   node dist/bench/sd-wear.js [--captures N] [--sensor imx477]
 *
 * A daemon is spawned from the compiled `camera-node` (cold, then warm), captures N times over
 * HTTP, and its `/proc/<pid>/io` write_bytes is read before and after. The kernel adds a reaped
 * child's I/O to its parent's, so the daemon's figure includes every cold camera app run; the warm
 * app, still running, is read from its own `/proc/<pid>/io`. write_bytes counts pages as they are
 * dirtied, so it is what the card will be asked to write, whether or not it has been flushed yet.
 * Logs go to the same file system, as they do on a Pi without a separate log partition.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { fixed, printTable } from './stats.js';

const { values } = parseArgs({
  options: {
    captures: { type: 'string', default: '4' },
    sensor: { type: 'string', default: 'imx477' },
  },
});
const CAPTURES = Number(values.captures);
const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function writeBytes(pid: number): Promise<number> {
  const match = /^write_bytes:\s*(\d+)/m.exec(await readFile(`/proc/${pid}/io`, 'utf8'));
  if (!match) throw new Error(`no write_bytes for ${pid}`);
  return Number(match[1]);
}

async function waitForHttp(url: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${url}/status`)).ok) return;
    } catch {
      // not listening yet
    }
    if (i > 300) throw new Error(`the daemon did not serve ${url}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function run(dir: string, mode: 'cold' | 'warm'): Promise<{ perCapture: number; dng: number }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const captureDir = join(dir, mode, 'images');
  const child = spawn(process.execPath, [MAIN], {
    env: {
      PATH: process.env['PATH'] ?? '',
      CAMERA_SIM_SENSOR: values.sensor ?? 'imx477',
      // The figure is bytes, not time: no simulated card speed.
      CAMERA_SIM_WRITE_MBPS: '0',
      NODE_ID: `wear-${mode}`,
      HOST: '127.0.0.1',
      PORT: String(port),
      CAPTURE_DIR: captureDir,
      LOG_DIR: join(dir, mode, 'logs'),
      CAMERA_BACKEND: 'simulated',
      CAMERA_MODE: mode,
      MQTT_ENABLED: 'false',
      MIN_FREE_DISK_MB: '0',
      CAMERA_CHECK_INTERVAL_S: '0',
      STORAGE_LIMIT_MB: '2000',
    },
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await waitForHttp(url);
    const pid = child.pid ?? 0;
    const appPidFile = join(captureDir, '.warm', 'app.pid');
    const appPid = mode === 'warm' && existsSync(appPidFile) ? Number((await readFile(appPidFile, 'utf8')).trim()) : null;
    const total = async (): Promise<number> => (await writeBytes(pid)) + (appPid ? await writeBytes(appPid) : 0);
    // One capture first, unmeasured: the store's folders, the first log lines.
    await capture(url);
    const before = await total();
    let dng = 0;
    for (let i = 0; i < CAPTURES; i++) dng += await capture(url);
    const written = (await total()) - before;
    return { perCapture: written / CAPTURES, dng: dng / CAPTURES };
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

async function capture(url: string): Promise<number> {
  const response = await fetch(`${url}/capture`, { method: 'POST' });
  const body = (await response.json()) as { file_info?: { size: number } };
  if (!response.ok || !body.file_info) throw new Error(`capture failed: ${response.status} ${JSON.stringify(body)}`);
  return body.file_info.size;
}

if (!existsSync('/proc/self/io')) {
  process.stdout.write('skipped: needs /proc/<pid>/io (Linux with task I/O accounting)\n');
} else {
  const dir = await mkdtemp(join(tmpdir(), 'camera-node-bench-wear-'));
  try {
    const rows: Array<[string, number, number, string]> = [];
    for (const mode of ['cold', 'warm'] as const) {
      const { perCapture, dng } = await run(dir, mode);
      rows.push([mode, perCapture / 1e6, dng / 1e6, fixed(perCapture / dng, 4)]);
    }
    printTable(
      `bytes written per capture (node + camera app, /proc/<pid>/io), sensor ${values.sensor}, ${CAPTURES} captures`,
      ['camera', 'written (MB)', 'DNG (MB)', 'written ÷ DNG (goal ≤ 1.05)'],
      rows,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
