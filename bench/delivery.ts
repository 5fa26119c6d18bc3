/**
 * Image delivery figures, as ratios from one run:
 *
 *   node dist/bench/delivery.js [--runs N]
 *
 * 1. One 24 MB image through the embedded broker (aedes, in this process): publishImage → aedes →
 *    receiver (verified), against one read pass of the file and a file copy.
 * 2. Live memory (heap + ArrayBuffers after a forced collection) during such a transfer: of the
 *    publisher alone (in its own process) and of this whole process (publisher, aedes, receiver),
 *    as ratios of the file size.
 * 3. One 24 MB image through Mosquitto: chunked by a node (a daemon process) and reassembled by the
 *    receiver, against `mosquitto_pub -f` of the same file as one message to a `mosquitto_sub`.
 * 4. The node's peak RSS during those transfers against its idle RSS (sampled from /proc).
 * 5. HTTP upload of the same file by the node's uploader against `curl -T`, to the same receiving
 *    server (a separate process that reads and discards the body).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { execa } from 'execa';
import mqtt from 'mqtt';
import { createReceiver, type ReceivedImage } from '../src/client/receiver.js';
import { publishImage } from '../src/delivery/chunks.js';
import { sha256File } from '../src/delivery/manifest.js';
import { uploadFile } from '../src/delivery/upload.js';
import { spawnDaemon } from '../test/helpers/daemon.js';
import { runPublisherProcess, startAedes, startReceiver } from '../test/helpers/delivery.js';
import { freePort, mosquittoMissing, startMosquitto } from '../test/helpers/mosquitto.js';
import { elapsedMs, printTable, summarize } from './stats.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
const runs = Number(values.runs);
const IMAGE = 'capture_20260101_120000.dng';
const SIZE = 24 * 1024 * 1024;

/** Everything in this process through the embedded broker; sections 1 and 2. */
async function embeddedBrokerFigures(): Promise<void> {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const live = (): number => {
    gc();
    const usage = process.memoryUsage();
    return usage.heapUsed + usage.arrayBuffers;
  };
  const dir = await mkdtemp(join(tmpdir(), 'camera-node-bench-aedes-'));
  const file = join(dir, IMAGE);
  await writeFile(file, randomBytes(SIZE));
  const broker = await startAedes();
  const publisher = await mqtt.connectAsync(broker.url, { protocolVersion: 4 });
  const controller = await mqtt.connectAsync(broker.url, { protocolVersion: 4 });
  const r = await startReceiver(controller, { outDir: join(dir, 'received'), missingTimeoutMs: 10_000 });
  try {
    const send = (onProgress?: (sent: number) => void) =>
      publishImage({
        client: publisher,
        prefix: 'cameras',
        nodeId: 'bench',
        image: { path: file, filename: IMAGE, capturedAt: new Date(0).toISOString() },
        chunkSizeBytes: 256 * 1024,
        window: 8,
        ...(onProgress ? { onProgress } : {}),
      });
    const transfer: number[] = [];
    const read: number[] = [];
    const copy: number[] = [];
    for (let i = 0; i < runs; i += 1) {
      let start = process.hrtime.bigint();
      await sha256File(file);
      read.push(elapsedMs(start));
      start = process.hrtime.bigint();
      await copyFile(file, join(dir, 'copy'));
      copy.push(elapsedMs(start));
      start = process.hrtime.bigint();
      await send();
      await r.next();
      transfer.push(elapsedMs(start));
    }
    // Memory runs apart from the timed ones: a forced collection per sample slows the transfer.
    const baseline = live();
    let peak = baseline;
    await send((sent) => {
      if (sent % 4 === 0) peak = Math.max(peak, live());
    });
    await r.next();
    peak = Math.max(peak, live());
    const alone = await runPublisherProcess(broker.url, file, 4);
    await r.next();

    const t = summarize(transfer);
    const rd = summarize(read);
    const cp = summarize(copy);
    const mbps = (ms: number): number => SIZE / 1024 / 1024 / (ms / 1000);
    printTable(
      `24 MB image through the embedded broker (aedes, in-process), ${runs} runs (median ms, MB/s)`,
      ['path', 'median ms', 'MB/s'],
      [
        ['publishImage → aedes → receiver (verified)', t.median, mbps(t.median)],
        ['one read pass of the file (sha256)', rd.median, mbps(rd.median)],
        ['fs.copyFile of the file', cp.median, mbps(cp.median)],
      ],
    );
    printTable(
      'live memory growth during one transfer (MB)',
      ['process', 'MB'],
      [
        ['publisher alone (its own process)', alone.growth / 1024 / 1024],
        ['publisher + aedes + receiver (this process)', (peak - baseline) / 1024 / 1024],
      ],
    );
    printTable(
      'ratios (one run)',
      ['figure', 'ratio'],
      [
        ['transfer time ÷ one read pass', t.median / rd.median],
        ['transfer time ÷ file copy', t.median / cp.median],
        ['publisher live memory growth ÷ file size', alone.growth / SIZE],
        ['whole-process live memory growth ÷ file size', (peak - baseline) / SIZE],
      ],
    );
  } finally {
    await r.receiver.stop();
    await publisher.endAsync();
    await controller.endAsync();
    await broker.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await embeddedBrokerFigures();

const missing = mosquittoMissing();
if (missing) {
  process.stdout.write(`skipped: ${missing}\n`);
  process.exit(0);
}

async function rssKb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

const dir = await mkdtemp(join(tmpdir(), 'camera-node-bench-delivery-'));
const broker = await startMosquitto();
const file = join(dir, 'images', IMAGE);
await mkdir(join(dir, 'images'), { recursive: true });
await writeFile(file, randomBytes(SIZE));
const daemon = await spawnDaemon({
  NODE_ID: 'bench-delivery',
  MQTT_URL: broker.url,
  CAPTURE_DIR: join(dir, 'images'),
  LOG_DIR: join(dir, 'logs'),
  LOG_LEVEL: 'info', // spawnDaemon reads the 'HTTP API listening' record
  STORAGE_LIMIT_MB: '100',
  MIN_FREE_DISK_MB: '0',
}).catch(async (err: unknown) => {
  await broker.stop();
  await rm(dir, { recursive: true, force: true });
  throw err;
});
const pid = daemon.child.pid ?? 0;
const client = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
try {
  // Wait until the node is online, then let it settle before reading its idle RSS.
  await new Promise<void>((resolve) => {
    client.on('message', (topic, payload) => {
      if (topic.endsWith('/availability') && payload.toString() === 'online') resolve();
    });
    void client.subscribeAsync('cameras/bench-delivery/availability');
  });
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const idleKb = await rssKb(pid);

  let onImage: (image: ReceivedImage) => void = () => undefined;
  const receiver = createReceiver({ client, prefix: 'cameras', outDir: join(dir, 'received'), onImage: (image) => onImage(image) });
  await receiver.start();
  let peakKb = idleKb;
  const sampler = setInterval(() => {
    void rssKb(pid).then((kb) => {
      peakKb = Math.max(peakKb, kb);
    });
  }, 10);

  const chunked: number[] = [];
  const raw: number[] = [];
  const brokerArgs = ['-h', '127.0.0.1', '-p', String(broker.port)];
  for (let i = 0; i < runs; i += 1) {
    const received = new Promise<ReceivedImage>((resolve) => {
      onImage = resolve;
    });
    let start = process.hrtime.bigint();
    await client.publishAsync('cameras/bench-delivery/cmd', JSON.stringify({ id: `b${i}`, action: 'send', filename: IMAGE }), { qos: 1 });
    await received;
    chunked.push(elapsedMs(start));

    const sub = execa('mosquitto_sub', [...brokerArgs, '-q', '1', '-t', 'bench/raw', '-C', '1'], { stdout: 'ignore' });
    await new Promise((resolve) => setTimeout(resolve, 200));
    start = process.hrtime.bigint();
    await execa('mosquitto_pub', [...brokerArgs, '-q', '1', '-t', 'bench/raw', '-f', file]);
    await sub;
    raw.push(elapsedMs(start));
  }
  clearInterval(sampler);
  await receiver.stop();

  // HTTP: a receiving server in its own process, so neither client shares its event loop.
  const port = await freePort();
  const server = spawn(process.execPath, [
    '-e',
    `require('http').createServer((q, s) => { q.resume(); q.on('end', () => s.writeHead(201).end()); }).listen(${port}, '127.0.0.1', () => console.log('ready'))`,
  ]);
  await new Promise((resolve) => server.stdout.once('data', resolve));
  const url = `http://127.0.0.1:${port}/upload`;
  const viaNode: number[] = [];
  const viaCurl: number[] = [];
  for (let i = 0; i < runs; i += 1) {
    let start = process.hrtime.bigint();
    await uploadFile({
      url,
      method: 'PUT',
      headers: {},
      path: file,
      fields: { node_id: 'bench', filename: IMAGE, sha256: '', captured_at: '' },
      idleTimeoutMs: 30_000,
    });
    viaNode.push(elapsedMs(start));
    start = process.hrtime.bigint();
    await execa('curl', ['-sS', '-o', '/dev/null', '-T', file, url]);
    viaCurl.push(elapsedMs(start));
  }
  server.kill();

  const c = summarize(chunked);
  const r = summarize(raw);
  const n = summarize(viaNode);
  const u = summarize(viaCurl);
  const mbps = (ms: number): number => SIZE / 1024 / 1024 / (ms / 1000);
  printTable(
    `24 MB image, ${runs} runs each (median ms, MB/s)`,
    ['path', 'median ms', 'MB/s'],
    [
      ['node chunks → Mosquitto → receiver', c.median, mbps(c.median)],
      ['mosquitto_pub -f → mosquitto_sub (one message)', r.median, mbps(r.median)],
      ['node uploader, HTTP PUT', n.median, mbps(n.median)],
      ['curl -T, HTTP PUT', u.median, mbps(u.median)],
    ],
  );
  printTable(
    'node process memory (MB)',
    ['figure', 'MB'],
    [
      ['idle RSS', idleKb / 1024],
      ['peak RSS during chunked transfers', peakKb / 1024],
    ],
  );
  printTable(
    'ratios (one run)',
    ['figure', 'ratio'],
    [
      ['chunked transfer time ÷ mosquitto_pub one-message time', c.median / r.median],
      ['peak RSS during transfer ÷ idle RSS', peakKb / idleKb],
      ['node HTTP upload time ÷ curl -T time', n.median / u.median],
    ],
  );
} finally {
  await client.endAsync();
  daemon.child.kill('SIGTERM');
  await daemon.exited;
  await broker.stop();
  await rm(dir, { recursive: true, force: true });
}
