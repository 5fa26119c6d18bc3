import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import fc from 'fast-check';
import { parseListCameras } from '../src/camera/list-cameras.js';
import { extractExifThumbnail } from '../src/camera/thumbnail.js';
import { createBootClock } from '../src/camera/boottime.js';
import { checkDng } from '../src/camera/warm-dng.js';
import { BOARDS, readKnobs } from '../src/simulator/knobs.js';
import { dngName, formatCounter, outputName } from '../src/simulator/filenames.js';
import { encodeJpeg } from '../src/simulator/jpeg-encoder.js';
import { listCamerasText, SENSORS } from '../src/simulator/sensors.js';
import { stillSettings } from '../src/simulator/settings.js';
import { Options, parseArgs } from '../src/simulator/args.js';

const SIMULATOR = fileURLToPath(new URL('../src/simulator/main.js', import.meta.url));
const FAST: Record<string, string> = {
  CAMERA_SIM_SENSOR: 'tiny',
  CAMERA_SIM_START_MS: '0',
  CAMERA_SIM_CAPTURE_MS: '0',
  CAMERA_SIM_WRITE_MBPS: '0',
};

function sim(args: string[], env: Record<string, string> = {}) {
  return execa(process.execPath, [SIMULATOR, ...args], { env: { ...FAST, ...env }, reject: false, stdin: 'ignore' });
}

async function which(tool: string): Promise<boolean> {
  const result = await execa('which', [tool], { reject: false });
  return result.exitCode === 0;
}

// ------------------------------------------------------------------------------------------------
// A small TIFF reader, independent of the simulator's writer.
// ------------------------------------------------------------------------------------------------

type Ifd = Map<number, number[] | string>;
const SIZES: Record<number, number> = { 1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1, 10: 8, 13: 4 };

function readIfd(buf: Buffer, offset: number): { ifd: Ifd; next: number } {
  assert.ok(offset >= 8 && offset % 2 === 0 && offset + 2 <= buf.length, `IFD offset ${offset} inside the file and word-aligned`);
  const count = buf.readUInt16LE(offset);
  const ifd: Ifd = new Map();
  let previous = -1;
  for (let i = 0; i < count; i++) {
    const at = offset + 2 + i * 12;
    const tag = buf.readUInt16LE(at);
    const type = buf.readUInt16LE(at + 2);
    const n = buf.readUInt32LE(at + 4);
    assert.ok(tag > previous, `tags ascending (${tag} after ${previous})`);
    previous = tag;
    const size = SIZES[type];
    assert.ok(size, `known type ${type} for tag ${tag}`);
    const bytes = size * n;
    const data = bytes <= 4 ? at + 8 : buf.readUInt32LE(at + 8);
    assert.ok(data + bytes <= buf.length, `tag ${tag} values inside the file`);
    if (type === 2) ifd.set(tag, buf.toString('latin1', data, data + n - 1));
    else {
      const values: number[] = [];
      for (let k = 0; k < (type === 5 || type === 10 ? n * 2 : n); k++) {
        if (type === 1 || type === 7) values.push(buf.readUInt8(data + k));
        else if (type === 3) values.push(buf.readUInt16LE(data + k * 2));
        else if (type === 10) values.push(buf.readInt32LE(data + k * 4));
        else values.push(buf.readUInt32LE(data + k * 4));
      }
      ifd.set(tag, values);
    }
  }
  return { ifd, next: buf.readUInt32LE(offset + 2 + count * 12) };
}

/** The field type of `tag` in the IFD at `offset`. */
function ifdType(buf: Buffer, offset: number, tag: number): number | undefined {
  const count = buf.readUInt16LE(offset);
  for (let i = 0; i < count; i++) if (buf.readUInt16LE(offset + 2 + i * 12) === tag) return buf.readUInt16LE(offset + 4 + i * 12);
  return undefined;
}

const nums = (ifd: Ifd, tag: number): number[] => {
  const value = ifd.get(tag);
  assert.ok(Array.isArray(value), `tag ${tag} present`);
  return value;
};

interface DngFacts {
  ifd0: Ifd;
  raw: Ifd;
  exif: Ifd;
}

/** Checks the layout rpicam-still writes and returns the IFDs. */
function checkDngLayout(buf: Buffer, sensor: { name: string; width: number; height: number; bits: number; cfa: number[] }): DngFacts {
  assert.equal(buf.toString('latin1', 0, 4), 'II*\0', 'little-endian TIFF');
  const { ifd: ifd0 } = readIfd(buf, buf.readUInt32LE(4));
  assert.deepEqual(nums(ifd0, 254), [1], 'IFD0 is the thumbnail');
  assert.deepEqual([nums(ifd0, 256)[0], nums(ifd0, 257)[0]], [Math.floor(sensor.width / 16), Math.floor(sensor.height / 16)]);
  assert.deepEqual(nums(ifd0, 258), [8, 8, 8]);
  assert.deepEqual(nums(ifd0, 262), [2]);
  assert.equal(ifd0.get(271), 'Raspberry Pi');
  assert.equal(ifd0.get(272), sensor.name);
  assert.equal(ifd0.get(305), 'rpicam-still');
  assert.deepEqual(nums(ifd0, 50706), [1, 1, 0, 0], 'DNGVersion 1.1.0.0');
  assert.deepEqual(nums(ifd0, 50707), [1, 0, 0, 0]);
  assert.equal(ifd0.get(50708), `Raspberry Pi ${sensor.name}`);
  assert.equal(nums(ifd0, 50721).length, 18, 'ColorMatrix1: 9 rationals');
  assert.equal(nums(ifd0, 50728).length, 6, 'AsShotNeutral: 3 rationals');
  assert.deepEqual(nums(ifd0, 50778), [21]);
  const [thumbAt = 0] = nums(ifd0, 273);
  const [thumbBytes = 0] = nums(ifd0, 279);
  assert.equal(thumbBytes, Math.floor(sensor.width / 16) * Math.floor(sensor.height / 16) * 3);
  assert.ok(thumbAt + thumbBytes <= buf.length);

  const [subAt = 0] = nums(ifd0, 330);
  const { ifd: raw } = readIfd(buf, subAt);
  assert.deepEqual(nums(raw, 254), [0], 'the SubIFD is the full-resolution image');
  assert.deepEqual([nums(raw, 256)[0], nums(raw, 257)[0]], [sensor.width, sensor.height]);
  assert.deepEqual(nums(raw, 258), [16]);
  assert.deepEqual(nums(raw, 259), [1]);
  assert.deepEqual(nums(raw, 262), [32803]);
  assert.deepEqual(nums(raw, 277), [1]);
  assert.deepEqual(nums(raw, 33421), [2, 2]);
  assert.deepEqual(nums(raw, 33422), sensor.cfa);
  assert.deepEqual(nums(raw, 50713), [2, 2]);
  assert.equal(nums(raw, 50714).length, 4);
  assert.deepEqual(nums(raw, 50717), [2 ** sensor.bits - 1]);
  const offsets = nums(raw, 273);
  const counts = nums(raw, 279);
  assert.equal(offsets.length, 1, 'ROWSPERSTRIP is never set: one strip');
  assert.deepEqual(nums(raw, 278), [sensor.height]);
  const [stripAt = 0] = offsets;
  assert.deepEqual(counts, [sensor.width * sensor.height * 2], 'every pixel as a 16-bit word');
  assert.ok(stripAt > subAt && stripAt + (counts[0] ?? 0) <= buf.length, 'the raw directory sits before its pixel data');
  assert.deepEqual(ifdType(buf, buf.readUInt32LE(4), 330), 13, 'SubIFDs has type IFD');
  assert.deepEqual(ifdType(buf, buf.readUInt32LE(4), 34665), 13, 'ExifIFD has type IFD');

  const [exifAt = 0] = nums(ifd0, 34665);
  const { ifd: exif } = readIfd(buf, exifAt);
  assert.deepEqual([nums(exif, 259), nums(exif, 273), nums(exif, 279)], [[1], [0], [0]], 'libtiff’s stray entries');
  assert.match(String(exif.get(36867)), /^\d{4}:\d\d:\d\d \d\d:\d\d:\d\d$/);
  assert.ok((nums(exif, 34855)[0] ?? 0) >= 100, 'ISO from the analogue gain');
  assert.equal(nums(exif, 33434).length, 2);
  return { ifd0, raw, exif };
}

/** Width and height from a JPEG's SOF0. */
function jpegSize(jpeg: Buffer): { width: number; height: number } {
  assert.equal(jpeg.readUInt16BE(0), 0xffd8);
  let at = 2;
  while (at + 4 <= jpeg.length) {
    const marker = jpeg.readUInt16BE(at);
    if (marker === 0xffc0) return { height: jpeg.readUInt16BE(at + 5), width: jpeg.readUInt16BE(at + 7) };
    at += 2 + jpeg.readUInt16BE(at + 2);
  }
  throw new Error('no SOF0');
}

function readFileSyncSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

const TINY = SENSORS['tiny'] as (typeof SENSORS)[string];
const TINY_FACTS = { name: 'tiny', width: TINY.width, height: TINY.height, bits: TINY.bits, cfa: [0, 1, 1, 2] };

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'camera-sim-'));
});
after(() => rm(dir, { recursive: true, force: true }));

// ------------------------------------------------------------------------------------------------

describe('command line', () => {
  test('unknown options, missing and bad values are errors in the app’s words, status 255', async () => {
    const cases: Array<[string[], string]> = [
      [['--foo'], "unrecognised option '--foo'"],
      [['-Z'], "unrecognised option '-Z'"],
      [['-o'], "the required argument for option '-o' is missing"],
      [['--quality=abc', '-o', 'x.jpg'], "the argument ('abc') for option '--quality' is invalid"],
      [['--hflip=maybe'], "the argument ('maybe') for option '--hflip' is invalid"],
      [['shot.jpg'], 'too many positional options have been specified on the command line'],
      [['--signal', '--timelapse', '1000'], 'keypress/signal and timelapse options are mutually exclusive'],
      [['--thumb', '320x240'], 'Invalid thumbnail parameters'],
      [['--awb', 'sunny'], 'Invalid AWB mode: sunny'],
      [['-t', 'soon'], 'Invalid time string provided for timeout: soon'],
      [['--h'], "option '--h' is ambiguous and matches '--help', '--height', '--hflip', '--hdr'"],
    ];
    for (const [args, message] of cases) {
      const result = await sim(args);
      assert.equal(result.exitCode, 255, args.join(' '));
      assert.equal(result.stderr.trim().split('\n').at(-1), `ERROR: *** ${message} ***`);
    }
  });

  test('an unambiguous prefix names the option, as boost allows', async () => {
    const result = await sim(['--list']);
    assert.equal(result.exitCode, 0);
    assert.match(result.stdout, /^Available cameras/);
  });

  test('the daemon’s options parse, with values attached or separate', () => {
    const settings = stillSettings(
      new Options(
        parseArgs([
          '-n',
          '--immediate',
          '-r',
          '-o',
          '/x/a.jpg',
          '--thumb',
          '320:240:70',
          '--metadata',
          '/x/a.json',
          '--camera',
          '0',
          '--shutter=20000',
          '--gain=2.5',
          '--ev=-1',
          '--awb=daylight',
          '--denoise=cdn_hq',
          '--hflip',
          '-t0',
        ]),
      ),
    );
    assert.equal(settings.output, '/x/a.jpg');
    assert.deepEqual(settings.thumb, { width: 320, height: 240, quality: 70 });
    assert.equal(settings.shutterUs, 20000);
    assert.equal(settings.gain, 2.5);
    assert.equal(settings.ev, -1);
    assert.equal(settings.timeoutMs, 0);
    assert.equal(settings.hflip && !settings.vflip && settings.raw && settings.immediate, true);
    assert.equal(stillSettings(new Options(parseArgs(['-t', '2sec', '--shutter', '1ms']))).timeoutMs, 2000);
    assert.equal(stillSettings(new Options(parseArgs(['--shutter', '1ms']))).shutterUs, 1000);
  });

  test('file names: printf counters, the DNG name, the 127-byte cut', () => {
    assert.equal(formatCounter('/d/frame%04d.jpg', 7), '/d/frame0007.jpg');
    assert.equal(formatCounter('/d/w1-%06d.jpg', 12), '/d/w1-000012.jpg');
    assert.equal(formatCounter('/d/100%%-%d.jpg', 3), '/d/100%-3.jpg');
    assert.equal(dngName('/d/shot.jpg'), '/d/shot.dng');
    assert.equal(dngName('/d/shot'), '/d/shot.dng');
    const long = `/${'x'.repeat(200)}.jpg`;
    const settings = stillSettings(new Options(parseArgs(['-o', long])));
    assert.equal(outputName(settings, 0, new Date())?.length, 127);
  });
});

describe('--list-cameras', () => {
  test('lists the configured sensor in the app’s format, which the driver parses', async () => {
    const hq = await sim(['--list-cameras'], { CAMERA_SIM_SENSOR: 'imx477' });
    assert.equal(hq.exitCode, 0);
    assert.equal(
      hq.stdout,
      [
        'Available cameras',
        '-----------------',
        '0 : imx477 [4056x3040 12-bit RGGB] (/base/soc/i2c0mux/i2c@1/imx477@1a)',
        "    Modes: 'SRGGB10_CSI2P' : 1332x990 [120.05 fps - (696, 528)/2664x1980 crop]",
        "           'SRGGB12_CSI2P' : 2028x1080 [50.03 fps - (0, 440)/4056x2160 crop]",
        '                             2028x1520 [40.01 fps - (0, 0)/4056x3040 crop]',
        '                             4056x3040 [10.00 fps - (0, 0)/4056x3040 crop]',
        '',
      ].join('\n'),
    );
    for (const name of ['imx708', 'ov5647', 'tiny']) {
      const result = await sim(['--list-cameras'], { CAMERA_SIM_SENSOR: name });
      const sensor = SENSORS[name];
      assert.deepEqual(
        parseListCameras(result.stdout).map((c) => [c.index, c.sensor, c.width, c.height, c.bit_depth, c.cfa]),
        [[0, name, sensor?.width, sensor?.height, sensor?.bits, sensor?.cfa]],
      );
    }
  });

  test('without a camera: "No cameras available!" and still status 0', async () => {
    const result = await sim(['--list-cameras'], { CAMERA_SIM_FAIL: 'no-camera' });
    assert.equal(result.exitCode, 0);
    assert.equal(result.stdout, 'No cameras available!');
    assert.equal(listCamerasText([]), 'No cameras available!\n');
  });

  test('an unknown sensor knob is an error, not a silent default', async () => {
    const result = await sim(['--list-cameras'], { CAMERA_SIM_SENSOR: 'imx999' });
    assert.equal(result.exitCode, 255);
    assert.match(result.stderr, /ERROR: \*\*\* CAMERA_SIM_SENSOR: unknown sensor 'imx999'/);
  });
});

describe('a capture', () => {
  const base = (): string => join(dir, `shot-${Math.random().toString(36).slice(2, 8)}`);
  const args = (b: string, extra: string[] = [], thumb = '320:240:70'): string[] => [
    '-n',
    '--immediate',
    '-r',
    '-o',
    `${b}.jpg`,
    '--thumb',
    thumb,
    '--metadata',
    `${b}.json`,
    '--camera',
    '0',
    ...extra,
  ];

  test('writes the JPEG, a DNG with the rpicam-still layout, and the metadata', async () => {
    const b = base();
    const result = await sim(args(b, ['--shutter=20000', '--gain=2']));
    assert.equal(result.exitCode, 0, result.stderr);
    const dng = await readFile(`${b}.dng`);
    const facts = checkDngLayout(dng, TINY_FACTS);
    assert.deepEqual(nums(facts.exif, 34855), [200], 'ISO = analogue gain × 100');
    assert.deepEqual(nums(facts.exif, 33434), [20000, 1_000_000], 'ExposureTime 1/50 s');
    assert.deepEqual(await checkDng(`${b}.dng`), { complete: true, size: dng.length, final: true });
    const metadata = JSON.parse(await readFile(`${b}.json`, 'utf8')) as Record<string, unknown>;
    assert.equal(metadata['ExposureTime'], 20000);
    assert.equal(metadata['AnalogueGain'], 2);
    for (const key of ['SensorTimestamp', 'Lux', 'ColourGains', 'DigitalGain', 'FrameDuration', 'ColourTemperature'])
      assert.ok(key in metadata, key);
    const jpeg = await readFile(`${b}.jpg`);
    assert.equal(jpeg.readUInt16BE(0), 0xffd8);
    assert.equal(jpeg.readUInt16BE(jpeg.length - 2), 0xffd9);
  });

  test('consecutive captures differ (the test pattern varies per capture)', async () => {
    const [a, b] = [base(), base()];
    await sim(args(a));
    await sim(args(b));
    const [first, second] = await Promise.all([readFile(`${a}.dng`), readFile(`${b}.dng`)]);
    assert.equal(first.length, second.length);
    assert.ok(!first.equals(second));
  });

  test('the EXIF thumbnail round-trips: --thumb size and quality, found by extractExifThumbnail', async () => {
    const b = base();
    await sim(args(b, [], '160:120:50'));
    const jpeg = await readFile(`${b}.jpg`);
    const thumbnail = extractExifThumbnail(jpeg);
    assert.ok(thumbnail, 'a thumbnail');
    assert.deepEqual(jpegSize(thumbnail), { width: 160, height: 120 });
    assert.equal(thumbnail.readUInt16BE(thumbnail.length - 2), 0xffd9, 'the whole thumbnail, up to EOI');
    assert.ok(thumbnail.length < 64 * 1024);
    // Only the first 66 KiB are read for a preview: they hold it.
    assert.deepEqual(extractExifThumbnail(jpeg.subarray(0, 66 * 1024)), thumbnail);

    const none = base();
    await sim(args(none, [], 'none'));
    assert.equal(extractExifThumbnail(await readFile(`${none}.jpg`)), null, '--thumb none: no thumbnail');
  });

  test('extractExifThumbnail is safe on garbage and on every truncation', async () => {
    const b = base();
    await sim(args(b));
    const jpeg = await readFile(`${b}.jpg`);
    for (let cut = 0; cut < 2000; cut += 7) assert.equal(extractExifThumbnail(jpeg.subarray(0, cut)), null);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => extractExifThumbnail(Buffer.from(bytes)) === null || true));
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 400 }), fc.integer({ min: 0, max: 255 }), (at, value) => {
        const copy = Buffer.from(jpeg);
        copy[at] = value;
        const result = extractExifThumbnail(copy);
        return result === null || (result[0] === 0xff && result[1] === 0xd8);
      }),
    );
    assert.equal(extractExifThumbnail(encodeJpeg(new Uint8Array(16 * 16 * 3), 16, 16, 80)), null, 'a JPEG without EXIF');
  });

  test('exiftool and dcraw accept the DNG', async (t) => {
    const tools = { exiftool: await which('exiftool'), dcraw: await which('dcraw') };
    if (!tools.exiftool && !tools.dcraw) return t.skip('neither exiftool nor dcraw is installed');
    const b = base();
    await sim(args(b));
    if (tools.exiftool) {
      const exif = await execa('exiftool', [
        '-s',
        '-DNGVersion',
        '-UniqueCameraModel',
        '-ImageWidth',
        '-ImageHeight',
        '-CFAPattern',
        '-ThumbnailImage',
        `${b}.dng`,
      ]);
      assert.match(exif.stdout, /DNGVersion\s*: 1\.1\.0\.0/);
      assert.match(exif.stdout, /UniqueCameraModel\s*: Raspberry Pi tiny/);
      const jpeg = await execa('exiftool', ['-s', '-Model', '-ThumbnailLength', '-ExposureTime', `${b}.jpg`]);
      assert.match(jpeg.stdout, /Model\s*: tiny/);
      assert.match(jpeg.stdout, /ThumbnailLength\s*: \d+/);
    } else t.diagnostic('exiftool not installed: skipped its check');
    if (tools.dcraw) {
      const identify = await execa('dcraw', ['-i', '-v', `${b}.dng`]);
      assert.match(identify.stdout, /Camera: Raspberry Pi tiny/);
      assert.match(identify.stdout, new RegExp(`Full size:\\s+${TINY.width} x ${TINY.height}`));
      assert.match(identify.stdout, /Filter pattern: RG\/GB/);
      const decoded = await execa('dcraw', ['-c', '-h', `${b}.dng`], { encoding: 'buffer' });
      assert.equal(decoded.exitCode, 0, 'dcraw decodes the pixels too');
      assert.ok(decoded.stdout.length > (TINY.width / 2) * (TINY.height / 2) * 3);
    } else t.diagnostic('dcraw not installed: skipped its check');
  });

  test('the HQ camera: a 24.8 MB DNG of 4056x3040 12-bit RGGB that dcraw identifies', async () => {
    const b = base();
    const result = await sim(args(b), { CAMERA_SIM_SENSOR: 'imx477' });
    assert.equal(result.exitCode, 0, result.stderr);
    const dng = await readFile(`${b}.dng`);
    assert.ok(Math.abs(dng.length - 24.8e6) < 0.2e6, `${dng.length} bytes`);
    checkDngLayout(dng, { name: 'imx477', width: 4056, height: 3040, bits: 12, cfa: [0, 1, 1, 2] });
    if (await which('dcraw')) {
      assert.match((await execa('dcraw', ['-i', '-v', `${b}.dng`])).stdout, /Full size:\s+4056 x 3040/);
    }
    const thumbnail = extractExifThumbnail(await readFile(`${b}.jpg`));
    assert.ok(thumbnail && thumbnail.length < 1024 * 1024);
    assert.deepEqual(jpegSize(thumbnail), { width: 320, height: 240 });
  });

  test('the startup frames are dropped before the first frame: its exposure comes 7 frame periods after the start', async () => {
    const boot = createBootClock();
    const b = base();
    const spawned = boot.nowNs();
    assert.equal((await sim(args(b), { CAMERA_SIM_SENSOR: 'ov9281' })).exitCode, 0);
    const exposed = BigInt((JSON.parse(await readFile(`${b}.json`, 'utf8')) as { SensorTimestamp: number }).SensorTimestamp);
    // ov9281's full mode runs at 144 fps.
    assert.ok(Number(exposed - spawned) / 1e6 >= (7 * 1000) / 144, 'exposure after the 7 startup frames');
    assert.ok(exposed <= boot.nowNs(), 'and before now: CLOCK_BOOTTIME, not another clock');
  });

  test('boards set the default timings; an explicit start cost scales the reconfiguration with it', () => {
    assert.equal(readKnobs({}).board, 'zero-2-w');
    for (const [name, board] of Object.entries(BOARDS)) {
      const knobs = readKnobs({ CAMERA_SIM_BOARD: name });
      assert.equal(knobs.startMs, board.startMs);
      assert.equal(knobs.reconfigureMs, board.reconfigureMs);
      assert.ok(knobs.processMs(12) > knobs.processMs(0.1), 'a 12 MP JPEG costs more than a preview');
    }
    assert.ok(readKnobs({ CAMERA_SIM_BOARD: 'zero-w' }).processMs(12) > readKnobs({ CAMERA_SIM_BOARD: 'pi-4' }).processMs(12));
    assert.equal(readKnobs({ CAMERA_SIM_START_MS: '0' }).reconfigureMs, 0);
    assert.equal(readKnobs({ CAMERA_SIM_START_MS: '0', CAMERA_SIM_RECONFIGURE_MS: '80' }).reconfigureMs, 80);
    assert.equal(readKnobs({ CAMERA_SIM_CAPTURE_MS: '0' }).processMs(12), 0);
    assert.throws(() => readKnobs({ CAMERA_SIM_BOARD: 'pi-zero-9' }), /CAMERA_SIM_BOARD: unknown board 'pi-zero-9'/);
    assert.throws(() => readKnobs({ CAMERA_SIM_LIBTIFF: '3.9' }), /CAMERA_SIM_LIBTIFF/);
  });

  test('libtiff 4.5 rewrites IFD0 in place; 4.7 moves it to the end of the file', async () => {
    const [old, current] = [base(), base()];
    await sim(args(old), { CAMERA_SIM_LIBTIFF: '4.5' });
    await sim(args(current), { CAMERA_SIM_LIBTIFF: '4.7' });
    const [a, b] = await Promise.all([readFile(`${old}.dng`), readFile(`${current}.dng`)]);
    const thumbEnd = 8 + Math.floor(TINY.width / 16) * Math.floor(TINY.height / 16) * 3;
    assert.equal(a.readUInt32LE(4), thumbEnd + (thumbEnd & 1), '4.5: IFD0 right after the thumbnail');
    assert.ok(b.readUInt32LE(4) > b.length - 1024, '4.7: IFD0 at the end');
    for (const dng of [a, b]) checkDngLayout(dng, TINY_FACTS);
    assert.equal((await checkDng(`${current}.dng`)).complete, true);
  });

  test('a mono sensor (ov9281): no colour tags, no SubIFD or EXIF pointers, LinearRaw chained after IFD0', async (t) => {
    const b = base();
    const result = await sim(args(b), { CAMERA_SIM_SENSOR: 'ov9281' });
    assert.equal(result.exitCode, 0, result.stderr);
    const dng = await readFile(`${b}.dng`);
    const { ifd: ifd0, next } = readIfd(dng, dng.readUInt32LE(4));
    for (const tag of [330, 34665, 50721, 50728, 50778]) assert.equal(ifd0.has(tag), false, `no tag ${tag} in IFD0`);
    assert.deepEqual(nums(ifd0, 254), [1], 'IFD0 is still the thumbnail');
    const { ifd: raw } = readIfd(dng, next);
    assert.deepEqual(nums(raw, 254), [0]);
    assert.deepEqual([nums(raw, 256)[0], nums(raw, 257)[0]], [1280, 800]);
    assert.deepEqual(nums(raw, 262), [34892], 'LinearRaw');
    assert.equal(raw.has(33422), false, 'no CFAPattern');
    assert.deepEqual(nums(raw, 50713), [1, 1]);
    assert.deepEqual(nums(raw, 279), [1280 * 800 * 2]);
    assert.deepEqual(await checkDng(`${b}.dng`), { complete: true, size: dng.length, final: false });
    if (await which('dcraw')) {
      const identify = await execa('dcraw', ['-i', '-v', `${b}.dng`]);
      assert.match(identify.stdout, /Full size:\s+1280 x 800/);
      assert.match(identify.stdout, /Raw colors: 1/);
    } else t.diagnostic('dcraw not installed: skipped its check');
  });

  test('--mode forces the raw mode while --width/--height size the JPEG; without --mode they shrink the DNG', async () => {
    const [forced, shrunk] = [base(), base()];
    const small = ['--width', '320', '--height', '240', '-q', '80'];
    const env = { CAMERA_SIM_SENSOR: 'imx477' };
    assert.equal((await sim(args(forced, [...small, '--mode', '4056:3040:12:P'], 'none'), env)).exitCode, 0);
    assert.equal((await sim(args(shrunk, small, 'none'), env)).exitCode, 0);
    const [forcedDng, forcedJpeg, shrunkDng] = await Promise.all([
      readFile(`${forced}.dng`),
      readFile(`${forced}.jpg`),
      readFile(`${shrunk}.dng`),
    ]);
    checkDngLayout(forcedDng, { name: 'imx477', width: 4056, height: 3040, bits: 12, cfa: [0, 1, 1, 2] });
    assert.deepEqual(jpegSize(forcedJpeg), { width: 320, height: 240 });
    assert.ok(forcedJpeg.length < 64 * 1024, `a small JPEG (${forcedJpeg.length} bytes)`);
    assert.equal(extractExifThumbnail(forcedJpeg), null, '--thumb none');
    // The smallest full field-of-view mode covering 320x240: the 2x2-binned one.
    checkDngLayout(shrunkDng, { name: 'imx477', width: 2028, height: 1520, bits: 12, cfa: [0, 1, 1, 2] });
  });

  test('a plain -t viewfinder run, a png encoding, metadata on stdout', async () => {
    const b = base();
    const result = await sim(['-n', '-t', '20', '-e', 'png', '-o', `${b}.png`, '--metadata', '-']);
    assert.equal(result.exitCode, 0, result.stderr);
    assert.deepEqual([...(await readFile(`${b}.png`)).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
    assert.equal(typeof (JSON.parse(result.stdout) as Record<string, unknown>)['ExposureTime'], 'number');
    assert.equal(existsSync(`${b}.dng`), false, 'no DNG without -r');
  });
});

describe('failure injection', () => {
  const base = (): string => join(dir, `fail-${Math.random().toString(36).slice(2, 8)}`);
  const args = (b: string): string[] => ['-n', '--immediate', '-r', '-o', `${b}.jpg`, '--metadata', `${b}.json`];
  const written = async (b: string): Promise<string[]> => (await readdir(dir)).filter((name) => name.startsWith(b.slice(dir.length + 1)));

  test('no-camera: the app’s error, status 255, no files', async () => {
    const b = base();
    const result = await sim(args(b), { CAMERA_SIM_FAIL: 'no-camera' });
    assert.equal(result.exitCode, 255);
    assert.match(result.stderr, /ERROR: \*\*\* no cameras available \*\*\*/);
    assert.deepEqual(await written(b), []);
  });

  test('capture-error: an error line, status 255, no files', async () => {
    const b = base();
    const result = await sim(args(b), { CAMERA_SIM_FAIL: 'capture-error' });
    assert.equal(result.exitCode, 255);
    assert.match(result.stderr.split('\n').at(-1) ?? '', /^ERROR: \*\*\* .{10,} \*\*\*$/);
    assert.deepEqual(await written(b), []);
  });

  test('hang: runs until killed; SIGTERM ends it as the real app ends (by the signal)', async () => {
    const b = base();
    const child = sim(args(b), { CAMERA_SIM_FAIL: 'hang' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(child.exitCode, null, 'still running');
    child.kill('SIGTERM');
    const result = await child;
    assert.equal(result.signal, 'SIGTERM');
    assert.deepEqual(await written(b), []);
  });

  test('crash: dies of SIGKILL with half a DNG written (incomplete by its structure)', async () => {
    const b = base();
    const result = await sim(args(b), { CAMERA_SIM_FAIL: 'crash' });
    assert.equal(result.signal, 'SIGKILL');
    assert.ok(existsSync(`${b}.jpg`));
    const check = await checkDng(`${b}.dng`);
    assert.equal(check.complete, false);
    assert.ok(check.size > 0);
    assert.equal(existsSync(`${b}.json`), false, 'no metadata: the app died before it');
  });

  test('slow-write: the DNG grows slowly and is incomplete until done; SIGTERM leaves it so', async () => {
    const b = base();
    const child = sim(args(b), { CAMERA_SIM_FAIL: 'slow-write' });
    const deadline = Date.now() + 10_000;
    while ((await checkDng(`${b}.dng`)).size === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    const first = await checkDng(`${b}.dng`);
    assert.ok(first.size > 0 && !first.complete, 'being written');
    child.kill('SIGTERM');
    assert.equal((await child).signal, 'SIGTERM');
    assert.equal((await checkDng(`${b}.dng`)).complete, false);
  });

  test('CAMERA_SIM_CONTROL overrides CAMERA_SIM_FAIL while the file exists', async () => {
    const control = join(dir, 'control');
    const b = base();
    await writeFile(control, 'capture-error\n');
    assert.equal((await sim(args(b), { CAMERA_SIM_CONTROL: control })).exitCode, 255);
    await writeFile(control, '');
    assert.equal(
      (await sim(args(b), { CAMERA_SIM_CONTROL: control, CAMERA_SIM_FAIL: 'no-camera' })).exitCode,
      0,
      'an empty file means no failure',
    );
    await rm(control);
    assert.equal(
      (await sim(args(b), { CAMERA_SIM_CONTROL: control, CAMERA_SIM_FAIL: 'no-camera' })).exitCode,
      255,
      'no file: the env applies',
    );
    await writeFile(control, 'melt');
    const bad = await sim(args(b), { CAMERA_SIM_CONTROL: control });
    assert.match(bad.stderr, /CAMERA_SIM_CONTROL: unknown failure 'melt'/);
  });
});

describe('signal mode', () => {
  /** Starts `-t 0 --signal` and resolves once it says it is configured (its SIGUSR1 handler is in). */
  async function startSignalMode(
    output: string,
    env: Record<string, string> = {},
    extra: string[] = [],
  ): Promise<{ child: ResultPromise; stderr: () => string }> {
    let seen = '';
    const child = execa(
      process.execPath,
      [SIMULATOR, '-n', '-t', '0', '--signal', '-r', '-o', output, '--metadata', join(dir, 'sig-meta.json'), ...extra],
      {
        env: { ...FAST, ...env },
        reject: false,
        stdin: 'ignore',
      },
    );
    await new Promise<void>((resolve, reject) => {
      child.stderr?.on('data', (chunk: Buffer) => {
        seen += chunk.toString();
        if (/configuring streams/.test(seen)) resolve();
      });
      void child.then(() => reject(new Error(`exited before it was ready: ${seen}`)));
    });
    // Wrapped: an async function returning the child (a thenable) would wait for it to exit.
    return { child, stderr: () => seen };
  }

  async function until(what: string, check: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  const configurations = (text: string): number => text.split('\n').filter((line) => /configuring streams/.test(line)).length;

  test('without --zsl a trigger stops, reconfigures for stills, drops the startup frames and goes back; with --zsl it takes the next frame', async () => {
    const boot = createBootClock();
    for (const zsl of [false, true]) {
      const output = join(dir, `${zsl ? 'zsl' : 'plain'}%d.jpg`);
      const { child, stderr } = await startSignalMode(output, { CAMERA_SIM_RECONFIGURE_MS: '50' }, zsl ? ['--zsl'] : []);
      assert.match(stderr(), zsl ? /320x240-YUV420 \(1\) 320x240-SRGGB12/ : /configuring streams/);
      const before = configurations(stderr());
      const meta = join(dir, 'sig-meta.json');
      await rm(meta, { force: true });
      const triggered = boot.nowNs();
      child.kill('SIGUSR1');
      await until('the metadata', async () => existsSync(meta) && (await readFile(meta, 'utf8')).endsWith('}\n'));
      const exposed = BigInt((JSON.parse(await readFile(meta, 'utf8')) as { SensorTimestamp: number }).SensorTimestamp);
      const latencyMs = Number(exposed - triggered) / 1e6;
      if (zsl) {
        assert.ok(latencyMs >= -1, `the exposure follows the trigger (${latencyMs} ms)`);
        assert.equal(configurations(stderr()), before, 'no reconfiguration');
      } else {
        // One reconfiguration and 7 startup frames of 1 ms (the tiny sensor) before the still's exposure.
        assert.ok(latencyMs >= 50 + 7, `trigger to exposure ${latencyMs} ms`);
        await until('the return to the viewfinder', async () => configurations(stderr()) === before + 2);
      }
      child.kill('SIGUSR2');
      assert.equal((await child).exitCode, 0);
    }
  });

  test('one capture per SIGUSR1 with the frame counter in the name; SIGUSR2 exits 0', async () => {
    const { child } = await startSignalMode(join(dir, 'frame%04d.jpg'));
    for (let frame = 0; frame < 3; frame++) {
      const dng = join(dir, `frame${String(frame).padStart(4, '0')}.dng`);
      assert.equal(existsSync(dng), false, 'nothing before the signal');
      child.kill('SIGUSR1');
      await until(`frame ${frame}`, async () => (await checkDng(dng)).complete);
      checkDngLayout(await readFile(dng), TINY_FACTS);
      assert.ok((await stat(dng.replace('.dng', '.jpg'))).size > 0);
    }
    assert.equal(child.exitCode, null, 'still running between captures');
    child.kill('SIGUSR2');
    const result = await child;
    assert.equal(result.exitCode, 0);
    assert.equal(existsSync(join(dir, 'frame0003.dng')), false, 'exactly three frames');
  });

  test('the control file is read per frame: a failure mid-run ends the app with the error', async () => {
    const control = join(dir, 'sig-control');
    await rm(control, { force: true });
    const { child } = await startSignalMode(join(dir, 'ctl%d.jpg'), { CAMERA_SIM_CONTROL: control });
    child.kill('SIGUSR1');
    await until('the first frame', async () => (await checkDng(join(dir, 'ctl0.dng'))).complete);
    await writeFile(control, 'capture-error');
    child.kill('SIGUSR1');
    const result = await child;
    assert.equal(result.exitCode, 255);
    assert.match(String(result.stderr), /ERROR: \*\*\* .+ \*\*\*/);
    assert.equal(existsSync(join(dir, 'ctl1.dng')), false);
  });

  test('an app whose parent died exits instead of holding the camera for ever', async (t) => {
    if (!existsSync('/proc')) return t.skip('needs /proc to watch the orphaned process');
    // A parent that starts a warm app and vanishes, as a daemon killed with SIGKILL does.
    const args = [SIMULATOR, '-n', '-t', '0', '--signal', '-o', join(dir, 'orphan%d.jpg')];
    const parent = `const c = require('node:child_process').spawn(process.execPath, ${JSON.stringify(args)}, { stdio: 'ignore', detached: true, env: ${JSON.stringify(FAST)} }); console.log(c.pid); c.unref(); setTimeout(() => process.exit(0), 200);`;
    const pid = Number((await execa(process.execPath, ['-e', parent])).stdout.trim());
    assert.ok(pid > 0);
    const alive = (): boolean => existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(readFileSyncSafe(`/proc/${pid}/status`));
    try {
      await until('the orphan to exit', async () => !alive());
    } finally {
      if (alive()) process.kill(pid, 'SIGKILL');
    }
  });

  test('SIGTERM ends a signal-mode app by the signal; a non-zero -t ends it after an idle timeout', async () => {
    const { child } = await startSignalMode(join(dir, 'term%d.jpg'));
    child.kill('SIGTERM');
    assert.equal((await child).signal, 'SIGTERM');
    const timed = await sim(['-n', '-t', '50', '--signal', '-o', join(dir, 'idle%d.jpg')]);
    assert.equal(timed.exitCode, 0);
    assert.equal(existsSync(join(dir, 'idle0.jpg')), false);
  });
});
