/**
 * The collector's receiving side, against Mosquitto's own client as the baseline.
 *
 *   node dist/bench/collector.js [--nodes 20] [--mb 24]
 *
 * Throughput: 20 nodes' 24 MB images are published (QoS 1, 256 KB chunks, all 20 at once) while
 * the collector is away, so they wait in its persistent session; then the collector process starts
 * and the time from its connection until it has written, verified and fsynced every image is
 * measured (Node's start-up before it is not receiving). Baseline: the same
 * bytes published by `mosquitto_pub -f` (one message per image) into a persistent `mosquitto_sub`
 * session, drained the same way into /dev/null. Ratio: collector MB/s ÷ mosquitto_sub MB/s (goal ≥ 0.8).
 * Also shown: mosquitto_sub draining the very chunk messages the collector gets (same framing). The
 * collector verifies the SHA-256 and fsyncs every image; mosquitto_sub writes to /dev/null.
 *
 * Memory: the collector's peak RSS (VmHWM) receiving the 20 images interleaved (20 transfers open at
 * once) ÷ receiving one (goal ≤ 1.3: memory does not grow with the fleet).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import { publishImage } from '../src/delivery/chunks.js';
import { spawnCollector } from '../test/helpers/collector.js';
import { startMosquitto } from '../test/helpers/mosquitto.js';
import { elapsedMs, fixed, printTable } from './stats.js';

const { values } = parseArgs({ options: { nodes: { type: 'string', default: '20' }, mb: { type: 'string', default: '24' } } });
const NODES = Number(values.nodes);
const BYTES = Number(values.mb) * 1024 * 1024;
const FILENAME = 'capture_20260101_120000.dng';
const CHUNK = 256 * 1024;

async function connect(url: string): Promise<MqttClient> {
  return mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0 });
}

/** Publishes the image once per node, every node at once (so the transfers interleave at the broker). */
async function publishFleet(url: string, path: string, nodes: number): Promise<void> {
  const client = await connect(url);
  try {
    await Promise.all(
      Array.from({ length: nodes }, (_, i) =>
        publishImage({
          client,
          prefix: 'cameras',
          nodeId: `bench-${i}`,
          image: { path, filename: FILENAME, capturedAt: new Date().toISOString() },
          chunkSizeBytes: CHUNK,
          window: 8,
          requestId: null,
        }),
      ),
    );
  } finally {
    await client.endAsync();
  }
}

/** The collector drains what waits in its session; returns the ms it took and its peak RSS. */
async function drainCollector(url: string, dir: string, name: string, path: string, nodes: number): Promise<{ ms: number; hwmKb: number }> {
  const out = join(dir, name);
  // Once, to create the persistent session, then away while the fleet publishes.
  const first = await spawnCollector(url, out, name);
  first.child.kill('SIGTERM');
  await first.exited;
  await publishFleet(url, path, nodes);
  const collector = await spawnCollector(url, out, name);
  while (collector.lines.length < nodes) await new Promise((resolve) => setTimeout(resolve, 5));
  // From its CONNACK (the queued messages flow from then): Node's own start-up is not receiving.
  const ms = elapsedMs(collector.connectedAt() ?? process.hrtime.bigint());
  const status = await readFile(`/proc/${collector.child.pid}/status`, 'utf8');
  const hwmKb = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN);
  collector.child.kill('SIGTERM');
  await collector.exited;
  await rm(out, { recursive: true, force: true });
  return { ms, hwmKb };
}

function run(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'inherit'] });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${command} exited ${code}`))));
  });
}

/**
 * mosquitto_sub drains the same bytes from its persistent session, published by mosquitto_pub -f:
 * one message per image, or the same 256 KB chunk messages the collector gets.
 */
async function drainMosquittoSub(port: number, id: string, files: string[], nodes: number): Promise<number> {
  const broker = ['-h', '127.0.0.1', '-p', String(port), '-V', 'mqttv5', '-q', '1'];
  const sub = [...broker, '-c', '-i', id, '-x', '3600', '-t', 'cameras/+/images/#'];
  await run('mosquitto_sub', [...sub, '-W', '1']).catch(() => undefined);
  const topic = (i: number, j: number): string => `cameras/bench-${i}/images/${FILENAME}${files.length > 1 ? `/chunk/${j}` : ''}`;
  const jobs = Array.from({ length: nodes }, (_, i) => files.map((file, j) => ['-t', topic(i, j), '-f', file])).flat();
  // Eight at a time: 1,920 publishes one by one would take longer than the measurement.
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let job = jobs.shift(); job; job = jobs.shift()) await run('mosquitto_pub', [...broker, ...job]);
    }),
  );
  const started = process.hrtime.bigint();
  await run('mosquitto_sub', [...sub, '-C', String(nodes * files.length), '-N']);
  return elapsedMs(started);
}

const dir = await mkdtemp(join(tmpdir(), 'camera-node-bench-collector-'));
const broker = await startMosquitto(['max_queued_messages 0', 'max_queued_bytes 0', 'max_inflight_messages 20']);
try {
  const path = join(dir, 'image.dng');
  await writeFile(path, randomBytes(BYTES));
  const mb = (NODES * BYTES) / 1024 / 1024;
  const chunkFiles: string[] = [];
  const bytes = await readFile(path);
  for (let offset = 0; offset < BYTES; offset += CHUNK) {
    const file = join(dir, `chunk-${offset / CHUNK}`);
    await writeFile(file, bytes.subarray(offset, offset + CHUNK));
    chunkFiles.push(file);
  }
  const baselineMs = await drainMosquittoSub(broker.port, 'bench-sub-whole', [path], NODES);
  const chunkedMs = await drainMosquittoSub(broker.port, 'bench-sub-chunks', chunkFiles, NODES);
  const fleet = await drainCollector(broker.url, dir, 'bench-fleet', path, NODES);
  const single = await drainCollector(broker.url, dir, 'bench-single', path, 1);
  const baseline = mb / (baselineMs / 1000);
  const chunked = mb / (chunkedMs / 1000);
  const collector = mb / (fleet.ms / 1000);
  printTable(
    `Receiving ${NODES} × ${values.mb} MB through Mosquitto (one run)`,
    ['receiver', 'seconds', 'MB/s', 'peak RSS MB'],
    [
      ['mosquitto_sub, mosquitto_pub -f one message per image (baseline)', fixed(baselineMs / 1000), fixed(baseline, 1), '-'],
      ['mosquitto_sub, the same 256 KB chunk messages', fixed(chunkedMs / 1000), fixed(chunked, 1), '-'],
      [
        `camera-node collect, ${NODES} transfers at once (verified, fsynced)`,
        fixed(fleet.ms / 1000),
        fixed(collector, 1),
        fixed(fleet.hwmKb / 1024, 1),
      ],
      [
        'camera-node collect, 1 transfer',
        fixed(single.ms / 1000),
        fixed(values.mb ? Number(values.mb) / (single.ms / 1000) : 0, 1),
        fixed(single.hwmKb / 1024, 1),
      ],
    ],
  );
  printTable(
    'Ratios',
    ['figure', 'ratio', 'goal'],
    [
      ['collector throughput ÷ mosquitto_sub', fixed(collector / baseline), '≥ 0.8'],
      ['collector throughput ÷ mosquitto_sub, same chunk messages', fixed(collector / chunked), '-'],
      [`collector peak RSS, ${NODES} transfers ÷ 1`, fixed(fleet.hwmKb / single.hwmKb), '≤ 1.3'],
    ],
  );
} finally {
  await broker.stop();
  await rm(dir, { recursive: true, force: true });
}
