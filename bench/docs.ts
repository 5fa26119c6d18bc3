/**
 * What the API docs cost, and that an idle node does not pay it: the resident memory of a daemon
 * that never served the docs, against the same daemon after `/openapi.json` and after a whole
 * Swagger UI page load (its HTML, scripts, styles and document).
 *
 *   node dist/bench/docs.js [--samples N] [--compare path/to/other/dist/src/main.js]
 *
 * `--compare` also measures another build's idle daemon in the same run (e.g. one without the docs),
 * to show that the lazy docs add nothing at idle. RSS is read from /proc (Linux), the median of N
 * readings 100 ms apart once the request is answered. Reported: each figure ÷ the idle daemon's.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { type Daemon, MAIN, spawnDaemon } from '../test/helpers/daemon.js';
import { elapsedMs, printTable, summarize } from './stats.js';

const { values } = parseArgs({ options: { samples: { type: 'string', default: '10' }, compare: { type: 'string' } } });
const samples = Number(values.samples);
const DOCS_FILES = [
  '/docs',
  '/docs/static/swagger-ui.css',
  '/docs/static/index.css',
  '/docs/static/swagger-ui-bundle.js',
  '/docs/static/swagger-ui-standalone-preset.js',
  '/docs/static/swagger-initializer.js',
  '/docs/json',
];

/** A daemon of `main` without MQTT (the docs are the HTTP API's). */
async function startDaemon(main: string, dir: string): Promise<Daemon> {
  return spawnDaemon({ MQTT_ENABLED: 'false', CAPTURE_DIR: join(dir, 'images'), LOG_DIR: join(dir, 'logs') }, { main });
}

async function stopDaemon(daemon: Daemon): Promise<void> {
  const exited = new Promise((resolve) => daemon.child.once('exit', resolve));
  daemon.child.kill('SIGTERM');
  await exited;
}

async function rssMb(pid: number): Promise<number> {
  const readings: number[] = [];
  for (let i = 0; i < samples; i++) {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    readings.push(Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]) / 1024);
    await sleep(100);
  }
  return summarize(readings).median;
}

async function get(base: string, path: string): Promise<number> {
  const start = process.hrtime.bigint();
  const response = await fetch(`${base}${path}`);
  await response.arrayBuffer();
  if (!response.ok) throw new Error(`GET ${path}: ${response.status}`);
  return elapsedMs(start);
}

/** The routes a dashboard polls, so "idle" is a node that has served its ordinary requests. */
async function warmUp(base: string): Promise<void> {
  for (const path of ['/health', '/status', '/images', '/logs?lines=10']) await get(base, path);
}

const dir = await mkdtemp(join(tmpdir(), 'camera-node-bench-docs-'));
try {
  const rows: Array<[string, number, number]> = [];
  const daemon = await startDaemon(MAIN, join(dir, 'this'));
  const pid = daemon.child.pid ?? 0;
  await warmUp(daemon.httpUrl);
  const idle = await rssMb(pid);
  rows.push(['idle, docs never asked for', idle, 1]);
  const firstSpec = await get(daemon.httpUrl, '/openapi.json');
  const afterSpec = await rssMb(pid);
  rows.push(['after GET /openapi.json', afterSpec, afterSpec / idle]);
  for (const path of DOCS_FILES) await get(daemon.httpUrl, path);
  const afterUi = await rssMb(pid);
  rows.push(['after a /docs page load', afterUi, afterUi / idle]);
  const secondSpec = await get(daemon.httpUrl, '/openapi.json');
  await stopDaemon(daemon);

  if (values.compare) {
    const other = await startDaemon(values.compare, join(dir, 'other'));
    await warmUp(other.httpUrl);
    const otherIdle = await rssMb(other.child.pid ?? 0);
    rows.push([`idle, ${values.compare}`, otherIdle, otherIdle / idle]);
    await stopDaemon(other);
  }

  printTable('Resident memory (MB, median of readings)', ['daemon', 'RSS MB', '÷ idle'], rows);
  printTable(
    'GET /openapi.json (ms)',
    ['request', 'ms'],
    [
      ['first (loads the docs)', firstSpec],
      ['second', secondSpec],
    ],
  );
  printTable(
    'Ratios',
    ['figure', 'ratio'],
    [
      ['RSS after /openapi.json ÷ idle', afterSpec / idle],
      ['RSS after a /docs page load ÷ idle', afterUi / idle],
      ['first /openapi.json ÷ second', firstSpec / secondSpec],
      ...(values.compare ? [['idle ÷ the compared build idle', idle / (rows[3]?.[1] ?? Number.NaN)] as [string, number]] : []),
    ],
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
