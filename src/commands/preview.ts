import { open, type FileHandle } from 'node:fs/promises';
import { extractExifThumbnail } from '../camera/thumbnail.js';

/** An APP1 (EXIF) segment is at most 64 KiB and sits right after SOI, so this much always holds it. */
const EXIF_WINDOW_BYTES = 66 * 1024;

/**
 * A JPEG up to this size is itself the preview: the camera app encodes the processed output at
 * preview size (camera/args.ts `previewArgs`), about 10–30 KB. Anything larger is a full-resolution
 * JPEG (the sensor's mode was not known), whose EXIF thumbnail is the preview.
 */
export const MAX_WHOLE_PREVIEW_BYTES = 256 * 1024;

const isJpeg = (buf: Buffer): boolean => buf.length >= 4 && buf[0] === 0xff && buf[1] === 0xd8;

/**
 * The capture's preview: the small JPEG the camera app wrote, or the EXIF thumbnail of a large one
 * (reading its first 66 KiB: a Pi Zero never decodes a 12 MP image). Null when there is none.
 */
export async function readPreview(jpegPath: string): Promise<Buffer | null> {
  let handle: FileHandle;
  try {
    handle = await open(jpegPath, 'r');
  } catch {
    return null;
  }
  try {
    const { size } = await handle.stat();
    const whole = size <= MAX_WHOLE_PREVIEW_BYTES;
    const buffer = Buffer.alloc(whole ? size : EXIF_WINDOW_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    const head = buffer.subarray(0, bytesRead);
    if (whole) return bytesRead === size && isJpeg(head) ? head : null;
    return extractExifThumbnail(head);
  } catch {
    return null;
  } finally {
    await handle.close();
  }
}
