import { encodeJpeg } from './jpeg-encoder.js';
import { renderRgb, type Scene } from './pattern.js';
import { buildIfd, exifDate, ifdByteLength, rational, tiffHeader, type TiffEntry } from './tiff.js';

/**
 * The JPEG rpicam-still writes at `-o`: SOI, an APP1 EXIF block (camera tags, exposure, and the
 * `--thumb` thumbnail in IFD1), then the image.
 *
 * The image is encoded at a quarter of the sensor's width and height unless `--width`/`--height`
 * ask for a size: encoding 12 MP in JavaScript would take seconds per capture, while the node only
 * stores the JPEG and reads its thumbnail. The EXIF tags still give the size that was asked for.
 */

export interface JpegInput {
  scene: Scene;
  sensorName: string;
  /** The size the app would have written. */
  width: number;
  height: number;
  quality: number;
  thumb: { width: number; height: number; quality: number } | null;
  exposureUs: number;
  analogueGain: number;
  date: Date;
}

/** APP1 holds at most 65533 bytes after its length field. */
const MAX_APP1_BODY = 65533;
const EXIF_MAGIC = Buffer.from('Exif\0\0', 'latin1');
const REDUCTION = 4;

function exifBlock(input: JpegInput, thumbnail: Buffer | null): Buffer {
  const ifd0 = (exif: number): TiffEntry[] => [
    { tag: 271, type: 'ASCII', value: 'Raspberry Pi' },
    { tag: 272, type: 'ASCII', value: input.sensorName },
    { tag: 274, type: 'SHORT', value: [1] },
    { tag: 305, type: 'ASCII', value: 'rpicam-still' },
    { tag: 34665, type: 'LONG', value: [exif] },
  ];
  const exif: TiffEntry[] = [
    { tag: 33434, type: 'RATIONAL', value: rational(input.exposureUs / 1_000_000) },
    { tag: 34855, type: 'SHORT', value: [Math.min(65535, Math.round(input.analogueGain * 100))] },
    { tag: 36867, type: 'ASCII', value: exifDate(input.date) },
    { tag: 40962, type: 'LONG', value: [input.width] },
    { tag: 40963, type: 'LONG', value: [input.height] },
  ];
  const ifd1 = (offset: number, length: number): TiffEntry[] => [
    { tag: 259, type: 'SHORT', value: [6] }, // JPEG-compressed thumbnail
    { tag: 282, type: 'RATIONAL', value: [72, 1] },
    { tag: 283, type: 'RATIONAL', value: [72, 1] },
    { tag: 296, type: 'SHORT', value: [2] },
    { tag: 513, type: 'LONG', value: [offset] },
    { tag: 514, type: 'LONG', value: [length] },
  ];
  const ifd0At = 8;
  const exifAt = ifd0At + ifdByteLength(ifd0(0));
  const ifd1At = exifAt + ifdByteLength(exif);
  const thumbAt = ifd1At + ifdByteLength(ifd1(0, 0));
  const parts = [tiffHeader(ifd0At), buildIfd(ifd0(exifAt), ifd0At, thumbnail ? ifd1At : 0), buildIfd(exif, exifAt)];
  if (thumbnail) parts.push(buildIfd(ifd1(thumbAt, thumbnail.length), ifd1At), thumbnail);
  return Buffer.concat([EXIF_MAGIC, ...parts]);
}

function app1(body: Buffer): Uint8Array {
  const head = Buffer.from([0xff, 0xe1, 0, 0]);
  head.writeUInt16BE(body.length + 2, 2);
  return Buffer.concat([head, body]);
}

/** The thumbnail, at lower quality when needed to fit the APP1 segment (as the app does). */
function thumbnailFor(input: JpegInput): Buffer | null {
  if (!input.thumb) return null;
  const { width, height } = input.thumb;
  const rgb = renderRgb(input.scene, width, height);
  for (let quality = input.thumb.quality; quality > 0; quality -= 5) {
    const jpeg = encodeJpeg(rgb, width, height, quality);
    if (exifBlock(input, jpeg).length <= MAX_APP1_BODY) return jpeg;
  }
  throw new Error('thumbnail too large for the EXIF block');
}

/** The size the image data is actually encoded at (see the module comment). */
export function encodedSize(input: { width: number; height: number }, explicit: boolean): { width: number; height: number } {
  if (explicit) return { width: input.width, height: input.height };
  return { width: Math.max(1, Math.round(input.width / REDUCTION)), height: Math.max(1, Math.round(input.height / REDUCTION)) };
}

export function stillJpeg(input: JpegInput, explicitSize: boolean): Buffer {
  const exif = app1(exifBlock(input, thumbnailFor(input)));
  const size = encodedSize(input, explicitSize);
  return encodeJpeg(renderRgb(input.scene, size.width, size.height), size.width, size.height, input.quality, [exif]);
}
