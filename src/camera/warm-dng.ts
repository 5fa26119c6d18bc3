import { open, type FileHandle } from 'node:fs/promises';

/**
 * Whether a DNG the camera app is still writing is complete, read from its TIFF structure rather
 * than guessed from its size settling. rpicam-still writes the DNG through libtiff in this order
 * (its image/dng.cpp through libtiff): IFD0 (the thumbnail), the raw directory with its strip not yet written, the raw
 * strip, the raw directory again, the EXIF IFD, and last IFD0 again (libtiff 4.7 moves it to the end
 * and zeroes the header's pointer meanwhile). So a DNG is complete when every IFD reachable from
 * the header lies within the file, every strip of every image IFD lies within the file, and a
 * full-resolution image (NewSubFileType 0) is among them.
 *
 * `final` says whether the structure also proves the app is done with the file:
 *  - colour sensors: IFD0's SubIFD / EXIF pointers are 0 until the final rewrite, so non-zero
 *    pointers mean the last write happened;
 *  - mono sensors: dng.cpp writes no such pointers (the raw image is IFD0's next directory), so
 *    nothing in the structure tells the complete raw image from the finished file: the EXIF IFD and
 *    IFD0's rewrite may still be on their way. The caller needs other evidence (the metadata file,
 *    which the app writes after closing the DNG).
 */
export type DngCheck = { complete: true; size: number; final: boolean } | { complete: false; size: number; reason: string };

const TAG_NEW_SUBFILE_TYPE = 254;
const TAG_STRIP_OFFSETS = 273;
const TAG_STRIP_BYTE_COUNTS = 279;
const TAG_TILE_OFFSETS = 324;
const TAG_TILE_BYTE_COUNTS = 325;
const TAG_SUB_IFDS = 330;
const TAG_EXIF_IFD = 34665;

/** Bytes per value of each TIFF field type (1 BYTE … 13 IFD). */
const TYPE_SIZES: Readonly<Record<number, number>> = { 1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4 };

/** Far above what any camera writes; keeps a corrupt count from making us read megabytes. */
const MAX_ENTRIES = 4096;
const MAX_VALUES = 65_536;
const MAX_SUB_IFDS = 16;
/** Directories followed along IFD0's chain (a thumbnail, a raw image, maybe a preview). */
const MAX_CHAIN = 8;

class Incomplete extends Error {}

interface Ifd {
  entries: Map<number, Entry>;
  /** The offset of the next directory in the chain (0 = last). */
  next: number;
}

interface Entry {
  type: number;
  count: number;
  /** File offset of the entry's 4-byte value/offset field. */
  field: number;
}

interface Reader {
  size: number;
  little: boolean;
  read(offset: number, length: number): Promise<Buffer>;
}

function u16(reader: Reader, buf: Buffer, at: number): number {
  return reader.little ? buf.readUInt16LE(at) : buf.readUInt16BE(at);
}

function u32(reader: Reader, buf: Buffer, at: number): number {
  return reader.little ? buf.readUInt32LE(at) : buf.readUInt32BE(at);
}

async function readIfd(reader: Reader, offset: number, what: string): Promise<Ifd> {
  if (offset === 0) throw new Incomplete(`${what} not linked yet`);
  if (offset < 8 || offset + 2 > reader.size) throw new Incomplete(`${what} beyond the end of the file`);
  const count = u16(reader, await reader.read(offset, 2), 0);
  if (count === 0 || count > MAX_ENTRIES) throw new Incomplete(`${what} has ${count} entries`);
  const length = 12 * count;
  if (offset + 2 + length + 4 > reader.size) throw new Incomplete(`${what} cut short`);
  const buf = await reader.read(offset + 2, length);
  const entries = new Map<number, Entry>();
  for (let i = 0; i < count; i++) {
    const at = i * 12;
    entries.set(u16(reader, buf, at), { type: u16(reader, buf, at + 2), count: u32(reader, buf, at + 4), field: offset + 2 + at + 8 });
  }
  const next = u32(reader, await reader.read(offset + 2 + length, 4), 0);
  return { entries, next };
}

/** The unsigned integer values of an entry (SHORT, LONG or IFD); inline when they fit in 4 bytes. */
async function integers(reader: Reader, entry: Entry, what: string): Promise<number[]> {
  const size = TYPE_SIZES[entry.type];
  if (size === undefined || ![3, 4, 13].includes(entry.type)) throw new Incomplete(`${what}: unexpected field type ${entry.type}`);
  if (entry.count === 0 || entry.count > MAX_VALUES) throw new Incomplete(`${what}: ${entry.count} values`);
  const bytes = size * entry.count;
  let buf: Buffer;
  let base = 0;
  if (bytes <= 4) {
    buf = await reader.read(entry.field, 4);
  } else {
    const field = await reader.read(entry.field, 4);
    base = u32(reader, field, 0);
    if (base === 0 || base + bytes > reader.size) throw new Incomplete(`${what}: values beyond the end of the file`);
    buf = await reader.read(base, bytes);
    base = 0;
  }
  const values: number[] = [];
  for (let i = 0; i < entry.count; i++) values.push(size === 2 ? u16(reader, buf, base + i * 2) : u32(reader, buf, base + i * 4));
  return values;
}

async function checkImageData(reader: Reader, ifd: Map<number, Entry>, what: string): Promise<void> {
  const offsetsEntry = ifd.get(TAG_STRIP_OFFSETS) ?? ifd.get(TAG_TILE_OFFSETS);
  const countsEntry = ifd.get(TAG_STRIP_BYTE_COUNTS) ?? ifd.get(TAG_TILE_BYTE_COUNTS);
  if (!offsetsEntry || !countsEntry) throw new Incomplete(`${what} has no image data`);
  const offsets = await integers(reader, offsetsEntry, `${what} strip offsets`);
  const counts = await integers(reader, countsEntry, `${what} strip byte counts`);
  if (offsets.length !== counts.length) throw new Incomplete(`${what}: ${offsets.length} strips but ${counts.length} byte counts`);
  offsets.forEach((offset, i) => {
    const length = counts[i] ?? 0;
    if (offset === 0 || length === 0 || offset + length > reader.size)
      throw new Incomplete(`${what}: strip ${i} beyond the end of the file`);
  });
}

/** Whether an image IFD holds the full-resolution image (NewSubFileType 0, or absent). */
async function isFullResolution(reader: Reader, ifd: Map<number, Entry>, what: string): Promise<boolean> {
  const type = ifd.get(TAG_NEW_SUBFILE_TYPE);
  if (!type) return true;
  const [value = 0] = await integers(reader, type, `${what} NewSubFileType`);
  return value === 0;
}

async function checkStructure(reader: Reader): Promise<{ final: boolean }> {
  if (reader.size < 8) throw new Incomplete('no TIFF header yet');
  const header = await reader.read(0, 8);
  const order = header.toString('latin1', 0, 2);
  if (order !== 'II' && order !== 'MM') throw new Incomplete('no TIFF header yet');
  reader.little = order === 'II';
  if (u16(reader, header, 2) !== 42) throw new Incomplete('not a classic TIFF');
  const ifd0 = await readIfd(reader, u32(reader, header, 4), 'IFD0');
  await checkImageData(reader, ifd0.entries, 'IFD0');
  let fullResolution = await isFullResolution(reader, ifd0.entries, 'IFD0');
  const subIfds = ifd0.entries.get(TAG_SUB_IFDS);
  if (subIfds) {
    const offsets = await integers(reader, subIfds, 'SubIFDs');
    if (offsets.length > MAX_SUB_IFDS) throw new Incomplete(`${offsets.length} SubIFDs`);
    for (const [i, offset] of offsets.entries()) {
      const sub = await readIfd(reader, offset, `SubIFD ${i}`);
      await checkImageData(reader, sub.entries, `SubIFD ${i}`);
      if (await isFullResolution(reader, sub.entries, `SubIFD ${i}`)) fullResolution = true;
    }
  }
  const exif = ifd0.entries.get(TAG_EXIF_IFD);
  if (exif) {
    const [offset = 0] = await integers(reader, exif, 'EXIF pointer');
    await readIfd(reader, offset, 'EXIF IFD');
  }
  // The chain after IFD0: where a mono DNG keeps its raw image.
  const seen = new Set<number>();
  for (let next = ifd0.next, n = 1; next !== 0; n++) {
    if (n > MAX_CHAIN || seen.has(next)) throw new Incomplete('IFD chain too long or looping');
    seen.add(next);
    const ifd = await readIfd(reader, next, `IFD${n}`);
    await checkImageData(reader, ifd.entries, `IFD${n}`);
    if (await isFullResolution(reader, ifd.entries, `IFD${n}`)) fullResolution = true;
    next = ifd.next;
  }
  if (!fullResolution) throw new Incomplete('no full-resolution image linked yet');
  // Non-zero pointers (checked above) are written only by the app's last rewrite of IFD0.
  return { final: subIfds !== undefined || exif !== undefined };
}

async function checkOpen(handle: FileHandle): Promise<DngCheck> {
  const { size } = await handle.stat();
  const reader: Reader = {
    size,
    little: true,
    async read(offset, length) {
      const buf = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buf, 0, length, offset);
      if (bytesRead < length) throw new Incomplete('file shorter than its own size');
      return buf;
    },
  };
  try {
    const { final } = await checkStructure(reader);
    return { complete: true, size, final };
  } catch (err) {
    if (err instanceof Incomplete) return { complete: false, size, reason: err.message };
    throw err;
  }
}

/** Reads only the header and IFDs (a few hundred bytes), never the pixel data. A missing file is incomplete. */
export async function checkDng(path: string): Promise<DngCheck> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { complete: false, size: 0, reason: 'not written yet' };
    throw err;
  }
  try {
    return await checkOpen(handle);
  } finally {
    await handle.close();
  }
}
