import { open, type FileHandle } from 'node:fs/promises';
import { extractExifThumbnail } from '../camera/thumbnail.js';

/** An APP1 (EXIF) segment is at most 64 KiB and sits right after SOI, so this much always holds it. */
const EXIF_WINDOW_BYTES = 66 * 1024;

/**
 * The capture's preview: the EXIF thumbnail the camera app embeds in its JPEG (`--thumb`). Reading
 * the first 66 KiB is all it costs: a Pi Zero never decodes the 12 MP image.
 */
export async function readPreview(jpegPath: string): Promise<Buffer | null> {
  let handle: FileHandle;
  try {
    handle = await open(jpegPath, 'r');
  } catch {
    return null;
  }
  try {
    const buffer = Buffer.alloc(EXIF_WINDOW_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return extractExifThumbnail(buffer.subarray(0, bytesRead));
  } catch {
    return null;
  } finally {
    await handle.close();
  }
}
