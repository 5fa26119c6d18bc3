/**
 * The Pi Zero budget, as ratios from one run (README, "Running on a Pi Zero"):
 *
 *   node dist/bench/budget.js [--runs N] [--captures N] [--node-options='--flag ...'] [--malloc-arena-max=N]
 *
 * Every figure is read from /proc for a `camera-node` daemon (its own process, over an external
 * Mosquitto, started with the V8 flags of deploy/camera-node.service) and for its baseline, measured
 * here in the same run:
 * 1. Startup CPU: the daemon's CPU-seconds (user + system, all threads) from exec to serving (its
 *    "camera-node started" record), against bare node from exec to running its first line; median of
 *    N starts each.
 * 2. Idle RSS once the node is online and has settled, against bare node's RSS.
 * 3. Peak RSS (VmHWM, reset through clear_refs before the capture) during one capture of a 24 MB DNG
 *    delivered over MQTT to a receiver, against the idle RSS.
 * 4. Per-capture CPU of the node against the camera app's own (the app is the node's child, so its
 *    CPU shows in the node's cutime/cstime once reaped): the node's share of a capture's work.
 * 5. The floor under 1: a process that only imports fastify, mqtt, pino and execa (bench/import-floor.ts).
 * 6. RSS after 50 start/stop cycles of a node in one process ÷ after 1, with the same flags (bench/cycles.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { createReceiver, type ReceivedImage } from '../src/client/receiver.js';
import { MAIN } from '../test/helpers/daemon.js';
import { mosquittoMissing, startMosquitto } from '../test/helpers/mosquitto.js';
import { printTable, summarize } from './stats.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    captures: { type: 'string', default: '5' },
    // Other V8 flags than the unit's, to compare candidates (each run measures its own baseline).
    'node-options': { type: 'string' },
    'malloc-arena-max': { type: 'string' },
  },
});
const runs = Number(values.runs);
const captures = Number(values.captures);

const missing = mosquittoMissing();
if (missing) {
  process.stdout.write(`skipped: ${missing}\n`);
  process.exit(0);
}

/**
 * The shipped systemd unit's NODE_OPTIONS (V8 flags) and MALLOC_ARENA_MAX, so the figures are those
 * of a deployed node. The flags are given on the node's command line rather than in NODE_OPTIONS, so
 * the simulated camera app (a node program too, unlike rpicam-still) runs without them.
 */
async function unitSettings(): Promise<{ flags: string[]; arenas: string | undefined; logTarget: string }> {
  const unit = await readFile(new URL('../../deploy/camera-node.service', import.meta.url), 'utf8');
  const setting = (name: string) => new RegExp(`^Environment="?${name}=([^"\\n]*)"?$`, 'm').exec(unit)?.[1];
  return {
    flags: setting('NODE_OPTIONS')?.split(/\s+/).filter(Boolean) ?? [],
    arenas: setting('MALLOC_ARENA_MAX'),
    logTarget: setting('LOG_TARGET') ?? 'file',
  };
}

const TICKS_PER_S = 100; // USER_HZ: the unit of /proc/<pid>/stat's times on Linux.

interface ProcStat {
  /** Own CPU (user + system) in seconds, every thread. */
  cpuS: number;
  /** CPU of reaped children (the camera app), in seconds. */
  childrenCpuS: number;
}

async function procStat(pid: number): Promise<ProcStat> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = text
    .slice(text.lastIndexOf(')') + 2)
    .split(' ')
    .map(Number);
  const at = (field: number): number => fields[field - 3] ?? 0;
  return { cpuS: (at(14) + at(15)) / TICKS_PER_S, childrenCpuS: (at(16) + at(17)) / TICKS_PER_S };
}

async function memoryKb(pid: number): Promise<{ rss: number; hwm: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? Number.NaN);
  return { rss: field('VmRSS'), hwm: field('VmHWM') };
}

/**
 * Runs a process and resolves once a line satisfies `ready`: a line of its stdout, or of `logFile`
 * (polled from here, so the node's own CPU is not disturbed) when the node logs to a file.
 */
async function spawnUntil(
  args: string[],
  env: NodeJS.ProcessEnv,
  ready: (line: string) => boolean,
  logFile?: string,
): Promise<{ child: ChildProcess; pid: number }> {
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready in 30 s: ${stderr}`)), 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited early (${code}): ${stderr}`));
    });
    const done = (): void => {
      clearTimeout(timer);
      clearInterval(poll);
      child.removeAllListeners('exit');
      resolve();
    };
    const poll = logFile
      ? setInterval(() => {
          readFile(logFile, 'utf8').then(
            (text) => text.split('\n').some(ready) && done(),
            () => undefined, // not written yet
          );
        }, 20)
      : undefined;
    if (!child.stdout) throw new Error('no stdout');
    createInterface({ input: child.stdout }).on('line', (line) => ready(line) && done());
  });
  return { child, pid: child.pid ?? 0 };
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/** bench/cycles.ts in a process of its own, with these V8 flags (and the unit's allocator setting). */
async function runCycles(
  nodeFlags: string[],
): Promise<{ cycles: number; rss_ratio: number; rss_after_1_mb: number; rss_after_last_mb: number }> {
  const child = spawn(process.execPath, [...nodeFlags, '--expose-gc', fileURLToPath(new URL('./cycles.js', import.meta.url))], {
    env: baseEnv(),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  const code = await new Promise((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`bench/cycles exited ${String(code)}`);
  return JSON.parse(out.trim().split('\n').pop() ?? '{}');
}

const unit = await unitSettings();
const flags = values['node-options'] === undefined ? unit.flags : values['node-options'].split(/\s+/).filter(Boolean);
const arenas = values['malloc-arena-max'] ?? unit.arenas;
const dir = await mkdtemp(join(tmpdir(), 'camera-node-bench-budget-'));
const broker = await startMosquitto();
const baseEnv = (): NodeJS.ProcessEnv => ({ PATH: process.env['PATH'] ?? '', ...(arenas ? { MALLOC_ARENA_MAX: arenas } : {}) });
const nodeEnv = (name: string, sensor: string): NodeJS.ProcessEnv => ({
  ...baseEnv(),
  NODE_ID: name,
  HOST: '127.0.0.1',
  PORT: '0',
  MQTT_URL: broker.url,
  CAMERA_BACKEND: 'simulated',
  CAPTURE_DIR: join(dir, name, 'images'),
  LOG_DIR: join(dir, name, 'logs'),
  LOG_TARGET: unit.logTarget,
  STORAGE_LIMIT_MB: '200',
  MIN_FREE_DISK_MB: '0',
  CAMERA_SIM_SENSOR: sensor,
  CAMERA_SIM_START_MS: '0',
  CAMERA_SIM_CAPTURE_MS: '0',
  CAMERA_SIM_WRITE_MBPS: '0',
});
const started = (line: string): boolean => line.includes('"msg":"camera-node started"');
// The link to the log file in use, when the unit logs to files.
const logFile = (name: string): string | undefined => (unit.logTarget === 'stdout' ? undefined : join(dir, name, 'logs', 'current.log'));

try {
  // 1 and 2, bare node: exec to its first line of JavaScript, with the same flags.
  const bareCpu: number[] = [];
  const bareRss: number[] = [];
  for (let i = 0; i < runs; i += 1) {
    const bare = await spawnUntil(
      [...flags, '-e', 'process.stdout.write("ready\\n"); setInterval(() => {}, 1e6)'],
      baseEnv(),
      (line) => line === 'ready',
    );
    bareCpu.push((await procStat(bare.pid)).cpuS);
    bareRss.push((await memoryKb(bare.pid)).rss);
    await kill(bare.child);
  }
  const floorCpu: number[] = [];
  for (let i = 0; i < runs; i += 1) {
    const floor = await spawnUntil(
      [...flags, fileURLToPath(new URL('./import-floor.js', import.meta.url))],
      baseEnv(),
      (line) => line === 'ready',
    );
    floorCpu.push((await procStat(floor.pid)).cpuS);
    await kill(floor.child);
  }
  const cycles = await runCycles(flags);
  const nodeCpu: number[] = [];
  for (let i = 0; i < runs; i += 1) {
    const node = await spawnUntil([...flags, MAIN], nodeEnv(`bench-start-${i}`, 'tiny'), started, logFile(`bench-start-${i}`));
    nodeCpu.push((await procStat(node.pid)).cpuS);
    await kill(node.child);
  }

  // 2, 3 and 4: one node with an HQ-sized sensor (a 24 MB DNG), online over Mosquitto.
  const nodeId = 'bench-budget';
  const node = await spawnUntil([...flags, MAIN], nodeEnv(nodeId, 'imx477'), started, logFile(nodeId));
  const client = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
  const replies = new Map<string, (reply: Record<string, unknown>) => void>();
  let onImage: (image: ReceivedImage) => void = () => undefined;
  const receiver = createReceiver({ client, prefix: 'cameras', outDir: join(dir, 'received'), onImage: (image) => onImage(image) });
  try {
    await new Promise<void>((resolve) => {
      client.on('message', (topic, payload) => {
        if (topic.endsWith('/availability') && payload.toString() === 'online') resolve();
        if (topic.startsWith(`cameras/${nodeId}/res`)) {
          const reply = JSON.parse(payload.toString()) as Record<string, unknown>;
          replies.get(String(reply['id']))?.(reply);
        }
      });
      void client.subscribeAsync([`cameras/${nodeId}/availability`, `cameras/${nodeId}/res`]);
    });
    await receiver.start();
    const command = async (body: Record<string, unknown>): Promise<Record<string, unknown>> => {
      const id = `budget-${Math.random().toString(36).slice(2)}`;
      const reply = new Promise<Record<string, unknown>>((resolve) => replies.set(id, resolve));
      await client.publishAsync(`cameras/${nodeId}/cmd`, JSON.stringify({ id, ...body }), { qos: 1 });
      const answer = await reply;
      replies.delete(id);
      if (answer['status'] !== 'success') throw new Error(`command failed: ${JSON.stringify(answer)}`);
      return answer;
    };
    // Idle: online, and past the first telemetry and discovery publishes.
    await new Promise((resolve) => setTimeout(resolve, 5000));
    const idleKb = (await memoryKb(node.pid)).rss;

    // 4 first, without delivery: only the capture's work.
    const before = await procStat(node.pid);
    for (let i = 0; i < captures; i += 1) await command({ action: 'capture', deliver: 'none' });
    const after = await procStat(node.pid);

    await writeFile(`/proc/${node.pid}/clear_refs`, '5'); // resets VmHWM to the current RSS
    const received = new Promise<ReceivedImage>((resolve) => {
      onImage = resolve;
    });
    const deliveryStart = process.hrtime.bigint();
    const beforeDelivery = await procStat(node.pid);
    await command({ action: 'capture', deliver: 'mqtt' });
    const image = await received;
    const peakKb = (await memoryKb(node.pid)).hwm;
    const deliveryCpu = (await procStat(node.pid)).cpuS - beforeDelivery.cpuS;
    const deliveryMs = Number(process.hrtime.bigint() - deliveryStart) / 1e6;

    const startup = summarize(nodeCpu).median;
    const bareStartup = summarize(bareCpu).median;
    const floorStartup = summarize(floorCpu).median;
    const bareKb = summarize(bareRss).median;
    const nodeCaptureCpu = (after.cpuS - before.cpuS) / captures;
    const appCaptureCpu = (after.childrenCpuS - before.childrenCpuS) / captures;
    const mb = (kb: number): number => kb / 1024;
    printTable(
      `the budget figures (Node ${process.version}, flags: ${flags.join(' ') || 'none'}, MALLOC_ARENA_MAX=${arenas ?? 'unset'}, LOG_TARGET=${unit.logTarget}; median of ${runs} starts, ${captures} captures)`,
      ['figure', 'value', 'baseline', 'ratio', 'goal'],
      [
        ['startup CPU-s, exec to serving', startup, bareStartup, startup / bareStartup, '≤ 3'],
        ['startup CPU-s, importing fastify+mqtt+pino+execa only', floorStartup, bareStartup, floorStartup / bareStartup, ''],
        ['startup CPU-s, exec to serving ÷ that floor', startup, floorStartup, startup / floorStartup, ''],
        ['idle RSS MB', mb(idleKb), mb(bareKb), idleKb / bareKb, '≤ 60 MB'],
        [
          `peak RSS MB, capture + ${(image.size / 1024 / 1024).toFixed(1)} MB MQTT delivery`,
          mb(peakKb),
          mb(idleKb),
          peakKb / idleKb,
          '≤ idle + 10 MB',
        ],
        ['per-capture CPU-s, node ÷ camera app', nodeCaptureCpu, appCaptureCpu, nodeCaptureCpu / appCaptureCpu, ''],
        [
          `RSS MB after ${cycles.cycles} start/stop cycles ÷ after 1`,
          cycles.rss_after_last_mb,
          cycles.rss_after_1_mb,
          cycles.rss_ratio,
          '≤ 1.05',
        ],
      ],
    );
    process.stdout.write(
      `\npeak − idle: ${mb(peakKb - idleKb).toFixed(1)} MB; the delivered capture took ${deliveryMs.toFixed(0)} ms and ${deliveryCpu.toFixed(2)} CPU-s in the node\n`,
    );
  } finally {
    await receiver.stop();
    await client.endAsync();
    await kill(node.child);
  }
} finally {
  await broker.stop();
  await rm(dir, { recursive: true, force: true });
}
