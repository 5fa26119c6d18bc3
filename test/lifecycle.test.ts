import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { loadConfig } from '../src/config/config.js';
import { createNode } from '../src/node.js';
import { FAST_CAMERA, startTestNode } from './helpers/node.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/**
 * What a part could leave behind in this process: active handles by type (file system requests in
 * flight are not handles and come and go with the test runner's own output), listeners on process.
 */
function resources(): { handles: Record<string, number>; listeners: Record<string, number> } {
  const handles: Record<string, number> = {};
  for (const type of process.getActiveResourcesInfo()) if (!type.startsWith('FSReq')) handles[type] = (handles[type] ?? 0) + 1;
  const listeners: Record<string, number> = {};
  for (const event of process.eventNames()) listeners[String(event)] = process.listenerCount(event);
  return { handles, listeners };
}

/** Resident memory after a full collection (twice: weak callbacks free more on the second). */
function rssAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage.rss();
}

/**
 * A node (embedded broker, MQTT plane, Home Assistant, delivery, telemetry, clock, timelapse, the
 * simulated camera) started, used and stopped 50 times in one process: nothing any part opened may
 * outlive it. Handles and listeners must match exactly. Memory first grows while V8 warms up (code
 * and type feedback for paths the first cycle did not take, the allocator's arenas) and then levels
 * off, where a leak would keep growing: the second half of the run may add at most 5 % (live heap
 * and RSS), and the whole run at most 25 % of RSS (the goal is 5 %; the figure is printed).
 */
test('50 start/stop cycles of a node leave no handle, listener or memory behind', { timeout: 240_000 }, async () => {
  const cycle = async (): Promise<void> => {
    const node = await startTestNode({ timelapse_interval_s: 3600 });
    assert.ok(node.node.parts().includes('mqtt'));
    // One capture per cycle so the capture path (camera app, store, events) runs too.
    const capture = await node.node.commands.capture({}, { source: 'http' });
    assert.equal(capture.status, 'success');
    await node.stop();
    assert.deepEqual(node.node.parts(), []);
  };
  await cycle();
  const first = resources();
  const rss: number[] = [rssAfterGc()];
  const heap: number[] = [process.memoryUsage().heapUsed];
  for (let i = 2; i <= 50; i += 1) {
    await cycle();
    // A collection every cycle keeps the heap at its live size, so RSS follows what is retained
    // rather than how far V8 let the heap grow before collecting.
    const now = rssAfterGc();
    if (i === 25 || i === 50) {
      rss.push(now);
      heap.push(process.memoryUsage().heapUsed);
    }
  }
  const last = resources();
  const [after1 = 0, after25 = 0, after50 = 0] = rss;
  const [heap1 = 0, heap25 = 0, heap50 = 0] = heap;
  const mb = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);
  process.stdout.write(
    `# RSS after 50 cycles ÷ after 1: ${(after50 / after1).toFixed(3)} (${mb(after1)}, ${mb(after25)}, ${mb(after50)} MB after 1, 25, 50); live heap ${(heap50 / heap1).toFixed(3)} (${mb(heap1)}, ${mb(heap25)}, ${mb(heap50)} MB)\n`,
  );
  assert.deepEqual(last.handles, first.handles, 'active handles after 50 cycles equal those after 1');
  assert.deepEqual(last.listeners, first.listeners, 'process listeners after 50 cycles equal those after 1');
  // What a part retains shows in the live heap after a collection; RSS also moves with the allocator
  // and the JIT on a loaded machine, so it gets more room.
  assert.ok(heap50 / heap25 <= 1.05, `live heap still growing: ${mb(heap25)} → ${mb(heap50)} MB from cycle 25 to 50`);
  assert.ok(after50 / after25 <= 1.05, `RSS still growing: ${mb(after25)} → ${mb(after50)} MB from cycle 25 to 50`);
  assert.ok(after50 / after1 <= 1.25, `RSS grew ${(after50 / after1).toFixed(3)}× over 49 more cycles`);
});

test('a start that fails half-way stops exactly the parts that started, and leaves nothing open', async () => {
  // The HTTP port is taken, so the node fails after the logger, store, telemetry, clock, camera and
  // metrics have started, and before MQTT.
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const port = (blocker.address() as { port: number }).port;
  const dir = await mkdtemp(join(tmpdir(), 'camera-node-test-'));
  try {
    const before = resources();
    const config = {
      ...(await loadConfig({ argv: [], env: {} })),
      node_id: 'half-started',
      host: '127.0.0.1',
      port,
      capture_dir: join(dir, 'images'),
      log_dir: join(dir, 'logs'),
      camera_backend: 'simulated' as const,
      mqtt_port: 0,
      min_free_disk_mb: 0,
      camera_check_interval_s: 0,
    };
    const node = createNode(config, { cameraEnv: FAST_CAMERA });
    await assert.rejects(node.start(), /EADDRINUSE/);
    assert.deepEqual(node.parts(), [], 'every started part was stopped');
    await node.stop(); // safe after a failed start
    assert.deepEqual(resources(), before);
  } finally {
    await new Promise((resolve) => blocker.close(resolve));
    await rm(dir, { recursive: true, force: true });
  }
});

test('the status carries each part’s block, typed by the part registry', async (t) => {
  const node = await startTestNode();
  t.after(() => node.stop());
  const status = node.node.commands.status();
  assert.equal(status.mqtt?.embedded, true);
  assert.equal(typeof status.clock?.synchronized === 'boolean' || status.clock?.synchronized === null, true);
  assert.deepEqual(Object.keys(status.delivery ?? {}), ['mqtt']);
  assert.equal(status.schedule?.pending, 0);
  assert.deepEqual(node.node.parts(), [
    'logger',
    'store',
    'telemetry',
    'clock',
    'camera',
    'outbox',
    'metrics',
    'web page',
    'http',
    'embedded broker',
    'mqtt',
    'home assistant',
    'mqtt delivery',
  ]);
});
