import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { startTestNode } from './helpers/node.js';

const images = async (dir: string): Promise<string[]> => (await readdir(dir)).filter((name) => name.endsWith('.dng'));

test('a timelapse captures on its interval through the normal capture path, then stops cleanly with the node', async () => {
  const node = await startTestNode({ mqtt_enabled: false, timelapse_interval_s: 0.4 });
  const sources: string[] = [];
  node.node.events.on('test', 'captured', (event) => void sources.push(event.image.filename));
  try {
    const deadline = Date.now() + 20_000;
    while ((await images(node.config.capture_dir)).length < 3) {
      if (Date.now() > deadline) throw new Error('the timelapse did not take 3 captures');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const status = (await (await fetch(`${node.httpUrl}/status`)).json()) as {
      schedule: { timelapse: { interval_s: number; captures: number; next_at: string | null } };
      captures: { total: number };
    };
    assert.equal(status.schedule.timelapse.interval_s, 0.4);
    assert.ok(status.schedule.timelapse.captures >= 3);
    assert.ok(status.captures.total >= 3, 'counted like any capture');
    assert.ok(status.schedule.timelapse.next_at !== null);
    // Ticks sit on the 400 ms grid since the epoch.
    assert.equal(Date.parse(status.schedule.timelapse.next_at ?? '') % 400, 0);
    assert.ok(sources.length >= 3, 'captured events went out (delivery listens to them)');
    await node.node.stop();
    const after = await images(node.config.capture_dir);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.deepEqual(await images(node.config.capture_dir), after, 'no capture after stop');
  } finally {
    await node.stop();
  }
});
