import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkDng } from '../src/camera/warm-dng.js';

/** A TIFF IFD: entries (tag, type, values), little-endian; values that do not fit in 4 bytes go to `dataAt`. */
function ifdBytes(entries: Array<[tag: number, type: 3 | 4, values: number[]]>, at: number): Buffer {
  const sorted = [...entries].sort((a, b) => a[0] - b[0]);
  const head = Buffer.alloc(2 + sorted.length * 12 + 4);
  const extra: Buffer[] = [];
  let dataAt = at + head.length;
  head.writeUInt16LE(sorted.length, 0);
  sorted.forEach(([tag, type, values], i) => {
    const p = 2 + i * 12;
    head.writeUInt16LE(tag, p);
    head.writeUInt16LE(type, p + 2);
    head.writeUInt32LE(values.length, p + 4);
    const size = type === 3 ? 2 : 4;
    const data = Buffer.alloc(values.length * size);
    for (const [k, v] of values.entries()) {
      if (size === 2) data.writeUInt16LE(v, k * 2);
      else data.writeUInt32LE(v, k * 4);
    }
    if (data.length <= 4) data.copy(head, p + 8);
    else {
      head.writeUInt32LE(dataAt, p + 8);
      extra.push(data);
      dataAt += data.length;
    }
  });
  return Buffer.concat([head, ...extra]);
}

/**
 * Writes a DNG in the order libtiff does for rpicam-still, calling `step` after each stage with what a
 * reader would see: header, thumbnail strip, IFD0 with zero SubIFD/EXIF pointers, raw strips, raw
 * IFD, EXIF IFD, and IFD0 rewritten with the real pointers.
 */
async function writeLikeLibtiff(path: string, step: (stage: string) => Promise<void>): Promise<number> {
  const handle = await open(path, 'w');
  let end = 0;
  const append = async (buf: Buffer): Promise<number> => {
    const at = end;
    await handle.write(buf, 0, buf.length, at);
    end += buf.length;
    return at;
  };
  try {
    const header = Buffer.from([0x49, 0x49, 42, 0, 0, 0, 0, 0]);
    await append(header);
    await step('header');
    const thumb = await append(Buffer.alloc(4 * 3 * 3, 7));
    await step('thumbnail strip');
    const ifd0Entries = (sub: number, exif: number): Array<[number, 3 | 4, number[]]> => [
      [254, 4, [1]],
      [256, 4, [4]],
      [257, 4, [3]],
      [273, 4, [thumb]],
      [279, 4, [36]],
      [330, 4, [sub]],
      [34665, 4, [exif]],
    ];
    const ifd0At = end;
    await append(ifdBytes(ifd0Entries(0, 0), ifd0At));
    await handle.write(Buffer.from([ifd0At & 0xff, (ifd0At >> 8) & 0xff, 0, 0]), 0, 4, 4);
    await step('IFD0 with zero pointers');
    const rows = 8;
    const rowBytes = 64;
    const strips: number[] = [];
    for (let r = 0; r < rows; r++) {
      strips.push(await append(Buffer.alloc(rowBytes, r)));
      if (r === rows / 2) await step('half the raw strips');
    }
    const rawAt = end;
    await append(
      ifdBytes(
        [
          [254, 4, [0]],
          [256, 4, [32]],
          [257, 4, [rows]],
          [273, 4, strips],
          [279, 4, strips.map(() => rowBytes)],
        ],
        rawAt,
      ),
    );
    await step('raw IFD');
    const exifAt = end;
    await append(ifdBytes([[34855, 3, [100]]], exifAt));
    await step('EXIF IFD');
    const finalAt = end;
    await append(ifdBytes(ifd0Entries(rawAt, exifAt), finalAt));
    await handle.write(Buffer.from([finalAt & 0xff, (finalAt >> 8) & 0xff, 0, 0]), 0, 4, 4);
    return end;
  } finally {
    await handle.close();
  }
}

describe('DNG completeness from the TIFF structure', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'camera-node-dng-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('a DNG is incomplete at every stage libtiff writes and complete only after IFD0 is rewritten', async () => {
    const path = join(dir, 'frame.dng');
    const seen: string[] = [];
    const size = await writeLikeLibtiff(path, async (stage) => {
      const check = await checkDng(path);
      assert.equal(check.complete, false, `complete too early, after: ${stage}`);
      seen.push(stage);
    });
    assert.equal(seen.length, 6);
    assert.deepEqual(await checkDng(path), { complete: true, size, final: true });
  });

  test('a complete DNG cut short is incomplete again', async () => {
    const path = join(dir, 'cut.dng');
    await writeLikeLibtiff(path, async () => undefined);
    assert.equal((await checkDng(path)).complete, true);
    // The rewritten IFD0 sits at the end: losing the tail loses what the header points at.
    const check = await checkDng(path);
    await truncate(path, check.size - 200);
    const cut = await checkDng(path);
    assert.equal(cut.complete, false);
  });

  test('strips that run past the end of the file make it incomplete even with every IFD in place', async () => {
    const path = join(dir, 'short-strip.dng');
    // IFD0 first, pointing at a strip that has not been written yet.
    const ifd = ifdBytes(
      [
        [256, 4, [4]],
        [257, 4, [3]],
        [273, 4, [4096]],
        [279, 4, [36]],
      ],
      8,
    );
    await writeFile(path, Buffer.concat([Buffer.from([0x49, 0x49, 42, 0, 8, 0, 0, 0]), ifd]));
    const check = await checkDng(path);
    assert.equal(check.complete, false);
    assert.match(check.complete ? '' : check.reason, /strip 0 beyond the end/);
    const handle = await open(path, 'r+');
    await handle.write(Buffer.alloc(36, 1), 0, 36, 4096);
    await handle.close();
    assert.equal((await checkDng(path)).complete, true);
  });

  test('a missing file, an empty one and one that is not a TIFF are incomplete, not errors', async () => {
    assert.equal((await checkDng(join(dir, 'absent.dng'))).complete, false);
    await writeFile(join(dir, 'empty.dng'), '');
    assert.equal((await checkDng(join(dir, 'empty.dng'))).complete, false);
    await writeFile(join(dir, 'text.dng'), 'not a tiff at all, just text padding it out');
    const text = await checkDng(join(dir, 'text.dng'));
    assert.equal(text.complete, false);
    assert.match(text.complete ? '' : text.reason, /header/);
  });
});
