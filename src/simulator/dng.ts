import { blackLevel, cfaColours, renderBayer, renderRgb, type Scene } from './pattern.js';
import type { CfaOrder } from './sensors.js';
import { buildIfd, exifDate, ifdByteLength, rational, tiffHeader, type TiffEntry } from './tiff.js';

/**
 * The DNG rpicam-still writes with `-r` (its `image/dng.cpp`, through libtiff), byte for byte in
 * layout and in write order (replayed from dng.cpp's calls into libtiff 4.5 and 4.7):
 *  - little-endian TIFF; IFD0 is an 8-bit RGB thumbnail at 1/16 scale (grey, as the app makes it)
 *    carrying the DNG tags;
 *  - colour sensors: the raw CFA image (16-bit words, uncompressed, ONE strip) in a SubIFD and an
 *    EXIF IFD, both pointed at from IFD0 with tags of type IFD (13), 0 until the final rewrite;
 *  - mono sensors: no colour tags and no SubIFD / EXIF pointers (dng.cpp sets them for colour
 *    only), so libtiff links the LinearRaw image as the next directory after IFD0;
 *  - the raw directory is checkpointed (its strip offset and count still 0) before the pixel data,
 *    which follows it in one write, then rewritten in place with the strip;
 *  - the EXIF IFD carries the stray Compression / StripOffsets=0 / StripByteCounts=0 entries
 *    libtiff gives a custom directory written this way;
 *  - last, IFD0 again: libtiff 4.5 rewrites it in place; 4.7 zeroes the header's IFD0 pointer,
 *    writes IFD0 at the end of the file and points the header at it.
 * Until that final write a reader following the structure of a colour DNG sees an unfinished file.
 */

export interface DngInput {
  scene: Scene;
  sensorName: string;
  width: number;
  height: number;
  bits: number;
  cfa: CfaOrder;
  exposureUs: number;
  analogueGain: number;
  date: Date;
  libtiff: '4.5' | '4.7';
}

/** One write: `data` at file offset `position`. */
export interface FilePiece {
  position: number;
  data: Buffer;
  /** The raw pixel data: the bulk of the file (written in throttled chunks). */
  bulk?: boolean;
}

export interface DngLayout {
  pieces: FilePiece[];
  size: number;
}

/**
 * A colour matrix (XYZ → camera) of the kind the tuning files give an HQ camera; the simulated
 * sensors share it, since only its presence and shape matter to readers.
 */
const COLOR_MATRIX = [0.7003, -0.1994, -0.0642, -0.4136, 1.2131, 0.2257, -0.0559, 0.1535, 0.6017];

const srationals = (values: readonly number[]): number[] => values.flatMap((v) => [Math.round(v * 10_000), 10_000]);

const isMono = (input: DngInput): boolean => input.cfa === 'MONO';
const even = (n: number): number => n + (n & 1);

function ifd0Entries(
  input: DngInput,
  thumb: { width: number; height: number; offset: number },
  subIfd: number,
  exifIfd: number,
): TiffEntry[] {
  const [redGain, blueGain] = input.scene.colourGains;
  const entries: TiffEntry[] = [
    { tag: 254, type: 'LONG', value: [1] }, // NewSubFileType: reduced-resolution image
    { tag: 256, type: 'LONG', value: [thumb.width] },
    { tag: 257, type: 'LONG', value: [thumb.height] },
    { tag: 258, type: 'SHORT', value: [8, 8, 8] },
    { tag: 259, type: 'SHORT', value: [1] },
    { tag: 262, type: 'SHORT', value: [2] }, // RGB
    { tag: 271, type: 'ASCII', value: 'Raspberry Pi' },
    { tag: 272, type: 'ASCII', value: input.sensorName },
    { tag: 273, type: 'LONG', value: [thumb.offset] },
    { tag: 274, type: 'SHORT', value: [1] },
    { tag: 277, type: 'SHORT', value: [3] },
    { tag: 278, type: 'LONG', value: [thumb.height] },
    { tag: 279, type: 'LONG', value: [thumb.width * thumb.height * 3] },
    { tag: 284, type: 'SHORT', value: [1] },
    { tag: 305, type: 'ASCII', value: 'rpicam-still' },
    { tag: 50706, type: 'BYTE', value: [1, 1, 0, 0] },
    { tag: 50707, type: 'BYTE', value: [1, 0, 0, 0] },
    { tag: 50708, type: 'ASCII', value: `Raspberry Pi ${input.sensorName}` },
  ];
  if (isMono(input)) return entries;
  return [
    ...entries,
    { tag: 330, type: 'IFD', value: [subIfd] },
    { tag: 34665, type: 'IFD', value: [exifIfd] },
    { tag: 50721, type: 'SRATIONAL', value: srationals(COLOR_MATRIX) },
    { tag: 50728, type: 'RATIONAL', value: [...rational(1 / redGain), ...rational(1), ...rational(1 / blueGain)] },
    { tag: 50778, type: 'SHORT', value: [21] }, // D65
  ];
}

function rawEntries(input: DngInput, strip: { offset: number; bytes: number }): TiffEntry[] {
  const black = blackLevel(input.bits);
  const entries: TiffEntry[] = [
    { tag: 254, type: 'LONG', value: [0] },
    { tag: 256, type: 'LONG', value: [input.width] },
    { tag: 257, type: 'LONG', value: [input.height] },
    { tag: 258, type: 'SHORT', value: [16] },
    { tag: 259, type: 'SHORT', value: [1] },
    { tag: 262, type: 'SHORT', value: [isMono(input) ? 34892 : 32803] }, // LinearRaw or CFA
    { tag: 273, type: 'LONG', value: [strip.offset] },
    { tag: 277, type: 'SHORT', value: [1] },
    // ROWSPERSTRIP is never set, so libtiff writes the whole image as one strip of all its rows.
    { tag: 278, type: 'LONG', value: [input.height] },
    { tag: 279, type: 'LONG', value: [strip.bytes] },
    { tag: 284, type: 'SHORT', value: [1] },
    { tag: 50717, type: 'LONG', value: [2 ** input.bits - 1] },
  ];
  if (isMono(input)) {
    return [...entries, { tag: 50713, type: 'SHORT', value: [1, 1] }, { tag: 50714, type: 'LONG', value: [black] }];
  }
  return [
    ...entries,
    { tag: 33421, type: 'SHORT', value: [2, 2] },
    { tag: 33422, type: 'BYTE', value: cfaColours(input.cfa) },
    { tag: 50713, type: 'SHORT', value: [2, 2] },
    { tag: 50714, type: 'LONG', value: [black, black, black, black] },
  ];
}

function exifEntries(input: DngInput): TiffEntry[] {
  return [
    // libtiff's strays: a custom directory written with TIFFWriteDirectory gets these too.
    { tag: 259, type: 'SHORT', value: [1] },
    { tag: 273, type: 'LONG', value: [0] },
    { tag: 279, type: 'LONG', value: [0] },
    { tag: 33434, type: 'RATIONAL', value: rational(input.exposureUs / 1_000_000) },
    { tag: 34855, type: 'SHORT', value: [Math.min(65535, Math.round(input.analogueGain * 100))] },
    { tag: 36867, type: 'ASCII', value: exifDate(input.date) },
  ];
}

/** The thumbnail as dng.cpp makes it: grey (the same value in R, G and B). */
function greyThumbnail(scene: Scene, width: number, height: number): Buffer {
  const rgb = renderRgb(scene, width, height);
  for (let i = 0; i < rgb.length; i += 3) {
    const grey = Math.round(0.299 * (rgb[i] ?? 0) + 0.587 * (rgb[i + 1] ?? 0) + 0.114 * (rgb[i + 2] ?? 0));
    rgb[i] = rgb[i + 1] = rgb[i + 2] = grey;
  }
  return Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength);
}

/** `next` patches a directory's link to the next one (where libtiff links a chained directory). */
const linkAt = (ifdAt: number, entries: readonly TiffEntry[], next: number): FilePiece => {
  const data = Buffer.alloc(4);
  data.writeUInt32LE(next, 0);
  return { position: ifdAt + 2 + entries.length * 12, data };
};

export function layoutDng(input: DngInput): DngLayout {
  const mono = isMono(input);
  const thumb = { width: Math.max(1, Math.floor(input.width / 16)), height: Math.max(1, Math.floor(input.height / 16)), offset: 8 };
  const thumbData = greyThumbnail(input.scene, thumb.width, thumb.height);
  const ifd0At = even(thumb.offset + thumbData.length);
  const ifd0 = (sub: number, exif: number): TiffEntry[] => ifd0Entries(input, thumb, sub, exif);
  const ifd0Length = ifdByteLength(ifd0(0, 0));

  const rawIfdAt = ifd0At + ifd0Length;
  const rawBytes = input.width * input.height * 2;
  const rawIfdLength = ifdByteLength(rawEntries(input, { offset: 0, bytes: 0 }));
  const rawAt = rawIfdAt + rawIfdLength; // even: IFDs are
  const raw = renderBayer(input.scene, input.width, input.height, input.bits, input.cfa);
  const strip = { offset: rawAt, bytes: rawBytes };

  const exifAt = rawAt + rawBytes;
  const exif = exifEntries(input);
  const end = exifAt + ifdByteLength(exif);
  const final = input.libtiff === '4.7' ? end : ifd0At;
  const ifd0Final = mono ? ifd0(0, 0) : ifd0(rawIfdAt, exifAt);

  const pieces: FilePiece[] = [
    { position: 0, data: tiffHeader(0) },
    { position: thumb.offset, data: thumbData },
    { position: ifd0At, data: buildIfd(ifd0(0, 0), ifd0At) },
    { position: 4, data: tiffHeader(ifd0At).subarray(4) },
    // The checkpoint: the raw directory before its pixels, strip not written yet.
    { position: rawIfdAt, data: buildIfd(rawEntries(input, { offset: 0, bytes: 0 }), rawIfdAt) },
    // A mono raw image is no SubIFD: it is the next directory in IFD0's chain, linked at its checkpoint.
    ...(mono ? [linkAt(ifd0At, ifd0(0, 0), rawIfdAt)] : []),
    { position: rawAt, data: raw, bulk: true },
    { position: rawIfdAt, data: buildIfd(rawEntries(input, strip), rawIfdAt) },
    { position: exifAt, data: buildIfd(exif, exifAt) },
  ];
  if (input.libtiff === '4.7') pieces.push({ position: 4, data: tiffHeader(0).subarray(4) });
  pieces.push({ position: final, data: buildIfd(ifd0Final, final, mono ? rawIfdAt : 0) });
  if (input.libtiff === '4.7') pieces.push({ position: 4, data: tiffHeader(final).subarray(4) });
  return { pieces, size: input.libtiff === '4.7' ? end + ifdByteLength(ifd0Final) : end };
}
