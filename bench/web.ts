/**
 * What the node page costs a node: idle RSS of a daemon nobody has looked at, against the same
 * daemon after a browser loaded the page (every file, the live stream for a while, a capture seen
 * live). A baseline build without the page can be measured in the same run:
 *
 *   node dist/bench/web.js [--baseline /path/to/other/dist/src/main.js]
 *
 * Each daemon runs alone with the simulator; RSS is read from /proc (Linux), the median of five
 * samples 200 ms apart once it has started.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { MAIN, spawnDaemon } from '../test/helpers/daemon.js';
import { printTable } from './stats.js';

const { values } = parseArgs({ options: { baseline: { type: 'string' } } });
const PAGE_FILES = ['/', '/ui/node.js', '/ui/common.js', '/ui/style.css'];

const rssMb = async (pid: number): Promise<number> => {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
};
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The median of five samples 200 ms apart: one GC or allocation burst does not decide the figure. */
async function settledRss(pid: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 5; i += 1) {
    await pause(200);
    samples.push(await rssMb(pid));
  }
  return samples.sort((a, b) => a - b)[2] ?? 0;
}

/** A daemon of `main` on its embedded broker, once every part has started. */
async function startDaemon(main: string, dir: string) {
  const daemon = await spawnDaemon(
    { CAPTURE_DIR: join(dir, 'images'), LOG_DIR: join(dir, 'logs') },
    { main, ready: 'camera-node started' },
  );
  return { child: daemon.child, url: daemon.httpUrl, pid: daemon.child.pid ?? 0 };
}

async function lookAtPage(url: string): Promise<number> {
  let bytes = 0;
  for (const path of PAGE_FILES) bytes += (await (await fetch(`${url}${path}`)).arrayBuffer()).byteLength;
  const controller = new AbortController();
  const events = await fetch(`${url}/events`, { signal: controller.signal });
  const reader = events.body?.getReader();
  await reader?.read();
  await fetch(`${url}/capture`, { method: 'POST' });
  for (const path of ['/images', '/logs?lines=60', '/preview.jpg'])
    bytes += (await (await fetch(`${url}${path}`)).arrayBuffer()).byteLength;
  controller.abort();
  return bytes;
}

async function measure(main: string, withPage: boolean): Promise<{ idle: number; after: number | null; bytes: number | null }> {
  const dir = await mkdtemp(join(tmpdir(), 'camera-node-bench-web-'));
  const daemon = await startDaemon(main, dir);
  try {
    const idle = await settledRss(daemon.pid);
    if (!withPage) return { idle, after: null, bytes: null };
    const bytes = await lookAtPage(daemon.url);
    const after = await settledRss(daemon.pid);
    return { idle, after, bytes };
  } finally {
    daemon.child.kill('SIGTERM');
    await new Promise((resolve) => daemon.child.once('exit', resolve));
    await rm(dir, { recursive: true, force: true });
  }
}

const page = await measure(MAIN, true);
const baseline = values.baseline ? await measure(values.baseline, false) : null;
const base = baseline?.idle ?? page.idle;
const rows: Array<[string, number, number]> = [];
if (baseline) rows.push(['baseline build, idle', baseline.idle, 1]);
rows.push(['this build, idle (page never requested)', page.idle, page.idle / base]);
rows.push(['this build, after the page was used', page.after ?? 0, (page.after ?? 0) / base]);
printTable('idle RSS', ['daemon', 'RSS MB', 'ratio'], rows);
process.stdout.write(
  `page and its API calls: ${page.bytes} bytes transferred (budget 102400: ratio ${((page.bytes ?? 0) / 102400).toFixed(2)})\n`,
);
