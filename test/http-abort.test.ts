import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestNode } from './helpers/node.js';

/** Resolves once `check` holds, reading it at every status change (never a fixed sleep). */
async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

test('a queued capture whose HTTP client disconnected before it started is dropped, not taken', async () => {
  const t = await startTestNode({ mqtt_enabled: false }, { cameraEnv: { CAMERA_SIM_CAPTURE_MS: '600' } });
  try {
    const queueSize = () => t.node.commands.status().camera.queue;
    const first = fetch(`${t.httpUrl}/capture`, { method: 'POST' });
    await until('the first capture running', () => queueSize() === 1);
    const gone = new AbortController();
    const second = fetch(`${t.httpUrl}/capture`, { method: 'POST', signal: gone.signal });
    await until('the second capture queued', () => queueSize() === 2);
    gone.abort();
    await assert.rejects(second);
    await until('the dropped capture out of the queue', () => queueSize() <= 1);
    assert.equal((await first).status, 200);
    await until('the camera idle', () => queueSize() === 0);
    assert.equal(t.node.commands.list().count, 1, 'one image: the disconnected client’s capture never ran');
    const { captures } = t.node.commands.status();
    assert.equal(captures.failed, 0, 'a dropped capture is not a failure');
  } finally {
    await t.stop();
  }
});
