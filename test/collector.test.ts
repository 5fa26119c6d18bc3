import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { createCollector } from '../src/client/collector.js';
import { startEmbeddedBroker } from '../src/mqtt/broker.js';

const timers = (): number => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;

test('against a 3.1.1-only broker (the embedded one) the collector falls back and leaves no reconnect timer behind', async (t) => {
  const logger = pino({ level: 'silent' });
  const broker = await startEmbeddedBroker({ host: '127.0.0.1', port: 0, logger });
  const outDir = await mkdtemp(join(tmpdir(), 'camera-node-collector-'));
  t.after(async () => {
    await broker.stop();
    await rm(outDir, { recursive: true, force: true });
  });
  const before = timers();
  const collector = createCollector({ url: broker.url, outDir, name: 'fallback-test', logger });
  await collector.start();
  assert.equal(collector.status().connected, true);
  await collector.stop();
  // The refused MQTT 5 client used to keep reconnecting every 2 s, so a dashboard or a test never exited.
  assert.equal(timers(), before, `timers left: ${process.getActiveResourcesInfo().join(', ')}`);
});
