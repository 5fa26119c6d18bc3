import { open, type FileHandle } from 'node:fs/promises';
import type { FilePiece } from './dng.js';

/**
 * Writes files at a simulated storage speed: bytes go out in chunks, each followed by a pause that
 * holds the average at the configured rate, so a reader sees a file grow as it would on an SD card.
 */

export class OpenError extends Error {
  override name = 'OpenError';
}

/** A write rate shared by every file of a capture. */
export interface Throttle {
  /** Bytes per millisecond; 0 = unthrottled. */
  bytesPerMs: number;
  started: number;
  written: number;
}

export const throttle = (bytesPerMs: number): Throttle => ({ bytesPerMs, started: performance.now(), written: 0 });

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Chunks of ~50 ms of writing at the rate: a file grows smoothly whatever its size. */
function chunkBytes(bytesPerMs: number): number {
  return Math.min(1 << 20, Math.max(512, Math.floor(bytesPerMs * 50)));
}

async function writeFully(handle: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

async function pace(rate: Throttle, bytes: number): Promise<void> {
  rate.written += bytes;
  if (rate.bytesPerMs <= 0) return;
  const due = rate.started + rate.written / rate.bytesPerMs;
  const wait = due - performance.now();
  if (wait > 1) await sleep(wait);
}

export interface WriteOptions {
  rate: Throttle;
  /** Stop after this many bytes (of the whole file, in write order) and report it: a crash mid-write. */
  stopAfter?: number;
}

/**
 * Creates (or truncates) `path` and writes `pieces` in order. Returns false when it stopped early
 * at `stopAfter`, leaving the file as far as it got.
 */
export async function writePieces(path: string, pieces: readonly FilePiece[], options: WriteOptions): Promise<boolean> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'w');
  } catch {
    throw new OpenError(`could not open file ${path}`);
  }
  try {
    let total = 0;
    const limit = options.stopAfter ?? Number.POSITIVE_INFINITY;
    const chunk = options.rate.bytesPerMs > 0 ? chunkBytes(options.rate.bytesPerMs) : Number.POSITIVE_INFINITY;
    for (const piece of pieces) {
      for (let at = 0; at < piece.data.length; ) {
        const length = Math.min(piece.data.length - at, chunk, limit - total);
        if (length <= 0) return false;
        await writeFully(handle, piece.data.subarray(at, at + length), piece.position + at);
        at += length;
        total += length;
        await pace(options.rate, length);
      }
    }
    return true;
  } finally {
    await handle.close();
  }
}
