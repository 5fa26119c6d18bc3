/**
 * What MQTT delivery through the outbox costs the node, as ratios from one run:
 *
 *   node dist/bench/outbox.js [--runs N]
 *
 * 1. Node CPU-seconds per MB delivered (offered as a manifest and chunks, received and verified by a
 *    collector, confirmed by its receipt) ÷ `mosquitto_pub -f`'s CPU-seconds per MB for the same
 *    24 MB file through the same Mosquitto, each summed over every run. The node is a daemon
 *    process; its CPU is read from /proc/<pid>/stat before and after, mosquitto_pub's from
 *    /usr/bin/time.
 * 2. The node's peak RSS during a capture of a 24 MB DNG (simulated imx477) delivered over MQTT, and
 *    during a stored 24 MB image delivered, against its idle RSS (sampled from /proc every 10 ms).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { startTestCollector } from '../test/helpers/receipt-collector.js';
import { spawnDaemon } from '../test/helpers/daemon.js';
import { mosquittoMissing, startMosquitto } from '../test/helpers/mosquitto.js';
import { printTable } from './stats.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
const runs = Number(values.runs);
const SIZE = 24 * 1024 * 1024;
const MB = 1024 * 1024;
const NODE = 'bench-outbox';

const missing = mosquittoMissing() ?? ((await stat('/usr/bin/time').catch(() => null)) ? null : '/usr/bin/time is not installed');
if (missing) {
  process.stdout.write(`skipped: ${missing}\n`);
  process.exit(0);
}

/** User + system CPU seconds of a process so far (clock ticks of 1/100 s on Linux). */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
async function rssKb(pid: number): Promise<number> {
  return Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
}

const dir = await mkdtemp(join(tmpdir(), 'camera-node-bench-outbox-'));
const broker = await startMosquitto();
const stored = join(dir, 'images', 'capture_20260101_120000.dng');
await mkdir(join(dir, 'images'), { recursive: true });
await writeFile(stored, randomBytes(SIZE));
const daemon = await spawnDaemon({
  NODE_ID: NODE,
  MQTT_URL: broker.url,
  CAPTURE_DIR: join(dir, 'images'),
  LOG_DIR: join(dir, 'logs'),
  LOG_LEVEL: 'info',
  STORAGE_LIMIT_MB: '400',
  MIN_FREE_DISK_MB: '0',
  HA_DISCOVERY: 'false',
  CAMERA_SIM_SENSOR: 'imx477',
  DELIVERY_REOFFER_BASE_S: '3600',
});
const pid = daemon.child.pid ?? 0;
const collector = await startTestCollector(broker.url, { missingTimeoutMs: 10_000 });
try {
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const idleKb = await rssKb(pid);
  let peakKb = idleKb;
  let sampling = false;
  const sampler = setInterval(() => {
    if (!sampling) return;
    void rssKb(pid).then((kb) => {
      peakKb = Math.max(peakKb, kb);
    });
  }, 10);
  const peakDuring = async (work: () => Promise<void>): Promise<number> => {
    peakKb = await rssKb(pid);
    sampling = true;
    await work();
    sampling = false;
    return peakKb;
  };

  // A capture delivered over MQTT: the outbox hashes it once, offers it, the receipt ends it.
  const capturedPeakKb = await peakDuring(async () => {
    const before = collector.receipts.size;
    const response = await fetch(`${daemon.httpUrl}/capture?deliver=mqtt`, { method: 'POST' });
    if (response.status !== 200) throw new Error(`capture answered ${response.status}: ${await response.text()}`);
    await collector.waitForImages(before + 1, 120_000);
  });

  // A stored image sent and receipted, `runs` times: CPU per MB of delivery alone.
  const nodeCpuPerMb: number[] = [];
  const sendPeakKb = await peakDuring(async () => {
    for (let i = 0; i <= runs; i += 1) {
      const received = collector.images.length;
      const cpu = await cpuSeconds(pid);
      await collector.client.publishAsync(
        `cameras/${NODE}/cmd`,
        JSON.stringify({ id: `bench-${i}`, action: 'send', filename: 'capture_20260101_120000.dng' }),
        { qos: 1 },
      );
      while (collector.images.length === received) await new Promise((resolve) => setTimeout(resolve, 5));
      await new Promise((resolve) => setTimeout(resolve, 200)); // the receipt is handled too
      // The first send hashes the stored file (it was not captured through the outbox): not counted.
      if (i > 0) nodeCpuPerMb.push(((await cpuSeconds(pid)) - cpu) / (SIZE / MB));
    }
  });
  clearInterval(sampler);

  const brokerArgs = ['-h', '127.0.0.1', '-p', String(broker.port), '-q', '1'];
  const pubCpuPerMb: number[] = [];
  for (let i = 0; i < runs; i += 1) {
    const sub = execa('mosquitto_sub', [...brokerArgs, '-t', 'bench/raw', '-C', '1'], { stdout: 'ignore' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const timed = await execa('/usr/bin/time', ['-f', '%U %S', 'mosquitto_pub', ...brokerArgs, '-t', 'bench/raw', '-f', stored]);
    await sub;
    const [user, system] = timed.stderr.trim().split('\n').at(-1)?.split(' ').map(Number) ?? [Number.NaN, Number.NaN];
    pubCpuPerMb.push(((user ?? 0) + (system ?? 0)) / (SIZE / MB));
  }

  // Totals over every run, not medians: both CPU clocks tick in 10 ms, a few ticks per 24 MB.
  const node = nodeCpuPerMb.reduce((sum, v) => sum + v, 0) / nodeCpuPerMb.length;
  const pub = pubCpuPerMb.reduce((sum, v) => sum + v, 0) / pubCpuPerMb.length;
  printTable(
    `24 MB through Mosquitto, ${runs} runs (CPU ms per MB, over all runs)`,
    ['sender', 'CPU ms/MB'],
    [
      ['node: offer + chunks + receipt (daemon, /proc)', node * 1000],
      ['mosquitto_pub -f (one message, /usr/bin/time)', pub * 1000],
    ],
  );
  printTable(
    'node RSS (MB)',
    ['figure', 'MB'],
    [
      ['idle', idleKb / 1024],
      ['peak: capture (24 MB DNG) + MQTT delivery', capturedPeakKb / 1024],
      ['peak: stored 24 MB image sent and receipted', sendPeakKb / 1024],
    ],
  );
  printTable(
    'ratios (one run)',
    ['figure', 'ratio'],
    [
      ['node CPU-s per MB delivered ÷ mosquitto_pub -f (goal ≤ 1.5; /usr/bin/time has 10 ms resolution)', node / pub],
      ['peak RSS, capture + delivery ÷ idle RSS', capturedPeakKb / idleKb],
      ['peak RSS − idle RSS, capture + delivery, in MB (goal ≤ 10)', (capturedPeakKb - idleKb) / 1024],
    ],
  );
} finally {
  await collector.stop();
  daemon.child.kill('SIGTERM');
  await daemon.exited;
  await broker.stop();
  await rm(dir, { recursive: true, force: true });
}
