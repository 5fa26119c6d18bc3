import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { pino, type Logger } from 'pino';
import { findOnPath } from '../src/camera/backend.js';
import { NodeError } from '../src/errors.js';
import { createWarmCamera, type WarmCameraOptions } from '../src/camera/warm.js';
import { warmAppArgs } from '../src/camera/warm-app.js';
import { checkDng } from '../src/camera/warm-dng.js';
import type { Camera } from '../src/camera/types.js';
import { FAST_CAMERA, startTestNode } from './helpers/node.js';
import { processesWithArgument, SIMULATED_WARM } from './helpers/warm.js';

const SIMULATOR = fileURLToPath(new URL('../src/simulator/main.js', import.meta.url));

function memoryLogger(): { logger: Logger; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void records.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, records };
}

async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const dcraw = await findOnPath('dcraw');
const noProc = existsSync('/proc') ? false : 'needs /proc (Linux) to see the camera app process';

describe('warm camera with the simulator in signal mode', { skip: noProc }, () => {
  let dir = '';
  let cameras: Camera[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'camera-node-warm-'));
  });
  after(async () => {
    await Promise.all(cameras.map((camera) => camera.stop()));
    await rm(dir, { recursive: true, force: true });
  });

  async function startCamera(
    name: string,
    extra: Partial<WarmCameraOptions> = {},
  ): Promise<{ camera: Camera; warmDir: string; outDir: string; records: Array<Record<string, unknown>> }> {
    const { logger, records } = memoryLogger();
    const warmDir = join(dir, name, '.warm');
    const outDir = join(dir, name, 'out');
    await mkdir(outDir, { recursive: true });
    const camera = createWarmCamera({
      ...SIMULATED_WARM,
      killGraceMs: 500,
      env: { ...FAST_CAMERA },
      logger,
      warmDir,
      ...extra,
    });
    cameras.push(camera);
    await camera.start();
    return { camera, warmDir, outDir, records };
  }

  test('several captures are served by one app process, each a complete DNG with its JPEG', async () => {
    const { camera, warmDir, outDir } = await startCamera('round-trip');
    assert.equal(camera.info().mode, 'warm');
    const before = await processesWithArgument(warmDir);
    assert.equal(before.length, 1, 'one warm app running after start');
    const outputs = [];
    for (let i = 0; i < 3; i++) {
      const output = await camera.capture({ outputBase: join(outDir, `shot${i}`), settings: {} });
      assert.equal(output.dngPath, join(outDir, `shot${i}.dng`));
      assert.equal((await checkDng(output.dngPath)).complete, true);
      assert.ok(output.jpegPath && (await stat(output.jpegPath)).size > 0, 'the JPEG with the thumbnail came along');
      assert.ok(output.completedAt >= output.triggeredAt);
      outputs.push(output);
    }
    assert.deepEqual(await processesWithArgument(warmDir), before, 'the same process served every capture');
    // Nothing is left behind in the warm dir but the pid file.
    assert.deepEqual(await readdir(warmDir), ['app.pid']);
  });

  test('a DNG written slowly (an SD card) is taken only once it is complete', async () => {
    const { camera, outDir } = await startCamera('slow-write', { env: { ...FAST_CAMERA, CAMERA_SIM_WRITE_MBPS: '1' } });
    const output = await camera.capture({ outputBase: join(outDir, 'slow'), settings: {} });
    const check = await checkDng(output.dngPath);
    assert.equal(check.complete, true);
    // 320×240 16-bit samples plus the thumbnail and headers: at 1 MB/s that took well over one poll.
    assert.ok(check.size > 320 * 240 * 2);
    assert.ok(output.metadata !== null, 'the metadata written after the DNG came along');
  });

  test('an app dying mid-DNG fails that capture (nothing half-written is kept) and the next one works', async () => {
    const control = join(dir, 'crash.control');
    const { camera, outDir } = await startCamera('crash', { env: { ...FAST_CAMERA, CAMERA_SIM_CONTROL: control } });
    await writeFile(control, 'crash');
    await assert.rejects(camera.capture({ outputBase: join(outDir, 'crashed'), settings: {} }), (err: unknown) => {
      assert.ok(err instanceof NodeError);
      assert.equal(err.code, 'camera_failed');
      assert.match(err.message, /exited/);
      return true;
    });
    assert.deepEqual(await readdir(outDir), []);
    await writeFile(control, 'none');
    const output = await camera.capture({ outputBase: join(outDir, 'after'), settings: {} });
    assert.equal((await checkDng(output.dngPath)).complete, true);
  });

  test('a capture that never completes times out, and the app is replaced', async () => {
    const control = join(dir, 'hang.control');
    const { camera, warmDir, outDir } = await startCamera('hang', {
      captureTimeoutMs: 1500,
      env: { ...FAST_CAMERA, CAMERA_SIM_CONTROL: control },
    });
    const [first] = await processesWithArgument(warmDir);
    await writeFile(control, 'hang');
    await assert.rejects(
      camera.capture({ outputBase: join(outDir, 'hung'), settings: {} }),
      (err: unknown) => err instanceof NodeError && err.code === 'camera_timeout',
    );
    await writeFile(control, 'none');
    const output = await camera.capture({ outputBase: join(outDir, 'after'), settings: {} });
    assert.equal((await checkDng(output.dngPath)).complete, true);
    assert.ok(!(await processesWithArgument(warmDir)).includes(first ?? -1), 'the hung app is gone');
  });

  test('dcraw identifies a frame taken warm', { skip: dcraw ? false : 'dcraw not installed' }, async () => {
    const { camera, outDir } = await startCamera('dcraw');
    const output = await camera.capture({ outputBase: join(outDir, 'frame'), settings: {} });
    const result = await execa(dcraw ?? 'dcraw', ['-i', output.dngPath], { reject: false });
    assert.equal(result.exitCode, 0, result.stderr);
    assert.match(result.stdout, /is a Raspberry Pi/);
  });

  test('an app that is killed is restarted, and the next capture works on the new one', async () => {
    const { camera, warmDir, outDir, records } = await startCamera('restart');
    const [first] = await processesWithArgument(warmDir);
    assert.ok(first);
    process.kill(first, 'SIGKILL');
    await waitFor('the app to exit', async () => !(await processesWithArgument(warmDir)).includes(first));
    const output = await camera.capture({ outputBase: join(outDir, 'after-kill'), settings: {} });
    assert.equal((await checkDng(output.dngPath)).complete, true);
    const now = await processesWithArgument(warmDir);
    assert.equal(now.length, 1);
    assert.notEqual(now[0], first);
    assert.equal(camera.info().mode, 'warm');
    assert.ok(
      records.some((r) => r['msg'] === 'warm camera app exited'),
      'the exit was logged',
    );
  });

  test('a capture with other settings restarts the app with them', async () => {
    const { camera, warmDir, outDir } = await startCamera('settings');
    const [first] = await processesWithArgument(warmDir);
    await camera.capture({ outputBase: join(outDir, 'a'), settings: { shutter_us: 20_000 } });
    const [second] = await processesWithArgument(warmDir);
    assert.notEqual(second, first);
    const cmdline = (await readFile(`/proc/${second}/cmdline`, 'utf8')).split('\0');
    assert.ok(cmdline.includes('--shutter=20000'), 'the new app got the setting');
    await camera.capture({ outputBase: join(outDir, 'b'), settings: { shutter_us: 20_000 } });
    assert.deepEqual(await processesWithArgument(warmDir), [second], 'same settings: same app');
  });

  test('an app that cannot run in signal mode makes the camera fall back to cold captures', async () => {
    const script = join(dir, 'no-signal-mode.sh');
    await writeFile(
      script,
      [
        '#!/bin/sh',
        'for arg in "$@"; do',
        '  if [ "$arg" = "--signal" ]; then echo "ERROR: *** failed to start camera: Device or resource busy ***" >&2; exit 255; fi',
        'done',
        `exec "${process.execPath}" "${SIMULATOR}" "$@"`,
        '',
      ].join('\n'),
    );
    await chmod(script, 0o755);
    const { camera, warmDir, outDir, records } = await startCamera('fallback', {
      backend: 'rpicam',
      command: script,
      maxRestarts: 1,
      retryWarmAfterMs: 0,
    });
    const output = await camera.capture({ outputBase: join(outDir, 'cold'), settings: {} });
    assert.equal((await checkDng(output.dngPath)).complete, true, 'the capture was taken cold');
    assert.equal(camera.info().mode, 'cold');
    assert.match(camera.info().last_error ?? '', /cold captures.*Device or resource busy/);
    assert.ok(
      records.some((r) => r['level'] === 50 && String(r['msg']).includes('falling back to cold')),
      'the fallback was logged as an error',
    );
    assert.deepEqual(await processesWithArgument(warmDir), []);
    // And it keeps working cold.
    const again = await camera.capture({ outputBase: join(outDir, 'cold2'), settings: {} });
    assert.equal((await checkDng(again.dngPath)).complete, true);
  });

  test('stop ends the app and removes its pid file', async () => {
    const { camera, warmDir } = await startCamera('stop');
    assert.equal((await processesWithArgument(warmDir)).length, 1);
    await camera.stop();
    cameras = cameras.filter((c) => c !== camera);
    assert.deepEqual(await processesWithArgument(warmDir), []);
    assert.equal(existsSync(join(warmDir, 'app.pid')), false);
  });

  test('an app left running by a crashed daemon is ended at the next start', async () => {
    // What a daemon killed with SIGKILL leaves behind: its app, still running, and the pid file.
    const warmDir = join(dir, 'stale', '.warm');
    await mkdir(warmDir, { recursive: true });
    const orphan = spawn(
      process.execPath,
      [SIMULATOR, ...warmAppArgs(warmDir, 1, { settings: {}, cameraIndex: 0, rawMode: null, zsl: false })],
      {
        env: { ...process.env, ...FAST_CAMERA },
        stdio: 'ignore',
      },
    );
    const gone = new Promise((resolve) => orphan.once('exit', resolve));
    try {
      await writeFile(join(warmDir, 'app.pid'), `${orphan.pid}\n`);
      await waitFor('the orphan to run', async () => (await processesWithArgument(warmDir)).includes(orphan.pid ?? -1));
      const { logger, records } = memoryLogger();
      const next = createWarmCamera({
        ...SIMULATED_WARM,
        killGraceMs: 500,
        env: { ...FAST_CAMERA },
        logger,
        warmDir,
      });
      cameras.push(next);
      await next.start();
      await gone;
      const running = await processesWithArgument(warmDir);
      assert.equal(running.length, 1);
      assert.notEqual(running[0], orphan.pid, 'the orphan is gone, a new app runs');
      assert.ok(records.some((r) => String(r['msg']).includes('left running by an earlier run')));
    } finally {
      orphan.kill('SIGKILL');
    }
  });
});

describe('a node in warm mode', { skip: noProc }, () => {
  test('captures over HTTP through the warm app and says so in its status', async () => {
    const node = await startTestNode({ camera_mode: 'warm' });
    try {
      const status = (await (await fetch(`${node.httpUrl}/status`)).json()) as { camera: { mode: string } };
      assert.equal(status.camera.mode, 'warm');
      const warmDir = join(node.config.capture_dir, '.warm');
      const [pid] = await processesWithArgument(warmDir);
      assert.ok(pid, 'a warm app runs');
      for (let i = 0; i < 2; i++) {
        const response = await fetch(`${node.httpUrl}/capture`, { method: 'POST' });
        assert.equal(response.status, 200);
        const body = (await response.json()) as { file_info: { filename: string; size: number }; triggered_at: string };
        assert.ok(body.file_info.size > 0);
        assert.ok(!Number.isNaN(Date.parse(body.triggered_at)));
      }
      assert.deepEqual(await processesWithArgument(warmDir), [pid]);
      const list = (await (await fetch(`${node.httpUrl}/images`)).json()) as unknown[];
      assert.equal(list.length, 2);
    } finally {
      await node.stop();
    }
  });
});
