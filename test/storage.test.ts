import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import { pino, type Logger } from 'pino';
import { NodeError } from '../src/errors.js';
import { STATE_FILE } from '../src/storage/delivered.js';
import { MAX_SEQUENCE, assertValidImageName, imageName, imageStem, isValidImageName, parseImageName } from '../src/storage/names.js';
import { TEMP_DIR, createImageStore, type StoreInternals } from '../src/storage/store.js';
import type { ImageInfo, ImageStore, StoreOptions } from '../src/storage/types.js';

const silent = pino({ level: 'silent' });

/** A pino logger whose records land in an array, to check what was logged. */
function capturingLogger(): { logger: Logger; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void records.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, records };
}

const isNodeError =
  (code: string) =>
  (err: unknown): boolean =>
    err instanceof NodeError && err.code === code;

/** 2026-11-25 10:15:<second>.<ms> in local time, the zone the names are written in. */
const at = (second: number, ms = 0): Date => new Date(2026, 10, 25, 10, 15, second, ms);
const STEM = 'capture_20261125_101500';

let root: string;
const openStores: ImageStore[] = [];
let dirCounter = 0;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'camera-node-storage-'));
});

after(async () => {
  for (const store of openStores) await store.stop();
  await rm(root, { recursive: true, force: true });
});

/** A fresh capture dir (not yet created: start() must create it). */
const newDir = (): string => join(root, `store-${++dirCounter}`, 'images');

async function openStore(
  dir: string,
  overrides: Partial<StoreOptions> = {},
  logger: Logger = silent,
  internals: StoreInternals = {},
): Promise<ImageStore> {
  const store = createImageStore({ dir, limitBytes: 1_000_000, minFreeBytes: 0, evictUndelivered: true, ...overrides }, logger, internals);
  await store.start();
  openStores.push(store);
  return store;
}

/** What the camera does: writes `<tempBase>.dng`; then what the command layer does: commit it. */
async function addImage(store: ImageStore, size: number, capturedAt: Date): Promise<ImageInfo> {
  const path = `${store.tempBase()}.dng`;
  await writeFile(path, Buffer.alloc(size, 7));
  return store.commit(path, capturedAt);
}

const names = (images: ImageInfo[]): string[] => images.map((image) => image.filename);

describe('image names', () => {
  test('are the local time of the capture, with a padded sequence for later captures in the same second', () => {
    assert.equal(imageStem(at(0, 999)), STEM);
    assert.equal(imageName(STEM, 0), `${STEM}.dng`);
    assert.equal(imageName(STEM, 1), `${STEM}_001.dng`);
    assert.equal(imageName(STEM, 9), `${STEM}_009.dng`);
    assert.equal(imageName(STEM, 10), `${STEM}_010.dng`);
    assert.equal(imageName(STEM, MAX_SEQUENCE), `${STEM}_999.dng`);
    assert.throws(() => imageName(STEM, MAX_SEQUENCE + 1), RangeError);
    // A Pi without a clock boots at the epoch: 1969 in local time west of Greenwich.
    assert.ok(isValidImageName(imageName(imageStem(new Date(1969, 11, 31, 19, 0, 0)), 0)));
    assert.throws(() => imageStem(new Date(Number.NaN)), RangeError);
  });

  test('sort by plain byte order in capture order within a second, and parse back', () => {
    const generated = Array.from({ length: MAX_SEQUENCE + 1 }, (_, sequence) => imageName(STEM, sequence));
    assert.deepEqual([...generated].sort(), generated);
    assert.equal(new Set(generated).size, generated.length);
    for (const [sequence, name] of generated.entries()) {
      assert.deepEqual(parseImageName(name), { stem: STEM, sequence, takenAt: at(0) });
    }
    fc.assert(
      fc.property(
        fc.date({ min: new Date('1900-01-02'), max: new Date('9999-12-30'), noInvalidDate: true }),
        fc.nat(MAX_SEQUENCE),
        (date, sequence) => {
          const parsed = parseImageName(imageName(imageStem(date), sequence));
          return (
            parsed !== null &&
            parsed.sequence === sequence &&
            parsed.stem === imageStem(date) &&
            imageStem(parsed.takenAt) === imageStem(date)
          );
        },
      ),
    );
  });

  test('validation accepts only names the node produces', () => {
    const rejected = [
      '',
      '../x',
      'a/b',
      'capture_x.dng',
      '/etc/passwd',
      `/tmp/${STEM}.dng`,
      `../${STEM}.dng`,
      `sub/${STEM}.dng`,
      `..\\${STEM}.dng`,
      `${STEM}.dng\0`,
      `${STEM}\0.dng`,
      '.tmp',
      '..',
      '.',
      STATE_FILE,
      `${STEM}.dng`.padEnd(300, 'x'),
      `capture_${'1'.repeat(5000)}.dng`,
      `..%2f${STEM}.dng`,
      `%2e%2e%2f${STEM}.dng`,
      `${STEM}%2edng`,
      `${STEM}.dng%00`,
      `${STEM}.DNG`,
      `${STEM}.jpg`,
      `${STEM}.dng\n`,
      ` ${STEM}.dng`,
      `${STEM}.dng/`,
      `${STEM}_0.dng`,
      `${STEM}_000.dng`,
      `${STEM}_01.dng`,
      `${STEM}_10.dng`, // the node writes the tenth as _010
      `${STEM}_0001.dng`,
      'capture_20261131_101500.dng', // 31 November
      'capture_20260229_101500.dng', // not a leap year
      'capture_20261125_246000.dng',
      'capture_20261125_106000.dng',
      'capture_18991231_235959.dng',
      'capture_１0261125_101500.dng', // full-width digit
    ];
    for (const name of rejected) {
      assert.equal(isValidImageName(name), false, JSON.stringify(name));
      assert.throws(() => assertValidImageName(name), isNodeError('invalid_filename'), JSON.stringify(name));
    }
    for (const value of [undefined, null, 42, {}]) assert.equal(isValidImageName(value), false);
    for (const name of [
      `${STEM}.dng`,
      `${STEM}_003.dng`,
      `${STEM}_042.dng`,
      'capture_20240229_235959.dng',
      'capture_19700101_000000.dng',
    ]) {
      assert.equal(assertValidImageName(name), name);
    }
  });

  test('a rejected name touches no file', async () => {
    const dir = newDir();
    const store = await openStore(dir);
    const image = await addImage(store, 10, at(0));
    await store.markDelivered(image.filename, 'mqtt');
    const victim = join(dirname(dir), 'victim.dng');
    await writeFile(victim, 'keep me');
    const stateBefore = await readFile(join(dir, STATE_FILE), 'utf8');

    for (const name of [
      '../victim.dng',
      `../${image.filename}`,
      victim,
      join(dir, image.filename),
      STATE_FILE,
      TEMP_DIR,
      '..',
      `${image.filename}\0`,
    ]) {
      assert.throws(() => store.get(name), isNodeError('invalid_filename'));
      assert.throws(() => store.pathOf(name), isNodeError('invalid_filename'));
      await assert.rejects(store.delete(name), isNodeError('invalid_filename'));
      await assert.rejects(store.markDelivered(name, 'http'), isNodeError('invalid_filename'));
    }
    assert.equal(await readFile(victim, 'utf8'), 'keep me');
    assert.equal(await readFile(join(dir, STATE_FILE), 'utf8'), stateBefore);
    assert.ok(statSync(join(dir, TEMP_DIR)).isDirectory());
    assert.deepEqual(names(store.list()), [image.filename]);
    assert.deepEqual(store.get(image.filename).delivered, ['mqtt']);
    assert.equal(store.pathOf(image.filename), join(dir, image.filename));
  });
});

describe('start', () => {
  test('creates the dirs, empties the temp dir and indexes only the images it finds', async () => {
    const dir = newDir();
    await mkdir(join(dir, TEMP_DIR, 'nested'), { recursive: true });
    await writeFile(join(dir, TEMP_DIR, 'capture-crashed.dng'), Buffer.alloc(50));
    await writeFile(join(dir, TEMP_DIR, 'capture-crashed.jpg'), Buffer.alloc(5));
    await writeFile(join(dir, TEMP_DIR, 'nested', 'x'), 'x');
    await writeFile(join(dir, `${STEM}.dng`), Buffer.alloc(100));
    await writeFile(join(dir, `${STEM}_001.dng`), Buffer.alloc(200));
    const junk = ['notes.txt', 'capture_x.dng', `${STEM}.jpg`, 'capture_20261131_101500.dng'];
    for (const name of junk) await writeFile(join(dir, name), 'junk');
    await mkdir(join(dir, 'capture_20261125_101501.dng'));
    const outside = join(dirname(dir), 'outside.bin');
    await writeFile(outside, Buffer.alloc(5000));
    await symlink(outside, join(dir, 'capture_20261125_101502.dng'));

    const store = await openStore(dir);

    assert.deepEqual(await readdir(join(dir, TEMP_DIR)), []);
    assert.deepEqual(names(store.list()), [`${STEM}_001.dng`, `${STEM}.dng`]);
    const usage = store.usage();
    assert.equal(usage.used_bytes, 300);
    assert.equal(usage.image_count, 2);
    assert.equal(usage.available_bytes, 1_000_000 - 300);
    assert.ok(usage.disk_free_bytes > 0);
    const first = store.get(`${STEM}.dng`);
    assert.equal(first.created, at(0).toISOString());
    assert.equal(first.modified, (await stat(join(dir, `${STEM}.dng`))).mtime.toISOString());
    assert.deepEqual(first.delivered, []);
    // Junk is ignored, not deleted: it is not ours.
    for (const name of junk) assert.ok(existsSync(join(dir, name)), name);
    assert.ok(existsSync(outside));
  });
});

describe('commit', () => {
  test('moves the complete file into place in one step and leaves no temp file', async () => {
    const dir = newDir();
    const store = await openStore(dir);
    const base = store.tempBase();
    assert.equal(dirname(base), join(dir, TEMP_DIR));
    assert.notEqual(store.tempBase(), base);
    const tempPath = `${base}.dng`;
    const content = Buffer.from('DNG'.repeat(1000));
    await writeFile(tempPath, content);
    const tempInode = (await stat(tempPath)).ino;
    assert.deepEqual(await readdir(dir), [TEMP_DIR]);
    assert.deepEqual(store.list(), []);

    const seenAtEvent: Array<{ filename: string; size: number }> = [];
    store.on('added', (image) => seenAtEvent.push({ filename: image.filename, size: statSync(join(dir, image.filename)).size }));
    const image = await store.commit(tempPath, at(0, 250));

    assert.equal(image.filename, `${STEM}.dng`);
    assert.equal(image.size, content.length);
    assert.equal(image.created, at(0, 250).toISOString());
    assert.deepEqual(image.delivered, []);
    const final = join(dir, image.filename);
    // Same inode: the file was renamed/linked into place, never rewritten under its final name.
    assert.equal((await stat(final)).ino, tempInode);
    assert.deepEqual(await readFile(final), content);
    assert.equal(image.modified, (await stat(final)).mtime.toISOString());
    assert.deepEqual(await readdir(join(dir, TEMP_DIR)), []);
    assert.deepEqual((await readdir(dir)).sort(), [TEMP_DIR, image.filename].sort());
    assert.deepEqual(seenAtEvent, [{ filename: image.filename, size: content.length }]);
    assert.deepEqual(store.list(), [image]);
    assert.equal(store.usage().used_bytes, content.length);
  });

  test('names several captures in one second uniquely, in an order that sorts by name', async () => {
    const store = await openStore(newDir());
    const committed: string[] = [];
    for (let i = 0; i < 12; i++) committed.push((await addImage(store, 1, at(0, i * 10))).filename);
    assert.deepEqual(
      committed,
      Array.from({ length: 12 }, (_, sequence) => imageName(STEM, sequence)),
    );
    assert.deepEqual([...committed].sort(), committed);
    assert.deepEqual(names(store.list()), [...committed].reverse());
  });

  test('continues after the highest number in a second, so a freed number is not reused out of order', async () => {
    const store = await openStore(newDir());
    for (let i = 0; i < 3; i++) await addImage(store, 1, at(0, i));
    await store.delete(`${STEM}_001.dng`);
    assert.equal((await addImage(store, 1, at(0, 900))).filename, `${STEM}_003.dng`);
  });

  test('never replaces a file that was put under the same name behind its back', async () => {
    const dir = newDir();
    const store = await openStore(dir);
    await writeFile(join(dir, `${STEM}.dng`), 'theirs');
    const image = await addImage(store, 10, at(0));
    assert.equal(image.filename, `${STEM}_001.dng`);
    assert.equal(await readFile(join(dir, `${STEM}.dng`), 'utf8'), 'theirs');
  });

  test('refuses a file outside its temp dir and leaves it alone', async () => {
    const dir = newDir();
    const store = await openStore(dir);
    const elsewhere = join(dirname(dir), 'elsewhere.dng');
    await writeFile(elsewhere, 'x');
    await assert.rejects(store.commit(elsewhere, at(0)), isNodeError('storage_failed'));
    await assert.rejects(store.commit(join(dir, TEMP_DIR, 'missing.dng'), at(0)), isNodeError('storage_failed'));
    const undated = `${store.tempBase()}.dng`;
    await writeFile(undated, 'x');
    await assert.rejects(store.commit(undated, new Date(Number.NaN)), isNodeError('storage_failed'));
    await store.discard([undated]);
    assert.ok(existsSync(elsewhere));
    assert.deepEqual(store.list(), []);
    assert.deepEqual(await readdir(dir), [TEMP_DIR]);
  });

  test('accounting is in memory: a file dropped into the folder is not seen until a restart', async () => {
    const dir = newDir();
    const store = await openStore(dir, { limitBytes: 1000 });
    await addImage(store, 300, at(0));
    const dropped = 'capture_20261125_101700.dng';
    await writeFile(join(dir, dropped), Buffer.alloc(400));
    await addImage(store, 300, at(1));
    assert.deepEqual(await store.reserve(300), []);
    assert.equal(store.usage().used_bytes, 600);
    assert.ok(!names(store.list()).includes(dropped));
    assert.throws(() => store.get(dropped), isNodeError('not_found'));

    const restarted = await openStore(dir, { limitBytes: 1000 });
    assert.equal(names(restarted.list())[0], dropped);
    assert.equal(restarted.usage().used_bytes, 1000);
  });
});

describe('reserve', () => {
  /** Three images of 300 bytes, oldest first, in a store limited to 1000 bytes. */
  async function threeImages(
    overrides: Partial<StoreOptions> = {},
    logger: Logger = silent,
  ): Promise<{ store: ImageStore; dir: string; images: ImageInfo[] }> {
    const dir = newDir();
    const store = await openStore(dir, { limitBytes: 1000, ...overrides }, logger);
    const images = [await addImage(store, 300, at(0)), await addImage(store, 300, at(1)), await addImage(store, 300, at(2))];
    return { store, dir, images };
  }

  test('evicts the oldest images until the new one fits the limit, and reports each', async () => {
    const { logger, records } = capturingLogger();
    const { store, dir, images } = await threeImages({}, logger);
    const [oldest, second, newest] = images;
    assert.ok(oldest && second && newest);
    const evictions: Array<[string, string]> = [];
    store.on('evicted', (image, reason) => evictions.push([image.filename, reason]));

    assert.deepEqual(await store.reserve(100), []);
    const evicted = await store.reserve(250);

    assert.deepEqual(evicted, [oldest]);
    assert.deepEqual(evictions, [[oldest.filename, 'storage_limit']]);
    assert.ok(!existsSync(join(dir, oldest.filename)));
    assert.ok(existsSync(join(dir, second.filename)));
    assert.deepEqual(names(store.list()), [newest.filename, second.filename]);
    assert.equal(store.usage().used_bytes, 600);
    const logged = records.filter((record) => record.msg === 'image evicted');
    assert.equal(logged.length, 1);
    assert.equal(logged[0]?.level, 30);
    assert.equal(logged[0]?.part, 'store');
    assert.equal(logged[0]?.filename, oldest.filename);
    assert.equal(logged[0]?.size, 300);
    assert.equal(logged[0]?.reason, 'storage_limit');
  });

  test('evicts delivered images first, then the oldest undelivered', async () => {
    const { store, images } = await threeImages();
    const [oldest, second] = images;
    assert.ok(oldest && second);
    await store.markDelivered(second.filename, 'mqtt');
    const evicted = await store.reserve(550);
    assert.deepEqual(names(evicted), [second.filename, oldest.filename]);
    assert.deepEqual(evicted[0]?.delivered, ['mqtt']);
    assert.equal(store.usage().image_count, 1);
  });

  test('with evictUndelivered false, keeps undelivered images and fails without deleting anything', async () => {
    const { store, dir, images } = await threeImages({ evictUndelivered: false });
    const [, second] = images;
    assert.ok(second);
    await store.markDelivered(second.filename, 'http');
    const evictions: string[] = [];
    store.on('evicted', (image) => evictions.push(image.filename));

    await assert.rejects(
      store.reserve(550),
      (err: unknown) => isNodeError('storage_full')(err) && /undelivered/.test((err as Error).message),
    );
    assert.deepEqual(evictions, []);
    for (const image of images) assert.ok(existsSync(join(dir, image.filename)), image.filename);
    assert.equal(store.usage().image_count, 3);

    assert.deepEqual(names(await store.reserve(250)), [second.filename]);
    assert.deepEqual(evictions, [second.filename]);
  });

  test('an image larger than the limit fails with storage_full and deletes nothing', async () => {
    const { store, dir, images } = await threeImages();
    await assert.rejects(store.reserve(1001), (err: unknown) => {
      assert.ok(isNodeError('storage_full')(err));
      assert.match((err as Error).message, /1001/);
      assert.match((err as Error).message, /1000/);
      assert.equal((err as NodeError).httpStatus, 507);
      return true;
    });
    for (const image of images) assert.ok(existsSync(join(dir, image.filename)));
    assert.equal(store.usage().image_count, 3);
  });

  test('keeps the free-disk margin: an impossible margin fails with storage_full and deletes nothing', async () => {
    const { store, dir, images } = await threeImages({ minFreeBytes: Number.MAX_SAFE_INTEGER });
    await assert.rejects(store.reserve(1), (err: unknown) => isNodeError('storage_full')(err) && /disk/.test((err as Error).message));
    for (const image of images) assert.ok(existsSync(join(dir, image.filename)));
    assert.equal(store.usage().image_count, 3);
  });

  test('evicts for the free-disk margin when the limit alone would fit', async () => {
    let diskFree = 10_000;
    const dir = newDir();
    const store = await openStore(dir, { limitBytes: 1_000_000, minFreeBytes: 1000 }, silent, {
      diskFreeBytes: () => Promise.resolve(diskFree),
    });
    const images = [await addImage(store, 100, at(0)), await addImage(store, 100, at(1)), await addImage(store, 100, at(2))];
    assert.equal(store.usage().disk_free_bytes, 10_000);
    const evictions: Array<[string, string]> = [];
    store.on('evicted', (image, reason) => evictions.push([image.filename, reason]));

    diskFree = 1150; // 1150 - 300 < 1000: two images of 100 must go
    const evicted = await store.reserve(300);
    assert.deepEqual(names(evicted), names(images.slice(0, 2)));
    assert.deepEqual(evictions, [
      [images[0]?.filename, 'disk_space'],
      [images[1]?.filename, 'disk_space'],
    ]);
    assert.equal(store.usage().disk_free_bytes, 1150);

    diskFree = 500; // even with the last image gone the margin cannot be kept
    await assert.rejects(store.reserve(300), isNodeError('storage_full'));
    assert.equal(store.usage().image_count, 1);
  });

  test('rejects a size that is not a byte count, and rounds a fractional one up', async () => {
    const { store } = await threeImages();
    for (const bytes of [-1, Number.NaN, Number.POSITIVE_INFINITY]) await assert.rejects(store.reserve(bytes), isNodeError('internal'));
    assert.deepEqual(await store.reserve(100), []);
    assert.equal((await store.reserve(100.5)).length, 1);
    assert.equal(store.usage().image_count, 2);
  });
});

describe('delete', () => {
  test('removes the file and the index entry, then reports not_found', async () => {
    const dir = newDir();
    const store = await openStore(dir);
    const kept = await addImage(store, 100, at(0));
    const image = await addImage(store, 200, at(1));
    const deleted: string[] = [];
    store.on('deleted', (info) => deleted.push(info.filename));

    assert.deepEqual(await store.delete(image.filename), image);
    assert.ok(!existsSync(join(dir, image.filename)));
    assert.deepEqual(deleted, [image.filename]);
    assert.deepEqual(names(store.list()), [kept.filename]);
    assert.equal(store.usage().used_bytes, 100);
    await assert.rejects(store.delete(image.filename), isNodeError('not_found'));
    assert.throws(() => store.get(image.filename), isNodeError('not_found'));
    assert.deepEqual(deleted, [image.filename]);
  });

  test('a file that vanished behind its back is dropped from the index and reported not_found', async () => {
    const dir = newDir();
    const store = await openStore(dir);
    const image = await addImage(store, 100, at(0));
    await unlink(join(dir, image.filename));
    assert.deepEqual(names(store.list()), [image.filename]); // no rescan
    const deleted: string[] = [];
    store.on('deleted', (info) => deleted.push(info.filename));
    await assert.rejects(store.delete(image.filename), isNodeError('not_found'));
    assert.deepEqual(store.list(), []);
    assert.equal(store.usage().used_bytes, 0);
    assert.deepEqual(deleted, []);
  });
});

describe('delivery marks', () => {
  const readState = async (dir: string): Promise<unknown> => JSON.parse(await readFile(join(dir, STATE_FILE), 'utf8'));

  test('survive a restart, and marks of deleted images are dropped', async () => {
    const dir = newDir();
    const store = await openStore(dir);
    const a = await addImage(store, 10, at(0));
    const b = await addImage(store, 10, at(1));
    const c = await addImage(store, 10, at(2));
    await store.markDelivered(a.filename, 'mqtt');
    await store.markDelivered(a.filename, 'http');
    await store.markDelivered(a.filename, 'mqtt');
    await store.markDelivered(b.filename, 'mqtt');
    await store.delete(b.filename);
    await store.stop();
    assert.deepEqual(await readState(dir), { version: 1, delivered: { [a.filename]: ['mqtt', 'http'] } });

    const restarted = await openStore(dir);
    assert.deepEqual(restarted.get(a.filename).delivered, ['mqtt', 'http']);
    assert.deepEqual(restarted.get(c.filename).delivered, []);
    assert.deepEqual(names(restarted.list()), [c.filename, a.filename]);
  });

  test('reject unknown images and bad channel names', async () => {
    const store = await openStore(newDir());
    const image = await addImage(store, 10, at(0));
    await assert.rejects(store.markDelivered(`${STEM}_005.dng`, 'mqtt'), isNodeError('not_found'));
    for (const channel of ['', 'MQTT', 'a/b', 'x'.repeat(100)])
      await assert.rejects(store.markDelivered(image.filename, channel), isNodeError('bad_request'));
    assert.deepEqual(store.get(image.filename).delivered, []);
  });

  test('stop() waits for a pending write', async () => {
    const dir = newDir();
    const store = await openStore(dir);
    const image = await addImage(store, 10, at(0));
    const pending = store.markDelivered(image.filename, 'mqtt');
    await store.stop();
    assert.deepEqual(await readState(dir), { version: 1, delivered: { [image.filename]: ['mqtt'] } });
    await pending;
  });

  test('a corrupt state file does not stop the store from starting', async () => {
    const dir = newDir();
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, `${STEM}.dng`), 'x');
    await writeFile(join(dir, STATE_FILE), '{"delivered": {"capture_2026');
    const store = await openStore(dir);
    assert.deepEqual(store.get(`${STEM}.dng`).delivered, []);
  });

  test('marks of images that are gone are dropped from the file at start', async () => {
    const dir = newDir();
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, `${STEM}.dng`), 'x');
    const gone = 'capture_20261125_101459.dng';
    await writeFile(
      join(dir, STATE_FILE),
      JSON.stringify({ version: 1, delivered: { [`${STEM}.dng`]: ['http'], [gone]: ['mqtt'], '../x': ['mqtt'] } }),
    );
    const store = await openStore(dir);
    assert.deepEqual(store.get(`${STEM}.dng`).delivered, ['http']);
    assert.deepEqual(await readState(dir), { version: 1, delivered: { [`${STEM}.dng`]: ['http'] } });
    // A later image under the old name must not inherit the old mark.
    const image = await addImage(store, 5, new Date(2026, 10, 25, 10, 14, 59));
    assert.equal(image.filename, gone);
    assert.deepEqual(image.delivered, []);
  });

  test('stay consistent when marks, deletes and evictions interleave', async () => {
    const dir = newDir();
    const store = await openStore(dir, { limitBytes: 1000 });
    const images: ImageInfo[] = [];
    for (let i = 0; i < 10; i++) images.push(await addImage(store, 100, at(i)));
    const [first, second, third] = images;
    assert.ok(first && second && third);
    // Deliver everything except the first two, while deleting the third and reserving room that
    // evicts the two oldest delivered images (the fourth and fifth).
    const marks = images.slice(2).map((image) => store.markDelivered(image.filename, 'mqtt').catch((err: unknown) => err));
    const deletion = store.delete(third.filename);
    const reservation = store.reserve(300);
    await Promise.all([...marks, deletion]);
    const evicted = await reservation;
    await store.stop();

    const remaining = store.list();
    assert.ok(!names(remaining).includes(third.filename));
    for (const image of evicted) assert.ok(!existsSync(join(dir, image.filename)));
    const expected = Object.fromEntries(
      remaining.filter((image) => image.delivered.length > 0).map((image) => [image.filename, image.delivered]),
    );
    assert.deepEqual(await readState(dir), { version: 1, delivered: expected });
    assert.ok(store.usage().used_bytes + 300 <= 1000);
    assert.equal(store.usage().used_bytes, remaining.length * 100);
    assert.ok(
      names(remaining).includes(first.filename) && names(remaining).includes(second.filename),
      'undelivered images are evicted last',
    );
  });
});

describe('store instances and events', () => {
  test('two stores in one process are independent', async () => {
    const one = await openStore(newDir());
    const two = await openStore(newDir(), { limitBytes: 500 });
    const addedToTwo: string[] = [];
    two.on('added', (image) => addedToTwo.push(image.filename));
    const a = await addImage(one, 100, at(0));
    const b = await addImage(two, 200, at(0));
    // No shared counter: each store starts the second at its own first name.
    assert.equal(a.filename, `${STEM}.dng`);
    assert.equal(b.filename, `${STEM}.dng`);
    assert.deepEqual(addedToTwo, [b.filename]);
    await one.markDelivered(a.filename, 'mqtt');
    assert.deepEqual(two.get(b.filename).delivered, []);
    assert.deepEqual(one.usage(), { ...one.usage(), used_bytes: 100, limit_bytes: 1_000_000, image_count: 1 });
    assert.deepEqual(two.usage(), { ...two.usage(), used_bytes: 200, limit_bytes: 500, available_bytes: 300, image_count: 1 });
    await one.delete(a.filename);
    assert.equal(two.usage().image_count, 1);
  });

  test('a listener that throws or rejects does not break the store or the other listeners', async () => {
    const { logger, records } = capturingLogger();
    const store = await openStore(newDir(), {}, logger);
    const heard: string[] = [];
    store.on('added', () => {
      throw new Error('listener bug');
    });
    store.on('added', () => Promise.reject(new Error('async listener bug')));
    const listener = (image: ImageInfo): void => void heard.push(image.filename);
    store.on('added', listener);

    const image = await addImage(store, 10, at(0));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(heard, [image.filename]);
    assert.deepEqual(names(store.list()), [image.filename]);
    assert.equal(records.filter((record) => record.msg === 'store event listener failed').length, 2);

    store.off('added', listener);
    await addImage(store, 10, at(1));
    assert.deepEqual(heard, [image.filename]);
  });

  test('discard removes temp files, ignores missing ones, never throws, and leaves other paths alone', async () => {
    const dir = newDir();
    const store = await openStore(dir);
    const base = store.tempBase();
    await writeFile(`${base}.dng`, 'x');
    await writeFile(`${base}.jpg`, 'x');
    const elsewhere = join(dirname(dir), 'not-a-temp-file.dng');
    await writeFile(elsewhere, 'x');
    await store.discard([`${base}.dng`, `${base}.jpg`, `${base}.json`, elsewhere, join(dir, TEMP_DIR)]);
    assert.deepEqual(await readdir(join(dir, TEMP_DIR)), []);
    assert.ok(existsSync(elsewhere));
  });

  test('operations before start() fail cleanly', async () => {
    const store = createImageStore({ dir: newDir(), limitBytes: 1000, minFreeBytes: 0, evictUndelivered: true }, silent);
    await assert.rejects(store.reserve(1), isNodeError('storage_failed'));
    assert.deepEqual(store.list(), []);
  });
});
