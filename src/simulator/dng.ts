import { blackLevel, cfaColours, renderBayer, renderRgb, type Scene } from './pattern.js';
import type { CfaOrder } from './sensors.js';
import { buildIfd, exifDate, ifdByteLength, rational, tiffHeader, type TiffEntry } from './tiff.js';

/**
 * The DNG rpicam-still writes with `-r` (its `image/dng.cpp`, through libtiff): little-endian TIFF
 * whose IFD0 is an 8-bit RGB thumbnail at 1/16 scale carrying the DNG tags, with the raw CFA image
 * (16-bit words, uncompressed) in a SubIFD and an EXIF IFD. The pieces come in libtiff's write
 * order: IFD0 first with SubIFD and EXIF pointers of 0, then the raw strips, the raw SubIFD, the
 * EXIF IFD, and IFD0 again at the end with the real pointers, which the header is switched to last.
 * Until that final write a reader following the structure sees an unfinished file.
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

/** libtiff's default strip size: as many rows as fit in 8 KiB, at least one. */
const STRIP_BYTES = 8192;

/**
 * A colour matrix (XYZ → camera) of the kind the tuning files give an HQ camera; the simulated
 * sensors share it, since only its presence and shape matter to readers.
 */
const COLOR_MATRIX = [0.7003, -0.1994, -0.0642, -0.4136, 1.2131, 0.2257, -0.0559, 0.1535, 0.6017];

const srationals = (values: readonly number[]): number[] => values.flatMap((v) => [Math.round(v * 10_000), 10_000]);

function ifd0Entries(
  input: DngInput,
  thumb: { width: number; height: number; offset: number },
  subIfd: number,
  exifIfd: number,
): TiffEntry[] {
  const [redGain, blueGain] = input.scene.colourGains;
  return [
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
    { tag: 330, type: 'LONG', value: [subIfd] },
    { tag: 34665, type: 'LONG', value: [exifIfd] },
    { tag: 50706, type: 'BYTE', value: [1, 1, 0, 0] },
    { tag: 50707, type: 'BYTE', value: [1, 0, 0, 0] },
    { tag: 50708, type: 'ASCII', value: `Raspberry Pi ${input.sensorName}` },
    { tag: 50721, type: 'SRATIONAL', value: srationals(COLOR_MATRIX) },
    { tag: 50728, type: 'RATIONAL', value: [...rational(1 / redGain), ...rational(1), ...rational(1 / blueGain)] },
    { tag: 50778, type: 'SHORT', value: [21] }, // D65
  ];
}

function rawEntries(input: DngInput, strips: { offsets: number[]; counts: number[]; rowsPerStrip: number }): TiffEntry[] {
  const black = blackLevel(input.bits);
  return [
    { tag: 254, type: 'LONG', value: [0] },
    { tag: 256, type: 'LONG', value: [input.width] },
    { tag: 257, type: 'LONG', value: [input.height] },
    { tag: 258, type: 'SHORT', value: [16] },
    { tag: 259, type: 'SHORT', value: [1] },
    { tag: 262, type: 'SHORT', value: [32803] }, // CFA
    { tag: 273, type: 'LONG', value: strips.offsets },
    { tag: 277, type: 'SHORT', value: [1] },
    { tag: 278, type: 'LONG', value: [strips.rowsPerStrip] },
    { tag: 279, type: 'LONG', value: strips.counts },
    { tag: 284, type: 'SHORT', value: [1] },
    { tag: 33421, type: 'SHORT', value: [2, 2] },
    { tag: 33422, type: 'BYTE', value: cfaColours(input.cfa) },
    { tag: 50713, type: 'SHORT', value: [2, 2] },
    { tag: 50714, type: 'LONG', value: [black, black, black, black] },
    { tag: 50717, type: 'LONG', value: [2 ** input.bits - 1] },
  ];
}

function exifEntries(input: DngInput): TiffEntry[] {
  return [
    { tag: 33434, type: 'RATIONAL', value: rational(input.exposureUs / 1_000_000) },
    { tag: 34855, type: 'SHORT', value: [Math.min(65535, Math.round(input.analogueGain * 100))] },
    { tag: 36867, type: 'ASCII', value: exifDate(input.date) },
  ];
}

const even = (n: number): number => n + (n & 1);

export function layoutDng(input: DngInput): DngLayout {
  const thumbWidth = Math.max(1, Math.floor(input.width / 16));
  const thumbHeight = Math.max(1, Math.floor(input.height / 16));
  const thumbData = Buffer.from(renderRgb(input.scene, thumbWidth, thumbHeight));
  const thumbOffset = 8;
  const ifd0Draft = even(thumbOffset + thumbData.length);
  const draftEntries = (sub: number, exif: number): TiffEntry[] =>
    ifd0Entries(input, { width: thumbWidth, height: thumbHeight, offset: thumbOffset }, sub, exif);
  const ifd0Length = ifdByteLength(draftEntries(0, 0));

  const rowBytes = input.width * 2;
  const rowsPerStrip = Math.max(1, Math.floor(STRIP_BYTES / rowBytes));
  const rawOffset = ifd0Draft + ifd0Length;
  const offsets: number[] = [];
  const counts: number[] = [];
  for (let row = 0; row < input.height; row += rowsPerStrip) {
    offsets.push(rawOffset + row * rowBytes);
    counts.push(Math.min(rowsPerStrip, input.height - row) * rowBytes);
  }
  const raw = renderBayer(input.scene, input.width, input.height, input.bits, input.cfa);

  const subIfd = rawOffset + raw.length; // even: 16-bit samples
  const sub = rawEntries(input, { offsets, counts, rowsPerStrip });
  const exifIfd = subIfd + ifdByteLength(sub);
  const exif = exifEntries(input);
  const ifd0Final = exifIfd + ifdByteLength(exif);

  const pieces: FilePiece[] = [
    { position: 0, data: tiffHeader(ifd0Draft) },
    { position: thumbOffset, data: thumbData },
    { position: ifd0Draft, data: buildIfd(draftEntries(0, 0), ifd0Draft) },
    { position: rawOffset, data: raw, bulk: true },
    { position: subIfd, data: buildIfd(sub, subIfd) },
    { position: exifIfd, data: buildIfd(exif, exifIfd) },
    { position: ifd0Final, data: buildIfd(draftEntries(subIfd, exifIfd), ifd0Final) },
    { position: 4, data: tiffHeader(ifd0Final).subarray(4) },
  ];
  return { pieces, size: ifd0Final + ifd0Length };
}
