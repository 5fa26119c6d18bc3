/**
 * tail() cost against log size: the last 100 entries of a 1 MB and a 10 MB log file.
 *
 *   node dist/bench/logs.js [--runs N]
 *
 * tail() reads the file backwards in fixed blocks, so its cost should not follow the file's size: the
 * ratio 10 MB ÷ 1 MB should stay near 1. A whole-file read (readFile + split + parse the last lines) is
 * measured alongside as the baseline whose ratio does grow with the size. Both files are measured within
 * one run, so the ratio compares like with like.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { tailLogs } from '../src/logs/tail.js';
import { elapsedMs, fixed, printTable, summarize } from './stats.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '200' } } });
const runs = Number(values.runs);
const LINES = 100;
const NAME = 'camera_node';

/** A log file of about `bytes` bytes of pino-shaped lines. */
async function writeLog(dir: string, bytes: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const line = `${JSON.stringify({ level: 30, time: 1_700_000_000_000 + i, pid: 4242, hostname: 'pi-zero', node_id: 'bench', part: 'commands', filename: `img_${i}.dng`, size: 18_874_368, duration_ms: 812, msg: 'captured' })}\n`;
    lines.push(line);
    size += Buffer.byteLength(line);
  }
  await writeFile(join(dir, `${NAME}.1.log`), lines.join(''));
}

async function wholeFileTail(dir: string): Promise<number> {
  const text = await readFile(join(dir, `${NAME}.1.log`), 'utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .slice(-LINES)
    .map((line) => JSON.parse(line)).length;
}

const root = await mkdtemp(join(tmpdir(), 'camera-node-bench-logs-'));
try {
  const sizes = [
    { label: '1 MB', dir: join(root, 'small'), bytes: 1_000_000 },
    { label: '10 MB', dir: join(root, 'large'), bytes: 10_000_000 },
  ];
  for (const size of sizes) await writeLog(size.dir, size.bytes);

  const methods = [
    { label: 'tail() from the end', run: async (dir: string) => (await tailLogs(dir, NAME, LINES)).length },
    { label: 'whole-file read (baseline)', run: wholeFileTail },
  ];
  const samples = new Map<string, number[]>();
  // Warm the page cache and the JIT before timing.
  for (const method of methods) for (const size of sizes) await method.run(size.dir);
  // One method and size at a time: interleaved, the baseline's 10 MB allocations bill their garbage
  // collection to whichever call follows them.
  for (const method of methods) {
    for (const size of sizes) {
      for (let i = 0; i < runs; i++) {
        const start = process.hrtime.bigint();
        const count = await method.run(size.dir);
        const ms = elapsedMs(start);
        if (count !== LINES) throw new Error(`${method.label} returned ${count} entries`);
        const key = `${method.label}|${size.label}`;
        samples.set(key, [...(samples.get(key) ?? []), ms]);
      }
    }
  }

  const rows = methods.map((method) => {
    const small = summarize(samples.get(`${method.label}|1 MB`) ?? []);
    const large = summarize(samples.get(`${method.label}|10 MB`) ?? []);
    return [method.label, small.median, small.p95, large.median, large.p95, `${fixed(large.median / small.median)}x`];
  });
  printTable(
    `tail(${LINES}) cost, ms over ${runs} runs each`,
    ['method', '1 MB median', '1 MB p95', '10 MB median', '10 MB p95', '10 MB ÷ 1 MB'],
    rows,
  );
} finally {
  await rm(root, { recursive: true, force: true });
}
