import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import fc from 'fast-check';
import { pino, type Logger } from 'pino';
import { ConfigError } from '../src/config/config.js';
import { NodeError } from '../src/errors.js';
import { appErrorMessage, describeAppFailure, isNoCameraError, lastErrorLine } from '../src/camera/app-output.js';
import { coldCaptureArgs, settingArgs, VIEWFINDER_MS } from '../src/camera/args.js';
import { CameraBackendError, findOnPath, resolveBackend } from '../src/camera/backend.js';
import { createCamera } from '../src/camera/camera.js';
import { parseListCameras, saysNoCameras } from '../src/camera/list-cameras.js';
import { dngBytesFor } from '../src/camera/state.js';
import type { Camera, CameraInfo, CameraOptions, CaptureSettings } from '../src/camera/types.js';

const SIMULATOR = fileURLToPath(new URL('../src/simulator/main.js', import.meta.url));

/** The simulator's knobs for fast tests: a tiny sensor and no artificial delays. */
const FAST_SIM: Record<string, string> = {
  CAMERA_SIM_SENSOR: 'tiny',
  CAMERA_SIM_START_MS: '0',
  CAMERA_SIM_CAPTURE_MS: '0',
  CAMERA_SIM_WRITE_MBPS: '0',
};

/** A pino logger whose records land in an array, to check what was logged. */
function memoryLogger(): { logger: Logger; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void records.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, records };
}

const isNodeError =
  (code: string, message?: RegExp) =>
  (err: unknown): boolean => {
    assert.ok(err instanceof NodeError, `expected a NodeError, got ${String(err)}`);
    assert.equal(err.code, code, `code (message: ${err.message})`);
    if (message) assert.match(err.message, message);
    return true;
  };

const exists = (path: string): boolean => existsSync(path);

/** Pids of live processes whose command line contains `text` (Linux /proc; empty elsewhere). */
async function processesMentioning(text: string): Promise<number[]> {
  if (!existsSync('/proc')) return [];
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if ((await readFile(`/proc/${entry}/cmdline`, 'utf8')).includes(text)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// --------------------------------------------------------------------------------------------
// --list-cameras parsing
// --------------------------------------------------------------------------------------------

const HQ_CAMERA = `Available cameras
-----------------
0 : imx477 [4056x3040 12-bit RGGB] (/base/soc/i2c0mux/i2c@1/imx477@1a)
    Modes: 'SRGGB10_CSI2P' : 1332x990 [120.05 fps - (696, 528)/2664x1980 crop]
           'SRGGB12_CSI2P' : 2028x1080 [50.03 fps - (0, 440)/4056x2160 crop]
                             2028x1520 [40.01 fps - (0, 0)/4056x3040 crop]
                             4056x3040 [10.00 fps - (0, 0)/4056x3040 crop]

`;

const TWO_CAMERAS = `Available cameras
-----------------
0 : imx708_wide [4608x2592 10-bit RGGB] (/base/axi/pcie@120000/rp1/i2c@88000/imx708@1a)
    Modes: 'SRGGB10_CSI2P' : 1536x864 [120.13 fps - (768, 432)/3072x1728 crop]
                             2304x1296 [56.03 fps - (0, 0)/4608x2592 crop]
                             4608x2592 [14.35 fps - (0, 0)/4608x2592 crop]

1 : imx708_wide_noir [4608x2592 10-bit RGGB] (/base/axi/pcie@120000/rp1/i2c@80000/imx708@1a)
    Modes: 'SRGGB10_CSI2P' : 1536x864 [120.13 fps - (768, 432)/3072x1728 crop]
                             4608x2592 [14.35 fps - (0, 0)/4608x2592 crop]

`;

describe('parseListCameras', () => {
  test('no camera', () => {
    assert.deepEqual(parseListCameras('No cameras available!\n'), []);
    assert.equal(saysNoCameras('No cameras available!\n'), true);
    assert.equal(saysNoCameras(HQ_CAMERA), false);
  });

  test('one camera, ignoring the header and the Modes block', () => {
    assert.deepEqual(parseListCameras(HQ_CAMERA), [
      { index: 0, sensor: 'imx477', width: 4056, height: 3040, bit_depth: 12, cfa: 'RGGB', id: '/base/soc/i2c0mux/i2c@1/imx477@1a' },
    ]);
  });

  test('two cameras with wide and noir variants', () => {
    const cameras = parseListCameras(TWO_CAMERAS);
    assert.deepEqual(
      cameras.map((camera) => [camera.index, camera.sensor, camera.width, camera.height, camera.bit_depth, camera.cfa]),
      [
        [0, 'imx708_wide', 4608, 2592, 10, 'RGGB'],
        [1, 'imx708_wide_noir', 4608, 2592, 10, 'RGGB'],
      ],
    );
    assert.equal(cameras[1]?.id, '/base/axi/pcie@120000/rp1/i2c@80000/imx708@1a');
  });

  test('extra whitespace, CRLF, and brackets with parts missing', () => {
    const text = [
      'Available cameras\r',
      '-----------------\r',
      '  0   :   ov5647   [ 2592x1944   10-bit  GBRG ]   ( /base/soc/i2c0mux/i2c@1/ov5647@36 )  \r',
      '2 : imx296 [1456x1088] (/base/soc/i2c0mux/i2c@0/imx296@1a)\r',
      '3 : imx296 [1456x1088 10-bit MONO] (/base/soc/i2c0mux/i2c@1/imx296@1a)\r',
      '4 : HD Pro Webcam C920 [1920x1080] (/base/scb/pcie@7d500000/pci@0,0/usb@0,0-1.3:1.0-046d:082d)\r',
      '',
    ].join('\n');
    assert.deepEqual(parseListCameras(text), [
      { index: 0, sensor: 'ov5647', width: 2592, height: 1944, bit_depth: 10, cfa: 'GBRG', id: '/base/soc/i2c0mux/i2c@1/ov5647@36' },
      { index: 2, sensor: 'imx296', width: 1456, height: 1088, bit_depth: 0, cfa: '', id: '/base/soc/i2c0mux/i2c@0/imx296@1a' },
      { index: 3, sensor: 'imx296', width: 1456, height: 1088, bit_depth: 10, cfa: 'MONO', id: '/base/soc/i2c0mux/i2c@1/imx296@1a' },
      {
        index: 4,
        sensor: 'HD Pro Webcam C920',
        width: 1920,
        height: 1080,
        bit_depth: 0,
        cfa: '',
        id: '/base/scb/pcie@7d500000/pci@0,0/usb@0,0-1.3:1.0-046d:082d',
      },
    ]);
  });

  test('junk gives no cameras', () => {
    for (const junk of [
      '',
      '\n\n',
      'hello world',
      'ERROR: *** failed to acquire camera ***',
      '0 imx477 [4056x3040]',
      "    Modes: 'SRGGB10_CSI2P' : 1332x990 [120.05 fps - (696, 528)/2664x1980 crop]",
      '4056x3040 [10.00 fps - (0, 0)/4056x3040 crop]',
    ]) {
      assert.deepEqual(parseListCameras(junk), [], JSON.stringify(junk));
      assert.equal(saysNoCameras(junk), false);
    }
  });
});

// --------------------------------------------------------------------------------------------
// Arguments
// --------------------------------------------------------------------------------------------

/** Every token that starts with `-` must be an option name (with an `=value` attached at most). */
function assertNoValueReadsAsOption(args: readonly string[]): void {
  for (const arg of args) {
    if (arg.startsWith('-')) assert.match(arg, /^(-[a-z]|--[a-z][a-z-]*)(=.+)?$/, `stray option-like token ${arg}`);
  }
}

describe('capture arguments', () => {
  const base = '/tmp/store/.tmp/abc';

  test('a quick raw capture: no preview, raw, output, thumbnail, metadata, camera', () => {
    const args = coldCaptureArgs({ outputBase: base, settings: {}, immediate: true, cameraIndex: 1 });
    assert.deepEqual(args, [
      '-n',
      '--immediate',
      '-r',
      '-o',
      `${base}.jpg`,
      '--thumb',
      '320:240:70',
      '--metadata',
      `${base}.json`,
      '--camera',
      '1',
    ]);
  });

  test('immediate comes from the settings, else the node default; otherwise a short viewfinder', () => {
    const viewfinder = coldCaptureArgs({ outputBase: base, settings: {}, immediate: false, cameraIndex: 0 });
    assert.ok(!viewfinder.includes('--immediate'));
    assert.deepEqual(viewfinder.slice(viewfinder.indexOf('-t'), viewfinder.indexOf('-t') + 2), ['-t', String(VIEWFINDER_MS)]);
    assert.ok(
      coldCaptureArgs({ outputBase: base, settings: { immediate: true }, immediate: false, cameraIndex: 0 }).includes('--immediate'),
    );
    const overridden = coldCaptureArgs({ outputBase: base, settings: { immediate: false }, immediate: true, cameraIndex: 0 });
    assert.ok(!overridden.includes('--immediate') && overridden.includes('-t'));
  });

  test('every setting maps to its option', () => {
    const settings: CaptureSettings = {
      shutter_us: 20000,
      gain: 2.5,
      ev: 0.5,
      awb: 'daylight',
      denoise: 'cdn_hq',
      hflip: true,
      vflip: true,
    };
    assert.deepEqual(settingArgs(settings), [
      '--shutter=20000',
      '--gain=2.5',
      '--ev=0.5',
      '--awb=daylight',
      '--denoise=cdn_hq',
      '--hflip',
      '--vflip',
    ]);
    assert.deepEqual(settingArgs({ hflip: false, vflip: false }), []);
    assert.deepEqual(settingArgs({ shutter_us: 1234.6 }), ['--shutter=1235']);
  });

  test('a negative ev is attached with = so it cannot be read as an option', () => {
    assert.deepEqual(settingArgs({ ev: -1 }), ['--ev=-1']);
    assert.deepEqual(settingArgs({ ev: -0.25 }), ['--ev=-0.25']);
  });

  test('no value can be read as an option, whatever the numbers', () => {
    fc.assert(
      fc.property(
        fc.record(
          {
            shutter_us: fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e12, max: 1e12 }),
            gain: fc.double({ noNaN: true, noDefaultInfinity: true }),
            ev: fc.double({ noNaN: true, noDefaultInfinity: true }),
            awb: fc.constantFrom('auto', 'incandescent', 'tungsten', 'fluorescent', 'indoor', 'daylight', 'cloudy' as const),
            denoise: fc.constantFrom('auto', 'off', 'cdn_off', 'cdn_fast', 'cdn_hq' as const),
            hflip: fc.boolean(),
            vflip: fc.boolean(),
            immediate: fc.boolean(),
          },
          { requiredKeys: [] },
        ),
        fc.nat(8),
        (settings, cameraIndex) => {
          assertNoValueReadsAsOption(
            coldCaptureArgs({ outputBase: base, settings: settings as CaptureSettings, immediate: false, cameraIndex }),
          );
        },
      ),
    );
  });

  test('a % in the output path is escaped for the app’s printf', () => {
    const args = coldCaptureArgs({ outputBase: '/tmp/100%d/x', settings: {}, immediate: true, cameraIndex: 0 });
    assert.equal(args[args.indexOf('-o') + 1], '/tmp/100%%d/x.jpg');
    assert.equal(args[args.indexOf('--metadata') + 1], '/tmp/100%d/x.json', 'the metadata path is not a format');
  });

  test('values that validation should have stopped are refused rather than passed', () => {
    assert.throws(() => settingArgs({ gain: Number.NaN }), TypeError);
    assert.throws(() => settingArgs({ ev: Number.POSITIVE_INFINITY }), TypeError);
    assert.throws(() => settingArgs({ awb: '--help' as CaptureSettings['awb'] }), TypeError);
    assert.throws(() => settingArgs({ denoise: 'max' as CaptureSettings['denoise'] }), TypeError);
    assert.throws(() => coldCaptureArgs({ outputBase: base, settings: {}, immediate: true, cameraIndex: -1 }), TypeError);
  });
});

// --------------------------------------------------------------------------------------------
// stderr, sizes, backend
// --------------------------------------------------------------------------------------------

describe('camera app output', () => {
  test('the app’s error line is found among libcamera chatter', () => {
    const stderr = [
      '[0:01:02.123] [1234]  INFO Camera camera_manager.cpp:284 libcamera v0.1.0',
      'ERROR: *** no cameras available ***',
      '',
    ].join('\n');
    assert.equal(appErrorMessage(stderr), 'no cameras available');
    assert.equal(isNoCameraError(lastErrorLine(stderr)), true);
    assert.equal(lastErrorLine('line one\nsomething went wrong\n\n'), 'something went wrong');
    assert.equal(lastErrorLine(''), null);
    assert.equal(describeAppFailure({ exitCode: 255, stderr: '' }), 'exited with status 255');
    assert.equal(describeAppFailure({ signal: 'SIGSEGV', stderr: ' \n' }), 'killed by SIGSEGV');
  });

  test('DNG size estimate: about 24.8 MB for the HQ camera', () => {
    assert.equal(dngBytesFor(4056, 3040), 4056 * 3040 * 2 + 253 * 190 * 3 + 65536);
    assert.ok(Math.abs(dngBytesFor(4056, 3040) - 24.8e6) < 0.2e6);
  });
});

describe('backend resolution', () => {
  let dir: string;
  let script: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'camera-backend-test-'));
    for (const sub of ['both', 'old', 'none', 'dirs']) await mkdir(join(dir, sub));
    for (const [sub, name, mode] of [
      ['both', 'rpicam-still', 0o755],
      ['both', 'libcamera-still', 0o755],
      ['old', 'libcamera-still', 0o755],
      ['none', 'rpicam-still', 0o644],
    ] as const) {
      await writeFile(join(dir, sub, name), '#!/bin/sh\nexit 0\n');
      await chmod(join(dir, sub, name), mode);
    }
    await mkdir(join(dir, 'dirs', 'rpicam-still'));
    script = join(dir, 'simulator.js');
    await writeFile(script, '');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('findOnPath finds executable files only, and skips relative PATH entries', async () => {
    assert.equal(
      await findOnPath('rpicam-still', [join(dir, 'none'), join(dir, 'dirs'), join(dir, 'both')].join(':')),
      join(dir, 'both', 'rpicam-still'),
    );
    assert.equal(await findOnPath('rpicam-still', [join(dir, 'none'), join(dir, 'dirs')].join(':')), null);
    assert.equal(await findOnPath('rpicam-still', ['', '.', 'both'].join(':')), null);
  });

  test('auto prefers rpicam-still, then libcamera-still, then the simulator (said once at info)', async () => {
    const { logger, records } = memoryLogger();
    const both = await resolveBackend('auto', { searchPath: join(dir, 'both'), simulatorScript: script, logger });
    assert.deepEqual([both.backend, both.file, both.simulated], ['rpicam', join(dir, 'both', 'rpicam-still'), false]);
    const old = await resolveBackend('auto', { searchPath: join(dir, 'old'), simulatorScript: script, logger });
    assert.deepEqual([old.backend, old.file], ['libcamera', join(dir, 'old', 'libcamera-still')]);
    const none = await resolveBackend('auto', { searchPath: join(dir, 'none'), simulatorScript: script, logger });
    assert.deepEqual([none.backend, none.file, none.prefixArgs, none.simulated], ['simulated', process.execPath, [script], true]);
    const notes = records.filter((record) => record.msg === 'no camera app found, using the simulator');
    assert.equal(notes.length, 1);
    assert.equal(notes[0]?.level, 30);
  });

  test('an explicit backend must be installed', async () => {
    const { logger } = memoryLogger();
    await assert.rejects(
      resolveBackend('rpicam', { searchPath: join(dir, 'old'), logger }),
      (err: unknown) => err instanceof CameraBackendError && err instanceof ConfigError,
    );
    const old = await resolveBackend('libcamera', { searchPath: join(dir, 'old'), logger });
    assert.equal(old.backend, 'libcamera');
    await assert.rejects(resolveBackend('simulated', { simulatorScript: join(dir, 'missing.js'), logger }), CameraBackendError);
  });

  test('a command override must be an absolute executable', async () => {
    const { logger } = memoryLogger();
    const custom = await resolveBackend('auto', { command: join(dir, 'old', 'libcamera-still'), searchPath: '', logger });
    assert.deepEqual([custom.backend, custom.file], ['libcamera', join(dir, 'old', 'libcamera-still')]);
    await assert.rejects(resolveBackend('auto', { command: 'rpicam-still', logger }), /absolute/);
    await assert.rejects(resolveBackend('auto', { command: join(dir, 'none', 'rpicam-still'), logger }), /not an executable/);
  });
});

// --------------------------------------------------------------------------------------------
// The camera against a scripted app (the CAMERA_COMMAND path: a real, non-simulated backend)
// --------------------------------------------------------------------------------------------

describe('camera with a command override', () => {
  let dir: string;
  let app: string;
  const cameras: Camera[] = [];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'camera-command-test-'));
    app = join(dir, 'rpicam-still');
    // Lists two cameras; any capture fails the way the real app does without a camera.
    await writeFile(
      app,
      [
        '#!/bin/sh',
        'if [ "$1" = "--list-cameras" ]; then',
        "cat <<'EOF'",
        TWO_CAMERAS.trimEnd(),
        'EOF',
        'exit 0',
        'fi',
        'echo "[0:00:01] INFO chatter" >&2',
        'echo "ERROR: *** no cameras available ***" >&2',
        'exit 255',
        '',
      ].join('\n'),
    );
    await chmod(app, 0o755);
  });
  after(async () => {
    await Promise.all(cameras.map((camera) => camera.stop()));
    await rm(dir, { recursive: true, force: true });
  });

  function make(overrides: Partial<CameraOptions> = {}): Camera {
    const camera = createCamera({
      backend: 'auto',
      command: app,
      captureTimeoutMs: 5000,
      immediate: true,
      cameraIndex: 1,
      probeIntervalMs: 0,
      logger: memoryLogger().logger,
      ...overrides,
    });
    cameras.push(camera);
    return camera;
  }

  test('probe selects the configured camera index', async () => {
    const camera = make();
    await camera.start();
    const info = camera.info();
    assert.deepEqual(
      [info.backend, info.command, info.simulated, info.connected, info.sensor, info.cameras.length, info.mode],
      ['rpicam', app, false, true, 'imx708_wide_noir', 2, 'cold'],
    );
    assert.equal(info.last_error, null);
    assert.equal(camera.expectedDngBytes(), dngBytesFor(4608, 2592));
  });

  test('a missing camera index is not connected', async () => {
    const camera = make({ cameraIndex: 5 });
    await camera.start();
    assert.equal(camera.info().connected, false);
    assert.match(camera.info().last_error ?? '', /camera 5 not found/);
  });

  test('exit 255 with "no cameras available" is camera_unavailable, marks disconnected and re-checks', async () => {
    const { logger, records } = memoryLogger();
    const camera = make({ logger });
    await camera.start();
    const changes: CameraInfo[] = [];
    camera.onChange((info) => changes.push(info));
    const base = join(dir, 'shot');
    await writeFile(`${base}.json`, 'left over by the app');
    await assert.rejects(camera.capture({ outputBase: base, settings: {} }), isNodeError('camera_unavailable'));
    assert.equal(camera.info().connected, false);
    assert.equal(changes[0]?.connected, false);
    assert.equal(exists(`${base}.json`), false, 'the files it was asked to write are removed');
    const logged = records.find((record) => record.msg === 'capture failed');
    assert.equal(logged?.exit_code, 255);
    assert.match(String(logged?.stderr), /no cameras available/);
    // The re-check after the failure finds the camera listed again.
    await waitFor('the re-check', () => camera.info().connected);
    assert.equal(changes.at(-1)?.connected, true);
  });

  test('an output path the app would truncate is refused before running it', async () => {
    const camera = make();
    await camera.start();
    await assert.rejects(
      camera.capture({ outputBase: join(dir, 'x'.repeat(130)), settings: {} }),
      isNodeError('camera_failed', /too long/),
    );
  });

  test('a listener that throws is logged and does not stop the others', async () => {
    const { logger, records } = memoryLogger();
    const camera = make({ logger, cameraIndex: 7 });
    const heard: boolean[] = [];
    camera.onChange(() => {
      throw new Error('listener bug');
    });
    const unsubscribe = camera.onChange((info) => heard.push(info.connected));
    await camera.start();
    assert.deepEqual(heard, [false]);
    assert.ok(records.some((record) => record.msg === 'camera change listener failed'));
    unsubscribe();
  });
});

// --------------------------------------------------------------------------------------------
// The camera against the simulator process
// --------------------------------------------------------------------------------------------

describe('camera with the simulator', () => {
  let dir: string;
  let counter = 0;
  const cameras: Camera[] = [];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'camera-sim-test-'));
  });
  after(async () => {
    await Promise.all(cameras.map((camera) => camera.stop()));
    await rm(dir, { recursive: true, force: true });
  });

  const nextBase = (): string => join(dir, `capture-${process.pid}-${++counter}`);

  function make(
    env: Record<string, string> = {},
    overrides: Partial<CameraOptions> = {},
  ): { camera: Camera; records: Array<Record<string, unknown>>; env: Record<string, string> } {
    const { logger, records } = memoryLogger();
    const fullEnv = { ...FAST_SIM, ...env };
    const camera = createCamera({
      backend: 'simulated',
      captureTimeoutMs: 10_000,
      immediate: true,
      cameraIndex: 0,
      probeIntervalMs: 0,
      killGraceMs: 300,
      env: fullEnv,
      logger,
      ...overrides,
    });
    cameras.push(camera);
    return { camera, records, env: fullEnv };
  }

  function assertNoOutputs(base: string): void {
    for (const ext of ['jpg', 'dng', 'json']) assert.equal(exists(`${base}.${ext}`), false, `${base}.${ext} removed`);
  }

  test('start and probe report the tiny simulated sensor', async () => {
    const { camera } = make();
    await camera.start();
    const info = camera.info();
    assert.equal(info.backend, 'simulated');
    assert.equal(info.simulated, true);
    assert.equal(info.connected, true);
    assert.equal(info.sensor, 'tiny');
    assert.equal(info.last_error, null);
    assert.ok(info.checked_at !== null && !Number.isNaN(Date.parse(info.checked_at)));
    const tiny = info.cameras.find((c) => c.index === 0);
    assert.ok(tiny && tiny.width > 0 && tiny.height > 0);
    assert.equal(camera.expectedDngBytes(), dngBytesFor(tiny.width, tiny.height));
  });

  test('a capture writes the DNG, the JPEG and the metadata, and leaves them for the caller', async () => {
    const { camera, records } = make();
    await camera.start();
    const base = nextBase();
    const before = Date.now();
    const output = await camera.capture({
      outputBase: base,
      settings: { shutter_us: 10000, gain: 2, ev: -1, awb: 'daylight', denoise: 'off', hflip: true, vflip: true },
    });
    assert.equal(output.dngPath, `${base}.dng`);
    assert.equal(output.jpegPath, `${base}.jpg`);
    const dng = await readFile(output.dngPath);
    assert.ok(dng.length > 0);
    assert.equal(dng.subarray(0, 4).toString('binary'), 'II*\0', 'a little-endian TIFF');
    assert.ok((await stat(`${base}.jpg`)).size > 0);
    assert.ok(output.metadata !== null && typeof output.metadata === 'object');
    assert.ok(before <= output.triggeredAt && output.triggeredAt <= output.completedAt && output.completedAt <= Date.now());
    const done = records.find((record) => record.msg === 'capture done');
    assert.equal(done?.dng_bytes, dng.length);
    assert.equal(done?.part, 'camera');
  });

  test('no-camera: camera_unavailable, disconnected, onChange fired; a later probe reconnects', async () => {
    const { camera, env } = make();
    await camera.start();
    assert.equal(camera.info().connected, true);
    const changes: CameraInfo[] = [];
    camera.onChange((info) => changes.push(info));
    env.CAMERA_SIM_FAIL = 'no-camera';
    const base = nextBase();
    await assert.rejects(camera.capture({ outputBase: base, settings: {} }), isNodeError('camera_unavailable'));
    assert.equal(camera.info().connected, false);
    assert.equal(changes[0]?.connected, false);
    assertNoOutputs(base);
    await camera.probe(); // joins the re-check the failure started (still no camera)
    assert.equal(camera.info().connected, false);
    delete env.CAMERA_SIM_FAIL;
    await camera.probe();
    assert.equal(camera.info().connected, true);
    assert.equal(changes.at(-1)?.connected, true);
  });

  test('capture-error: camera_failed carrying the simulator’s error line', async () => {
    const failing = { ...FAST_SIM, CAMERA_SIM_FAIL: 'capture-error' };
    const base = nextBase();
    // What the simulator says when run by hand with the same arguments.
    const direct = await execa(
      process.execPath,
      [SIMULATOR, ...coldCaptureArgs({ outputBase: base, settings: {}, immediate: true, cameraIndex: 0 })],
      { env: failing, reject: false },
    );
    assert.equal(direct.exitCode, 255);
    const expected = appErrorMessage(direct.stderr);
    assert.ok(expected, 'the simulator prints ERROR: *** … ***');
    await Promise.all(['jpg', 'dng', 'json'].map((ext) => rm(`${base}.${ext}`, { force: true })));

    const { camera, records } = make({ CAMERA_SIM_FAIL: 'capture-error' });
    await camera.start();
    await assert.rejects(camera.capture({ outputBase: base, settings: {} }), (err: unknown) => {
      isNodeError('camera_failed')(err);
      assert.ok((err as Error).message.includes(expected), `${(err as Error).message} includes ${expected}`);
      return true;
    });
    assertNoOutputs(base);
    assert.equal(camera.info().last_error?.includes(expected), true);
    const logged = records.find((record) => record.msg === 'capture failed');
    assert.equal(logged?.level, 50);
    assert.equal(logged?.exit_code, 255);
  });

  test('hang: camera_timeout after captureTimeoutMs, process killed, files gone', async () => {
    const { camera } = make({ CAMERA_SIM_FAIL: 'hang' }, { captureTimeoutMs: 500 });
    await camera.start();
    const base = nextBase();
    const started = Date.now();
    await assert.rejects(
      camera.capture({ outputBase: base, settings: {} }),
      isNodeError('camera_timeout', /capture exceeded 500 ms; killed/),
    );
    assert.ok(Date.now() - started < 5000);
    assert.deepEqual(await processesMentioning(base), []);
    assertNoOutputs(base);
  });

  for (const mode of ['crash', 'slow-write']) {
    test(`${mode}: aborting the request kills the app and removes its files`, async () => {
      const { camera } = make({ CAMERA_SIM_FAIL: mode, CAMERA_SIM_WRITE_MBPS: '1' });
      await camera.start();
      const base = nextBase();
      const controller = new AbortController();
      const capture = camera.capture({ outputBase: base, settings: {}, signal: controller.signal });
      await waitFor('the app to run', async () => (await processesMentioning(base)).length > 0);
      await new Promise((resolve) => setTimeout(resolve, 200));
      controller.abort(new NodeError('shutting_down', 'the node is shutting down'));
      await assert.rejects(capture, (err: unknown) => err instanceof NodeError);
      assert.deepEqual(await processesMentioning(base), []);
      assertNoOutputs(base);
    });
  }

  test('an aborted capture says so, and is not recorded as a camera error', async () => {
    const { camera } = make({ CAMERA_SIM_FAIL: 'hang' });
    await camera.start();
    const base = nextBase();
    const controller = new AbortController();
    const capture = camera.capture({ outputBase: base, settings: {}, signal: controller.signal });
    await waitFor('the app to run', async () => (await processesMentioning(base)).length > 0);
    controller.abort();
    await assert.rejects(capture, isNodeError('camera_failed', /aborted/));
    assert.equal(camera.info().last_error, null);
    assertNoOutputs(base);
  });

  test('stop() during a capture kills the app and waits for it', async () => {
    const { camera } = make({ CAMERA_SIM_FAIL: 'hang' });
    await camera.start();
    const base = nextBase();
    const capture = camera.capture({ outputBase: base, settings: {} });
    const outcome = capture.catch((err: unknown) => err);
    await waitFor('the app to run', async () => (await processesMentioning(base)).length > 0);
    await camera.stop();
    assert.deepEqual(await processesMentioning(base), [], 'the app is gone when stop() resolves');
    isNodeError('shutting_down')(await outcome);
    assertNoOutputs(base);
    await assert.rejects(camera.capture({ outputBase: nextBase(), settings: {} }), isNodeError('shutting_down'));
  });

  test('periodic probes run while idle and stop with the camera', async () => {
    const { camera, records } = make({}, { probeIntervalMs: 100 });
    await camera.start();
    const first = camera.info().checked_at;
    await waitFor('a periodic probe', () => camera.info().checked_at !== first);
    await camera.stop();
    const count = records.length;
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(records.length, count, 'nothing runs after stop()');
  });
});
