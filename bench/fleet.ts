/**
 * Fleet synchronisation: 20 nodes on one Mosquitto, one broadcast capture, and the spread between
 * the first and the last `triggered_at` — without `at` (each node fires when the message reaches
 * it) and with `at` 500 ms ahead (each fires at that instant on its clock; here all share one) —
 * and, what decides whether the frames line up, the spread of `exposure_started_at` (the frames'
 * SensorTimestamp on the wall clock): a trigger spread is not an exposure spread.
 *
 *   node dist/bench/fleet.js [--nodes 20] [--rounds 5] [--mode warm|cold] [--skip-daemons]
 *
 * Twice: 20 nodes in this process (createNode), then 20 daemons spawned from the compiled
 * `camera-node`. The simulated camera uses the tiny sensor (so 20 of them fit in two cores) with its
 * realistic delays (pass --sensor for another; the frame period of its mode bounds a warm node's
 * exposure spread). Reported per setting: the median spreads over the rounds, and the ratios of the
 * spreads with `at` to those without it. Mosquitto is started on a free port with its own config.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import { loadConfig } from '../src/config/config.js';
import { findOnPath } from '../src/camera/backend.js';
import { createNode, type CameraNode } from '../src/node.js';
import { fixed, printTable, summarize } from './stats.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '20' },
    rounds: { type: 'string', default: '5' },
    mode: { type: 'string', default: 'warm' },
    'skip-daemons': { type: 'boolean', default: false },
    'show-late': { type: 'boolean', default: false },
    sensor: { type: 'string', default: 'tiny' },
    zsl: { type: 'boolean', default: false },
  },
});
const NODES = Number(values.nodes);
const ROUNDS = Number(values.rounds);
const MODE = values.mode === 'cold' ? 'cold' : 'warm';
const AHEAD_MS = 500;
const PREFIX = 'fleet';
const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));
const SIM_ENV = { CAMERA_SIM_SENSOR: values.sensor ?? 'tiny' };
const ZSL = values.zsl === true;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function startMosquitto(dir: string): Promise<{ url: string; stop: () => Promise<void> }> {
  const binary = (await findOnPath('mosquitto', `${process.env['PATH'] ?? ''}:/usr/sbin:/usr/local/sbin`)) ?? null;
  if (!binary) throw new Error('mosquitto is not installed');
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  await writeFile(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 10000\n`);
  const child = spawn(binary, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `mqtt://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      const probe = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 1000 });
      await probe.endAsync();
      break;
    } catch (err) {
      if (i > 50) throw new Error(`mosquitto did not start: ${String(err)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return {
    url,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

interface Reply {
  id: string;
  node_id: string;
  status: string;
  error?: { code: string; message: string };
  triggered_at?: string;
  scheduled_at?: string;
  late_ms?: number;
  exposure_started_at?: string | null;
  exposure_late_ms?: number;
}

/** Subscribes to every reply and waits for availability of every node. */
async function fleetClient(url: string) {
  const client: MqttClient = await mqtt.connectAsync(url, { protocolVersion: 5 });
  const replies = new Map<string, Reply[]>();
  const online = new Set<string>();
  client.on('message', (topic, payload) => {
    const levels = topic.split('/');
    if (levels[2] === 'availability') {
      if (payload.toString() === 'online') online.add(levels[1] ?? '');
      else online.delete(levels[1] ?? '');
      return;
    }
    const reply = JSON.parse(payload.toString()) as Reply;
    replies.set(reply.id, [...(replies.get(reply.id) ?? []), reply]);
  });
  await client.subscribeAsync([`${PREFIX}/+/res`, `${PREFIX}/+/availability`], { qos: 1 });
  const waitFor = async (what: string, done: () => boolean, timeoutMs: number): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  return {
    client,
    waitOnline: (count: number) => waitFor(`${count} nodes online`, () => online.size >= count, 60_000),
    async broadcast(id: string, command: Record<string, unknown>, count: number): Promise<Reply[]> {
      await client.publishAsync(`${PREFIX}/all/cmd`, JSON.stringify({ id, action: 'capture', ...command }), { qos: 1 });
      await waitFor(`${count} replies to ${id}`, () => (replies.get(id)?.length ?? 0) >= count, 60_000);
      const got = replies.get(id) ?? [];
      const failed = got.filter((reply) => reply.status !== 'success');
      if (failed.length > 0) throw new Error(`${failed.length} nodes failed: ${JSON.stringify(failed[0])}`);
      return got;
    },
  };
}

/** Spread of the trigger instants; with `at`, from late_ms (sub-ms) rather than the ISO strings. */
function spread(replies: Reply[], at: number | null): number {
  const instants = replies.map((reply) =>
    at !== null && typeof reply.late_ms === 'number' ? at + reply.late_ms : Date.parse(reply.triggered_at ?? ''),
  );
  return Math.max(...instants) - Math.min(...instants);
}

/** Spread of the exposure starts; with `at`, from exposure_late_ms (sub-ms). */
function exposureSpread(replies: Reply[], at: number | null): number {
  const instants = replies.map((reply) =>
    at !== null && typeof reply.exposure_late_ms === 'number' ? at + reply.exposure_late_ms : Date.parse(reply.exposure_started_at ?? ''),
  );
  if (instants.some((instant) => !Number.isFinite(instant))) throw new Error('a reply without exposure_started_at');
  return Math.max(...instants) - Math.min(...instants);
}

interface Spreads {
  without: number;
  withAt: number;
  exposureWithout: number;
  exposureWithAt: number;
  late: number;
}

async function measure(fleet: Awaited<ReturnType<typeof fleetClient>>, label: string): Promise<Spreads> {
  const without: number[] = [];
  const withAt: number[] = [];
  const exposureWithout: number[] = [];
  const exposureWithAt: number[] = [];
  const late: number[] = [];
  // One round first, unmeasured: every node's first capture pays for JIT and caches.
  await fleet.broadcast(`${label}-warmup`, {}, NODES);
  for (let round = 0; round < ROUNDS; round++) {
    const plain = await fleet.broadcast(`${label}-plain-${round}`, {}, NODES);
    without.push(spread(plain, null));
    exposureWithout.push(exposureSpread(plain, null));
    const at = Date.now() + AHEAD_MS;
    const replies = await fleet.broadcast(`${label}-at-${round}`, { at }, NODES);
    withAt.push(spread(replies, at));
    exposureWithAt.push(exposureSpread(replies, at));
    if (values['show-late'])
      process.stdout.write(
        `${label} round ${round} late_ms: ${replies
          .map((reply) => reply.late_ms ?? Number.NaN)
          .sort((a, b) => a - b)
          .map((ms) => ms.toFixed(2))
          .join(' ')}\n`,
      );
    late.push(Math.max(...replies.map((reply) => reply.late_ms ?? Number.NaN)));
  }
  const median = (samples: number[]): number => summarize(samples).median;
  return {
    without: median(without),
    withAt: median(withAt),
    exposureWithout: median(exposureWithout),
    exposureWithAt: median(exposureWithAt),
    late: median(late),
  };
}

async function inProcess(url: string, dir: string): Promise<Spreads> {
  const base = await loadConfig({ argv: [], env: {} });
  const nodes: CameraNode[] = [];
  const fleet = await fleetClient(url);
  try {
    for (let i = 0; i < NODES; i++) {
      const node = createNode(
        {
          ...base,
          node_id: `inproc-${i}`,
          host: '127.0.0.1',
          port: 0,
          capture_dir: join(dir, `inproc-${i}`, 'images'),
          log_dir: join(dir, `inproc-${i}`, 'logs'),
          camera_backend: 'simulated',
          camera_mode: MODE,
          camera_zsl: ZSL,
          mqtt_url: url,
          mqtt_topic_prefix: PREFIX,
          ha_discovery: false,
          min_free_disk_mb: 0,
          camera_check_interval_s: 0,
        },
        { cameraEnv: SIM_ENV },
      );
      nodes.push(node);
      await node.start();
    }
    await fleet.waitOnline(NODES);
    return await measure(fleet, 'inproc');
  } finally {
    await fleet.client.endAsync();
    await Promise.all(nodes.map((node) => node.stop()));
  }
}

async function daemons(url: string, dir: string): Promise<Spreads> {
  const children: Array<{ child: ChildProcess; exited: Promise<void> }> = [];
  const fleet = await fleetClient(url);
  try {
    for (let i = 0; i < NODES; i++) {
      const child = spawn(process.execPath, [MAIN], {
        env: {
          PATH: process.env['PATH'] ?? '',
          ...SIM_ENV,
          NODE_ID: `daemon-${i}`,
          HOST: '127.0.0.1',
          PORT: '0',
          CAPTURE_DIR: join(dir, `daemon-${i}`, 'images'),
          LOG_DIR: join(dir, `daemon-${i}`, 'logs'),
          CAMERA_BACKEND: 'simulated',
          CAMERA_MODE: MODE,
          CAMERA_ZSL: String(ZSL),
          MQTT_URL: url,
          MQTT_TOPIC_PREFIX: PREFIX,
          HA_DISCOVERY: 'false',
          MIN_FREE_DISK_MB: '0',
          CAMERA_CHECK_INTERVAL_S: '0',
          LOG_LEVEL: 'warn',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      // Drain the output so a chatty daemon never blocks on a full pipe.
      for (const stream of [child.stdout, child.stderr]) if (stream) createInterface({ input: stream }).on('line', () => undefined);
      children.push({ child, exited: new Promise((resolve) => child.once('exit', () => resolve())) });
    }
    await fleet.waitOnline(NODES);
    return await measure(fleet, 'daemon');
  } finally {
    await fleet.client.endAsync();
    for (const { child } of children) child.kill('SIGTERM');
    await Promise.all(children.map(({ exited }) => exited));
  }
}

const dir = await mkdtemp(join(tmpdir(), 'camera-node-bench-fleet-'));
const broker = await startMosquitto(dir);
try {
  const rows: Array<[string, number, number, number, number, number, string, string]> = [];
  const row = (name: string, r: Spreads): (typeof rows)[number] => [
    name,
    r.without,
    r.withAt,
    r.exposureWithout,
    r.exposureWithAt,
    r.late,
    fixed(r.withAt / r.without, 3),
    fixed(r.exposureWithAt / r.exposureWithout, 3),
  ];
  rows.push(row(`${NODES} nodes in one process`, await inProcess(broker.url, dir)));
  if (!values['skip-daemons']) rows.push(row(`${NODES} daemon processes`, await daemons(broker.url, dir)));
  printTable(
    `broadcast capture, ${MODE}${ZSL ? '+ZSL' : ''} camera, sensor ${values.sensor}: spreads (last − first), median of ${ROUNDS} rounds (ms)`,
    [
      'fleet',
      'trigger, no at',
      `trigger, at +${AHEAD_MS} ms`,
      'exposure, no at',
      'exposure, with at',
      'latest late_ms',
      'trigger: at ÷ no at',
      'exposure: at ÷ no at',
    ],
    rows,
  );
} finally {
  await broker.stop();
  await rm(dir, { recursive: true, force: true });
}
