/**
 * The EXIF thumbnail of a JPEG: SOI, then an APP1 `Exif\0\0` segment holding a TIFF structure whose
 * second IFD (IFD1) points at a small JPEG (JPEGInterchangeFormat / JPEGInterchangeFormatLength).
 * Reads only the buffer it is given (the first segments of the file are enough) and never throws:
 * anything malformed, truncated or absent gives null.
 */

const SOI = 0xd8;
const APP1 = 0xe1;
const SOS = 0xda;
const EOI = 0xd9;
const TAG_JPEG_OFFSET = 0x0201;
const TAG_JPEG_LENGTH = 0x0202;
/** Bounds a corrupt entry count (a real IFD1 has a handful of entries). */
const MAX_IFD_ENTRIES = 1000;

interface Tiff {
  data: Buffer;
  little: boolean;
}

function u16(tiff: Tiff, at: number): number | null {
  if (at < 0 || at + 2 > tiff.data.length) return null;
  return tiff.little ? tiff.data.readUInt16LE(at) : tiff.data.readUInt16BE(at);
}

function u32(tiff: Tiff, at: number): number | null {
  if (at < 0 || at + 4 > tiff.data.length) return null;
  return tiff.little ? tiff.data.readUInt32LE(at) : tiff.data.readUInt32BE(at);
}

/** The APP1 segment body that starts with `Exif\0\0`, minus that header. */
function findExif(buf: Buffer): Buffer | null {
  if (buf.length < 4 || buf[0] !== 0xff || buf[1] !== SOI) return null;
  let at = 2;
  while (at + 4 <= buf.length) {
    if (buf[at] !== 0xff) return null;
    const marker = buf[at + 1] ?? 0;
    if (marker === 0xff) {
      at += 1; // fill byte
      continue;
    }
    if (marker === SOS || marker === EOI) return null;
    const length = buf.readUInt16BE(at + 2);
    if (length < 2) return null;
    const body = buf.subarray(at + 4, Math.min(buf.length, at + 2 + length));
    if (marker === APP1 && body.length >= 6 && body.toString('latin1', 0, 6) === 'Exif\0\0') return body.subarray(6);
    at += 2 + length;
  }
  return null;
}

/** Entry values of a LONG or SHORT tag inside the IFD at `offset`. */
function ifdValues(tiff: Tiff, offset: number): { values: Map<number, number>; next: number | null } | null {
  const count = u16(tiff, offset);
  if (count === null || count === 0 || count > MAX_IFD_ENTRIES) return null;
  const values = new Map<number, number>();
  for (let i = 0; i < count; i++) {
    const entry = offset + 2 + i * 12;
    const tag = u16(tiff, entry);
    const type = u16(tiff, entry + 2);
    if (tag === null || type === null) return null;
    const value = type === 3 ? u16(tiff, entry + 8) : type === 4 ? u32(tiff, entry + 8) : null;
    if (value !== null) values.set(tag, value);
  }
  return { values, next: u32(tiff, offset + 2 + count * 12) };
}

export function extractExifThumbnail(buf: Buffer): Buffer | null {
  try {
    const exif = findExif(buf);
    if (!exif || exif.length < 8) return null;
    const order = exif.toString('latin1', 0, 2);
    if (order !== 'II' && order !== 'MM') return null;
    const tiff: Tiff = { data: exif, little: order === 'II' };
    if (u16(tiff, 2) !== 42) return null;
    const ifd0Offset = u32(tiff, 4);
    if (ifd0Offset === null || ifd0Offset < 8) return null;
    const ifd0 = ifdValues(tiff, ifd0Offset);
    if (!ifd0?.next || ifd0.next < 8 || ifd0.next === ifd0Offset) return null;
    const ifd1 = ifdValues(tiff, ifd0.next);
    const offset = ifd1?.values.get(TAG_JPEG_OFFSET);
    const length = ifd1?.values.get(TAG_JPEG_LENGTH);
    if (offset === undefined || length === undefined || offset < 8 || length < 4 || offset + length > exif.length) return null;
    const thumbnail = exif.subarray(offset, offset + length);
    if (thumbnail[0] !== 0xff || thumbnail[1] !== SOI) return null;
    // A copy: the caller may keep the thumbnail long after dropping the (larger) buffer it came from.
    return Buffer.from(thumbnail);
  } catch {
    return null;
  }
}
