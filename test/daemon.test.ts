import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnDaemon } from './helpers/daemon.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'camera-node-daemon-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const until = async (check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> => {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
};

test('SIGTERM during a capture aborts it cleanly and exits 0', async () => {
  await withDir(async (dir) => {
    const captureDir = join(dir, 'images');
    const daemon = await spawnDaemon({ CAPTURE_DIR: captureDir, LOG_DIR: join(dir, 'logs'), CAMERA_SIM_FAIL: 'slow-write' });
    const pending = fetch(`${daemon.httpUrl}/capture`, { method: 'POST' });
    // Wait until the camera process is writing into the temp dir, then stop the node.
    await until(async () => (await readdir(join(captureDir, '.tmp'))).length > 0);
    daemon.child.kill('SIGTERM');
    const response = await pending;
    assert.equal(response.status, 503);
    assert.equal(((await response.json()) as { code: string }).code, 'shutting_down');
    const { code } = await daemon.exited;
    assert.equal(code, 0);
    assert.deepEqual(await readdir(join(captureDir, '.tmp')), []);
    assert.deepEqual(
      (await readdir(captureDir)).filter((n) => !n.startsWith('.')),
      [],
    );
    assert.ok(daemon.records.some((r) => r['msg'] === 'camera-node stopped'));
  });
});

test('kill -9 mid-capture leaves nothing half-written visible after restart', async () => {
  await withDir(async (dir) => {
    const env = { CAPTURE_DIR: join(dir, 'images'), LOG_DIR: join(dir, 'logs') };
    const first = await spawnDaemon(env);
    const ok = await fetch(`${first.httpUrl}/capture`, { method: 'POST' });
    assert.equal(ok.status, 200);
    const kept = ((await ok.json()) as { file_info: { filename: string; size: number } }).file_info;
    first.child.kill('SIGKILL');
    await first.exited;

    const second = await spawnDaemon({ ...env, CAMERA_SIM_FAIL: 'slow-write' });
    void fetch(`${second.httpUrl}/capture`, { method: 'POST' }).catch(() => undefined);
    await until(async () => (await readdir(join(env.CAPTURE_DIR, '.tmp'))).length > 0);
    second.child.kill('SIGKILL');
    await second.exited;
    assert.ok((await readdir(join(env.CAPTURE_DIR, '.tmp'))).length > 0, 'the crash left temp files');

    const third = await spawnDaemon(env);
    try {
      assert.deepEqual(await readdir(join(env.CAPTURE_DIR, '.tmp')), [], 'leftovers cleaned at start');
      const listed = (await (await fetch(`${third.httpUrl}/images`)).json()) as Array<{ filename: string; size: number }>;
      assert.deepEqual(
        listed.map((i) => [i.filename, i.size]),
        [[kept.filename, kept.size]],
      );
      assert.equal((await stat(join(env.CAPTURE_DIR, kept.filename))).size, kept.size);
    } finally {
      third.child.kill('SIGTERM');
      assert.equal((await third.exited).code, 0);
    }
  });
});
