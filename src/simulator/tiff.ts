/**
 * Little-endian TIFF IFDs, as both the DNG and the EXIF block of the JPEG need them. An IFD is laid
 * out at a known offset: its entries, the next-IFD link, then the values too long to sit in an entry.
 */

/** IFD (13) is what libtiff gives the SubIFDs and ExifIFD pointer tags: a LONG that names a directory. */
export const TYPE = { BYTE: 1, ASCII: 2, SHORT: 3, LONG: 4, RATIONAL: 5, SRATIONAL: 10, IFD: 13 } as const;
type TypeName = keyof typeof TYPE;

const SIZES: Readonly<Record<TypeName, number>> = { BYTE: 1, ASCII: 1, SHORT: 2, LONG: 4, RATIONAL: 8, SRATIONAL: 8, IFD: 4 };

export interface TiffEntry {
  tag: number;
  type: TypeName;
  /** ASCII: the text (a NUL is added); RATIONAL/SRATIONAL: numerator, denominator pairs, flattened. */
  value: string | readonly number[];
}

function count(entry: TiffEntry): number {
  if (typeof entry.value === 'string') return Buffer.byteLength(entry.value, 'latin1') + 1;
  const isRational = entry.type === 'RATIONAL' || entry.type === 'SRATIONAL';
  return isRational ? entry.value.length / 2 : entry.value.length;
}

const dataBytes = (entry: TiffEntry): number => count(entry) * SIZES[entry.type];
const even = (n: number): number => n + (n & 1);

/** Bytes an IFD with these entries takes, its out-of-line values included (always even). */
export function ifdByteLength(entries: readonly TiffEntry[]): number {
  let length = 2 + entries.length * 12 + 4;
  for (const entry of entries) {
    const bytes = dataBytes(entry);
    if (bytes > 4) length += even(bytes);
  }
  return length;
}

function writeValues(buf: Buffer, at: number, entry: TiffEntry): void {
  if (typeof entry.value === 'string') {
    buf.write(entry.value, at, 'latin1');
    buf[at + Buffer.byteLength(entry.value, 'latin1')] = 0;
    return;
  }
  const values = entry.value;
  for (let i = 0; i < values.length; i++) {
    const v = values[i] ?? 0;
    switch (entry.type) {
      case 'BYTE':
        buf.writeUInt8(v, at + i);
        break;
      case 'SHORT':
        buf.writeUInt16LE(v, at + i * 2);
        break;
      case 'LONG':
      case 'IFD':
      case 'RATIONAL':
        buf.writeUInt32LE(v, at + i * 4);
        break;
      case 'SRATIONAL':
        buf.writeInt32LE(v, at + i * 4);
        break;
      case 'ASCII':
        break;
    }
  }
}

/** The IFD at file offset `at` (even), linking to `next` (0 = last). Entries are sorted by tag, as TIFF requires. */
export function buildIfd(entries: readonly TiffEntry[], at: number, next = 0): Buffer {
  const sorted = [...entries].sort((a, b) => a.tag - b.tag);
  const buf = Buffer.alloc(ifdByteLength(sorted));
  buf.writeUInt16LE(sorted.length, 0);
  let extra = 2 + sorted.length * 12 + 4;
  sorted.forEach((entry, i) => {
    const p = 2 + i * 12;
    buf.writeUInt16LE(entry.tag, p);
    buf.writeUInt16LE(TYPE[entry.type], p + 2);
    buf.writeUInt32LE(count(entry), p + 4);
    const bytes = dataBytes(entry);
    if (bytes <= 4) {
      writeValues(buf, p + 8, entry);
    } else {
      buf.writeUInt32LE(at + extra, p + 8);
      writeValues(buf, extra, entry);
      extra += even(bytes);
    }
  });
  buf.writeUInt32LE(next, 2 + sorted.length * 12);
  return buf;
}

/** `II*\0` and the offset of the first IFD. */
export function tiffHeader(firstIfd: number): Buffer {
  const buf = Buffer.from([0x49, 0x49, 42, 0, 0, 0, 0, 0]);
  buf.writeUInt32LE(firstIfd, 4);
  return buf;
}

/** A positive number as a RATIONAL with a fixed denominator (exposure times, neutral values). */
export function rational(value: number, denominator = 1_000_000): [number, number] {
  return [Math.max(0, Math.round(value * denominator)), denominator];
}

/** The EXIF date format, `YYYY:MM:DD hh:mm:ss`, local time as the camera's clock shows it. */
export function exifDate(date: Date): string {
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${date.getFullYear()}:${pad(date.getMonth() + 1)}:${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}
