import assert from 'node:assert/strict';
import { access, mkdir, mkdtemp, rm, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { createSchemaRegistry } from '../src/schemas.js';
import { DEFAULT_THERMAL_ZONE, readMemory, readThermalZone, readWireless, temperatureProbe } from '../src/telemetry/probes.js';
import { createTelemetry } from '../src/telemetry/sampler.js';
import { collect, connectClient } from './helpers/mqtt.js';
import { startTestNode } from './helpers/node.js';
import type { MemoryReading, Telemetry, TelemetryOptions } from '../src/telemetry/types.js';

const root = await mkdtemp(join(tmpdir(), 'camera-node-telemetry-'));
after(() => rm(root, { recursive: true, force: true }));

/** A logger whose lines the test can read. */
function recordingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines };
}

const started: Telemetry[] = [];
after(() => Promise.all(started.map((telemetry) => telemetry.stop())));
async function startTelemetry(options: Partial<TelemetryOptions> = {}, logger = recordingLogger().logger): Promise<Telemetry> {
  const telemetry = createTelemetry(
    { diskPath: root, sampleIntervalMs: 60_000, thermalZonePath: join(root, 'no-such-zone'), ...options },
    logger,
  );
  started.push(telemetry);
  await telemetry.start();
  return telemetry;
}

const flushMicrotasks = async (rounds = 5) => {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
};

test('a thermal zone file in millidegrees reads as degrees Celsius', async () => {
  const zone = join(root, 'zone-temp');
  await writeFile(zone, '48312\n');
  assert.equal(await readThermalZone(zone), 48.3);
  const telemetry = await startTelemetry({ thermalZonePath: zone });
  assert.equal(telemetry.snapshot().cpu_temperature, 48.3);
});

test('a missing or unreadable thermal zone means no sensor: null', async () => {
  assert.equal(await readThermalZone(join(root, 'absent')), null);
  const garbage = join(root, 'garbage-temp');
  await writeFile(garbage, 'not a number\n');
  assert.equal(await readThermalZone(garbage), null);
  await writeFile(join(root, 'empty-temp'), '');
  assert.equal(await readThermalZone(join(root, 'empty-temp')), null);
  const telemetry = await startTelemetry({ thermalZonePath: join(root, 'absent') });
  assert.equal(telemetry.snapshot().cpu_temperature, null);
});

test('the snapshot has exactly the status system block, with figures in range', async () => {
  const telemetry = await startTelemetry();
  const snapshot = telemetry.snapshot();
  assert.deepEqual(Object.keys(snapshot).sort(), ['cpu_percent', 'cpu_temperature', 'disk_usage', 'memory_percent', 'uptime']);
  assert.ok(snapshot.cpu_percent >= 0 && snapshot.cpu_percent <= 100, `cpu_percent ${snapshot.cpu_percent}`);
  assert.ok(snapshot.memory_percent > 0 && snapshot.memory_percent <= 100, `memory_percent ${snapshot.memory_percent}`);
  assert.ok(snapshot.disk_usage >= 0 && snapshot.disk_usage <= 100, `disk_usage ${snapshot.disk_usage}`);
  assert.ok(snapshot.uptime > 0);

  // The same figure df shows for the folder's file system.
  const fs = await statfs(root);
  const used = fs.blocks - fs.bfree;
  assert.ok(Math.abs(snapshot.disk_usage - (used / (used + fs.bavail)) * 100) < 1);

  const details = telemetry.details();
  for (const key of ['cpu_percent', 'memory_percent', 'disk_usage', 'cpu_temperature'] as const)
    assert.equal(details[key], snapshot[key], key);
  assert.equal(details.load_average.length, 3);
  assert.ok(details.memory_total_mb > 0 && details.memory_used_mb > 0 && details.memory_used_mb <= details.memory_total_mb);
  assert.ok(details.disk_total_mb > 0 && details.disk_free_mb <= details.disk_total_mb);
  assert.ok(Math.abs(details.disk_free_mb - (fs.bavail * fs.bsize) / 2 ** 20) < 64);
  assert.ok(details.process_rss_mb > 1);
  assert.ok(!Number.isNaN(Date.parse(details.sampled_at ?? '')));
});

test('snapshot() before start() is a well-formed empty reading', () => {
  const telemetry = createTelemetry({ diskPath: root, sampleIntervalMs: 1000 }, recordingLogger().logger);
  assert.deepEqual(
    { ...telemetry.snapshot(), uptime: 0 },
    { cpu_percent: 0, memory_percent: 0, disk_usage: 0, cpu_temperature: null, uptime: 0 },
  );
  assert.equal(telemetry.details().sampled_at, null);
});

test('a failing probe keeps the node up, is logged once, and the others still report', async () => {
  const { logger, lines } = recordingLogger();
  const zone = join(root, 'zone-ok');
  await writeFile(zone, '51000');
  const telemetry = createTelemetry(
    {
      diskPath: join(root, 'no-such-dir'),
      sampleIntervalMs: 10,
      thermalZonePath: zone,
      probes: {
        memory: () => {
          throw new Error('meminfo unreadable');
        },
      },
    },
    logger,
  );
  started.push(telemetry);
  await telemetry.start();
  // Several more samples, each failing the same way.
  while (lines.filter((line) => line.probe === 'disk').length < 3) await new Promise((resolve) => setTimeout(resolve, 5));
  await telemetry.stop();
  const snapshot = telemetry.snapshot();
  assert.equal(snapshot.disk_usage, 0);
  assert.equal(snapshot.memory_percent, 0);
  assert.equal(snapshot.cpu_temperature, 51);
  const diskWarnings = lines.filter((line) => line.probe === 'disk' && line.level === 40);
  assert.equal(diskWarnings.length, 1, 'repeated failures are logged at warn once');
  assert.match(String((diskWarnings[0]?.err as { message?: string } | undefined)?.message), /ENOENT/);
  assert.ok(
    lines.some(
      (line) => line.probe === 'memory' && line.level === 40 && (line.err as { message?: string }).message === 'meminfo unreadable',
    ),
  );
});

test('a hung probe never blocks a snapshot and samples never overlap', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const memoryCalls: Array<(reading: MemoryReading) => void> = [];
  let hang = false;
  let availableBytes = 250;
  const telemetry = createTelemetry(
    {
      diskPath: root,
      sampleIntervalMs: 1000,
      probeTimeoutMs: 5000,
      probes: {
        memory: () =>
          hang ? new Promise<MemoryReading>((resolve) => memoryCalls.push(resolve)) : Promise.resolve({ totalBytes: 1000, availableBytes }),
        disk: async () => ({ totalBytes: 100, freeBytes: 40, usedPercent: 60 }),
        temperature: async () => 40,
        // Every probe is fake here: a real file read would finish on its own clock, not the mocked one.
        wireless: async () => null,
      },
    },
    recordingLogger().logger,
  );
  await telemetry.start();
  assert.equal(telemetry.snapshot().memory_percent, 75);
  const firstSample = telemetry.details().sampled_at;

  hang = true;
  t.mock.timers.tick(1000);
  await flushMicrotasks();
  assert.equal(memoryCalls.length, 1, 'the second sample is waiting on the memory probe');
  assert.equal(telemetry.snapshot().memory_percent, 75, 'the last reading is served meanwhile');

  // While that sample waits, intervals pass without starting another one.
  t.mock.timers.tick(1000);
  t.mock.timers.tick(1000);
  await flushMicrotasks();
  assert.equal(memoryCalls.length, 1);

  // The probe times out; the sample completes with the memory reading kept.
  t.mock.timers.tick(3000);
  await flushMicrotasks();
  assert.notEqual(telemetry.details().sampled_at, firstSample);
  assert.equal(telemetry.snapshot().memory_percent, 75);

  // The next sample does not call the still-hung probe again.
  t.mock.timers.tick(1000);
  await flushMicrotasks();
  assert.equal(memoryCalls.length, 1);

  // Once it answers, the next sample calls it again and takes the new reading.
  memoryCalls[0]?.({ totalBytes: 1000, availableBytes: 500 });
  hang = false;
  availableBytes = 900;
  await flushMicrotasks();
  t.mock.timers.tick(1000);
  await flushMicrotasks();
  assert.equal(telemetry.snapshot().memory_percent, 10);
  await telemetry.stop();
});

test('stop() clears the timer: no sample runs afterwards', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  let calls = 0;
  const telemetry = createTelemetry(
    {
      diskPath: root,
      sampleIntervalMs: 1000,
      probes: { temperature: async () => ++calls },
    },
    recordingLogger().logger,
  );
  await telemetry.start();
  t.mock.timers.tick(1000);
  await flushMicrotasks();
  assert.equal(calls, 2);
  await telemetry.stop();
  t.mock.timers.tick(10_000);
  await flushMicrotasks();
  assert.equal(calls, 2);
  // Starting again resumes sampling; stopping twice is harmless.
  await telemetry.start();
  assert.equal(calls, 3);
  await telemetry.stop();
  await telemetry.stop();
});

/** /proc/net/wireless as the Pi's brcmfmac writes it (the file itself cannot exist on this machine). */
const PI_WIRELESS = `Inter-| sta-|   Quality        |   Discarded packets               | Missed | WE
 face | tus | link level noise |  nwid  crypt   frag  retry   misc | beacon | 22
 wlan0: 0000   49.  -61.  -256        0      0      0      3      0        0
`;

test('Wi-Fi link quality and signal come from /proc/net/wireless; no wireless interface means null', async () => {
  const file = join(root, 'wireless');
  await writeFile(file, PI_WIRELESS);
  const wifi = { interface: 'wlan0', link_quality: 49, link_quality_percent: 70, signal_dbm: -61, noise_dbm: null };
  assert.deepEqual(await readWireless(file), wifi);
  const telemetry = await startTelemetry({ wirelessPath: file });
  assert.deepEqual(telemetry.details().wifi, wifi);

  // An old driver's unsigned 8-bit dBm, and a noise figure it does report.
  await writeFile(
    file,
    `${PI_WIRELESS.split('\n').slice(0, 2).join('\n')}\n  wlan1: 0001   70   195   161        0      0      0      0      0        0\n`,
  );
  assert.deepEqual(await readWireless(file), {
    interface: 'wlan1',
    link_quality: 70,
    link_quality_percent: 100,
    signal_dbm: -61,
    noise_dbm: -95,
  });

  // Only the header (the radio is off or absent), or no file at all.
  await writeFile(file, PI_WIRELESS.split('\n').slice(0, 2).join('\n'));
  assert.equal(await readWireless(file), null);
  assert.equal(await readWireless(join(root, 'no-such-wireless')), null);
  const wired = await startTelemetry({ wirelessPath: join(root, 'no-such-wireless') });
  assert.equal(wired.details().wifi, null);
});

test('memory comes from /proc/meminfo: MemTotal and MemAvailable', async () => {
  const file = join(root, 'meminfo');
  await writeFile(
    file,
    'MemTotal:         439592 kB\nMemFree:           52148 kB\nMemAvailable:     301260 kB\nBuffers:           20812 kB\n',
  );
  assert.deepEqual(await readMemory(file), { totalBytes: 439592 * 1024, availableBytes: 301260 * 1024 });
  await writeFile(file, 'MemTotal:         439592 kB\n');
  await assert.rejects(readMemory(file), /MemAvailable/);
});

const hasThermalZone = await access(DEFAULT_THERMAL_ZONE).then(
  () => true,
  () => false,
);
test('without a thermal zone the temperature comes from the first hardware monitor input', {
  skip: hasThermalZone ? 'this machine has a thermal zone, which comes first' : false,
}, async () => {
  const hwmon = join(root, 'hwmon');
  await mkdir(join(hwmon, 'hwmon0'), { recursive: true });
  await mkdir(join(hwmon, 'hwmon1'), { recursive: true });
  await writeFile(join(hwmon, 'hwmon1', 'temp1_input'), '51250\n');
  assert.equal(await temperatureProbe(undefined, hwmon)(), 51.3);
  assert.equal(await temperatureProbe(undefined, join(root, 'no-hwmon'))(), null);
});

test('a node publishes its Wi-Fi link in the retained telemetry, valid against the schema', async (t) => {
  const file = join(root, 'node-wireless');
  await writeFile(file, PI_WIRELESS);
  const node = await startTestNode({}, { wirelessPath: file });
  t.after(() => node.stop());
  const client = await connectClient(node.node.mqttUrl ?? '');
  t.after(() => client.endAsync());
  const telemetry = await collect(client, `cameras/${node.config.node_id}/telemetry`);
  const [message] = await telemetry.waitFor();
  await telemetry.close();
  const body = message?.json() ?? {};
  assert.deepEqual(body['wifi'], { interface: 'wlan0', link_quality: 49, link_quality_percent: 70, signal_dbm: -61, noise_dbm: null });
  const valid = createSchemaRegistry().validator('telemetry.schema.json');
  assert.ok(valid(body), JSON.stringify(valid.errors));
});
