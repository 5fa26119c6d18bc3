import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { raspberryPiModel } from '../src/camera/backend.js';
import { createBootClock } from '../src/camera/boottime.js';
import { createCamera } from '../src/camera/camera.js';
import { createWarmCamera } from '../src/camera/warm.js';
import { checkDng } from '../src/camera/warm-dng.js';
import type { CaptureResult } from '../src/commands/types.js';
import { NodeError } from '../src/errors.js';
import { preciseNow } from '../src/schedule/clock.js';
import { FAST_CAMERA, startTestNode } from './helpers/node.js';
import { SIMULATED_WARM } from './helpers/warm.js';

const silent = pino({ level: 'silent' });
const PI_MODEL = 'Raspberry Pi Zero 2 W Rev 1.0';

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'camera-node-exposure-'));
});
after(() => rm(dir, { recursive: true, force: true }));

/** /proc/uptime as CLOCK_BOOTTIME ns (truncated to its 10 ms). */
const uptimeNs = (): bigint => {
  const [seconds = '0', hundredths = '0'] = (readFileSync('/proc/uptime', 'latin1').split(' ')[0] ?? '0.00').split('.');
  return (BigInt(seconds) * 100n + BigInt(hundredths)) * 10_000_000n;
};

describe('the boot clock (CLOCK_BOOTTIME from CLOCK_MONOTONIC and /proc/uptime)', () => {
  test('agrees with /proc/uptime within its 10 ms truncation (and its coarse clock’s lag)', {
    skip: process.platform === 'linux' ? false : 'Linux only',
  }, () => {
    const boot = createBootClock();
    for (let i = 0; i < 20; i++) {
      const low = uptimeNs();
      const now = boot.nowNs();
      const high = uptimeNs() + 10_000_000n;
      assert.ok(now >= low - 1_000_000n && now <= high + 15_000_000n, `${now} within [${low}, ${high}]`);
    }
  });

  test('never suspended, CLOCK_BOOTTIME is CLOCK_MONOTONIC exactly: two clocks agree to the ns', () => {
    const [a, b] = [createBootClock(), createBootClock()];
    assert.equal(a.fromMonotonicNs(123_456_789n), b.fromMonotonicNs(123_456_789n));
  });

  test('converts a boot instant to the wall clock: now is now, a second ago is a second ago', () => {
    const boot = createBootClock();
    const wall = preciseNow();
    const at = boot.toEpochMs(boot.nowNs());
    assert.ok(Math.abs(at - wall) < 50, `${at - wall} ms off`);
    const earlier = boot.toEpochMs(boot.nowNs() - 1_000_000_000n);
    assert.ok(Math.abs(preciseNow() - 1000 - earlier) < 50);
  });

  test('an uptime file that jumps (a suspend) recalibrates the offset', async () => {
    const path = join(dir, 'uptime');
    await writeFile(path, '100.00 50.00\n');
    const boot = createBootClock({ uptimePath: path });
    const before = boot.nowNs();
    // The file never ticks: the clock runs on from its value (the calibration watched it for a few ticks).
    assert.ok(before >= 100_000_000_000n && before <= 100_200_000_000n, String(before));
    await writeFile(path, '3700.00 50.00\n'); // an hour asleep
    const after = boot.nowNs();
    assert.ok(after >= 3_700_000_000_000n && after <= 3_700_200_000_000n, String(after));
  });
});

describe('no silent simulator on a Raspberry Pi', () => {
  let modelPath = '';
  before(async () => {
    modelPath = join(dir, 'model');
    await writeFile(modelPath, `${PI_MODEL}\0`);
  });

  test('the device-tree model says whether this is a Pi', async () => {
    assert.equal(await raspberryPiModel(modelPath), PI_MODEL);
    assert.equal(await raspberryPiModel(join(dir, 'absent')), null);
    await writeFile(join(dir, 'other'), 'Radxa ROCK 3A\0');
    assert.equal(await raspberryPiModel(join(dir, 'other')), null);
  });

  const options = (deviceModelPath: string) => ({
    backend: 'auto' as const,
    captureTimeoutMs: 10_000,
    immediate: true,
    cameraIndex: 0,
    probeIntervalMs: 0,
    env: FAST_CAMERA,
    logger: silent,
    searchPath: '/nonexistent',
    deviceModelPath,
  });

  for (const mode of ['cold', 'warm'] as const) {
    test(`${mode}: auto without a camera app on a Pi starts degraded, says what is missing, captures nothing`, async () => {
      const camera =
        mode === 'cold' ? createCamera(options(modelPath)) : createWarmCamera({ ...options(modelPath), warmDir: join(dir, 'pi-warm') });
      await camera.start();
      try {
        const info = camera.info();
        assert.equal(info.connected, false);
        assert.equal(info.simulated, false);
        assert.match(info.last_error ?? '', /no camera app found on this Raspberry Pi Zero 2 W.*rpicam-still.*libcamera-still/);
        await assert.rejects(
          camera.capture({ outputBase: join(dir, `pi-${mode}`), settings: {} }),
          (err: unknown) => err instanceof NodeError && err.code === 'camera_unavailable' && /no camera app found/.test(err.message),
        );
      } finally {
        await camera.stop();
      }
    });
  }

  test('off a Pi, auto without a camera app runs the simulator, and says so', async () => {
    const camera = createCamera(options(join(dir, 'absent')));
    await camera.start();
    try {
      assert.equal(camera.info().simulated, true);
      assert.equal(camera.info().connected, true);
    } finally {
      await camera.stop();
    }
  });
});

describe('every capture carries its exposure start', () => {
  const cases = [
    { name: 'cold', config: { camera_mode: 'cold' as const } },
    { name: 'warm', config: { camera_mode: 'warm' as const } },
    { name: 'warm with ZSL', config: { camera_mode: 'warm' as const, camera_zsl: true } },
  ];
  for (const { name, config } of cases) {
    test(`${name}: exposure_started_at after the trigger and before the reply; exposure_late_ms when scheduled`, async () => {
      const node = await startTestNode({ ...config, mqtt_enabled: false });
      try {
        const plain = (await node.node.commands.capture({}, { source: 'cli' })) as CaptureResult;
        const replied = Date.now();
        assert.ok(plain.exposure_started_at, 'an exposure start');
        const exposure = Date.parse(plain.exposure_started_at);
        // Both ISO strings truncate to the ms, and the node and the app each calibrate their boot clock.
        assert.ok(
          exposure >= Date.parse(plain.triggered_at) - 2,
          `exposure ${plain.exposure_started_at} after trigger ${plain.triggered_at}`,
        );
        assert.ok(exposure <= replied, 'exposure before the reply');
        assert.equal(typeof plain.file_info.metadata?.['SensorTimestamp'], 'number', 'the raw SensorTimestamp stays in the metadata');
        assert.equal(plain.exposure_late_ms, undefined);

        const at = Date.now() + 300;
        const scheduled = (await node.node.commands.capture({ at }, { source: 'cli' })) as CaptureResult;
        assert.ok(scheduled.exposure_started_at);
        assert.equal(typeof scheduled.exposure_late_ms, 'number');
        const late = Date.parse(scheduled.exposure_started_at) - at;
        assert.ok(Math.abs((scheduled.exposure_late_ms ?? 0) - late) <= 1, 'exposure_late_ms = exposure start − at');
        assert.ok((scheduled.exposure_late_ms ?? 0) >= (scheduled.late_ms ?? 0) - 2, 'the exposure comes after the trigger');

        const burst = (await node.node.commands.capture({ count: 2, interval_ms: 200 }, { source: 'cli' })) as CaptureResult;
        assert.equal(burst.frames?.length, 2);
        for (const frame of burst.frames ?? []) {
          assert.equal(typeof frame.exposure_started_at, 'string', `burst frame ${frame.index}`);
          // The first frame fires at once and sets the instants of the others.
          if (frame.scheduled_at) assert.equal(typeof frame.exposure_late_ms, 'number', `burst frame ${frame.index}`);
        }
      } finally {
        await node.stop();
      }
    });
  }
});

describe('a mono sensor in warm mode', () => {
  for (const libtiff of ['4.5', '4.7'] as const) {
    test(`libtiff ${libtiff}: each frame is taken only once the app has finished its DNG`, async () => {
      const outDir = join(dir, `mono-${libtiff}`);
      await mkdir(outDir, { recursive: true });
      const camera = createWarmCamera({
        ...SIMULATED_WARM,
        // Slow enough (2 MB at 4 MB/s) that the metadata comes after the app's grace for it: only the
        // structure can tell a finished mono DNG from one whose IFD0 is all there is yet.
        env: { ...FAST_CAMERA, CAMERA_SIM_SENSOR: 'ov9281', CAMERA_SIM_WRITE_MBPS: '4', CAMERA_SIM_LIBTIFF: libtiff },
        logger: silent,
        warmDir: join(outDir, '.warm'),
      });
      await camera.start();
      try {
        for (let i = 0; i < 3; i++) {
          const output = await camera.capture({ outputBase: join(outDir, `frame-${i}`), settings: {} });
          const check = await checkDng(output.dngPath);
          assert.ok(check.complete, `frame ${i} complete`);
          assert.ok(check.size > 1280 * 800 * 2, 'the whole raw image');
          assert.ok(output.metadata, 'taken with its metadata, written after the DNG was closed');
          assert.equal(typeof output.exposureStartedAt, 'number');
        }
      } finally {
        await camera.stop();
      }
    });
  }
});
