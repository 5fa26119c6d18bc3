import { randomUUID } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { access, lstat, mkdir, readdir, rm, statfs, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { NodeError } from '../errors.js';
import { STATE_FILE, createDeliveryState, isValidChannel } from './delivered.js';
import { createStoreEmitter } from './events.js';
import { errnoCode, moveNoClobber, syncDir, syncFile } from './files.js';
import { MAX_SEQUENCE, assertValidImageName, imageName, imageStem, parseImageName } from './names.js';
import type { ImageInfo, ImageStore, StorageUsage, StoreOptions } from './types.js';

/** Where the camera writes; inside the capture dir so that commit is a rename on one file system. */
export const TEMP_DIR = '.tmp';

export interface StoreInternals {
  /** Free bytes on the file system holding `dir`. Tests substitute it to exercise the disk margin. */
  diskFreeBytes?: (dir: string) => Promise<number>;
}

interface IndexedImage {
  filename: string;
  size: number;
  /** Sort key: the capture time (from the name, to the second, for images found at start). */
  capturedAtMs: number;
  created: string;
  modified: string;
  /** Mutated in place by markDelivered; copied out in every ImageInfo. */
  delivered: string[];
}

type EvictionReason = 'storage_limit' | 'disk_space';

async function statfsFreeBytes(dir: string): Promise<number> {
  const stats = await statfs(dir);
  return stats.bavail * stats.bsize;
}

/** Oldest first; names break ties, and within a second their byte order is the capture order. */
const byAge = (a: IndexedImage, b: IndexedImage): number =>
  a.capturedAtMs - b.capturedAtMs || (a.filename < b.filename ? -1 : a.filename > b.filename ? 1 : 0);

const isDelivered = (image: IndexedImage): boolean => image.delivered.length > 0;

/** Delivered images go first (their data is safe elsewhere), each group oldest first. */
const evictionOrder = (a: IndexedImage, b: IndexedImage): number => Number(isDelivered(b)) - Number(isDelivered(a)) || byAge(a, b);

const toInfo = (image: IndexedImage): ImageInfo => ({
  filename: image.filename,
  size: image.size,
  created: image.created,
  modified: image.modified,
  delivered: [...image.delivered],
});

/** What a client is told of a failed file operation: the errno's meaning, never a path or a raw message. */
const ERRNO_TEXT: Readonly<Record<string, string>> = {
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EIO: 'I/O error',
};

const storageFailed = (message: string, cause: unknown, details?: Record<string, unknown>): NodeError => {
  const code = errnoCode(cause);
  const reason = code ? `: ${ERRNO_TEXT[code] ?? 'file system error'} (${code})` : '';
  return new NodeError('storage_failed', `${message}${reason}`, { cause, ...(details ? { details } : {}) });
};

const notFound = (filename: string): NodeError => new NodeError('not_found', `Image not found: ${filename}`, { details: { filename } });

export function createImageStore(options: StoreOptions, logger: Logger, internals: StoreInternals = {}): ImageStore {
  const dir = resolve(options.dir);
  const tempDir = join(dir, TEMP_DIR);
  const log = logger.child({ part: 'store' });
  const readDiskFree = internals.diskFreeBytes ?? statfsFreeBytes;
  const events = createStoreEmitter(log);

  // All accounting lives here, scanned once at start: per-capture work never touches the folder.
  const index = new Map<string, IndexedImage>();
  // Names being moved into place: a concurrent commit must not pick them too.
  const committing = new Set<string>();
  let usedBytes = 0;
  let diskFreeBytes = 0;
  let started = false;

  const state = createDeliveryState({
    dir,
    tempDir,
    logger: log,
    snapshot: () => {
      const marks: Record<string, string[]> = {};
      for (const image of index.values()) if (isDelivered(image)) marks[image.filename] = [...image.delivered];
      return marks;
    },
  });

  function addToIndex(image: IndexedImage): void {
    index.set(image.filename, image);
    usedBytes += image.size;
  }

  /** Synchronous, so whoever removes an image first owns its deletion; the others see not_found. */
  function removeFromIndex(image: IndexedImage): void {
    if (index.get(image.filename) !== image) return;
    index.delete(image.filename);
    usedBytes -= image.size;
    // A stale mark must not outlive its image: a later capture may get the same name.
    if (isDelivered(image)) persistInBackground();
  }

  function persistInBackground(): void {
    state.markDirty();
    // Failures are logged by the writer and retried with the next change; stop() waits for it.
    state.save().catch(() => undefined);
  }

  async function refreshDiskFree(): Promise<void> {
    try {
      diskFreeBytes = await readDiskFree(dir);
    } catch (err) {
      log.warn({ err, dir }, 'cannot read free disk space; keeping the last value');
    }
  }

  function assertStarted(): void {
    if (!started) throw new NodeError('storage_failed', 'the image store is not started');
  }

  /** Removes everything a crash left in the temp dir (partial captures, a half-written state file). */
  async function clearTempDir(): Promise<number> {
    let leftovers = 0;
    try {
      leftovers = (await readdir(tempDir)).length;
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT' && errnoCode(err) !== 'ENOTDIR') throw err;
    }
    await rm(tempDir, { recursive: true, force: true });
    await mkdir(tempDir);
    return leftovers;
  }

  async function scan(): Promise<{ skipped: number }> {
    let skipped = 0;
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      // The node's own state files (delivery state, command journal) all start with `.camera-node-`.
      if (entry.name === TEMP_DIR || entry.name === STATE_FILE || entry.name.startsWith('.camera-node-')) continue;
      const parsed = parseImageName(entry.name);
      // Only regular files: a symlink with an image name could point anywhere on the system.
      if (!parsed || !entry.isFile()) {
        skipped++;
        continue;
      }
      let stats: Stats;
      try {
        stats = await lstat(join(dir, entry.name));
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') continue;
        throw err;
      }
      addToIndex({
        filename: entry.name,
        size: stats.size,
        capturedAtMs: parsed.takenAt.getTime(),
        created: parsed.takenAt.toISOString(),
        modified: stats.mtime.toISOString(),
        delivered: [],
      });
    }
    return { skipped };
  }

  /** The next sequence number in `stem`'s second: after the highest in use, so name order stays capture order. */
  function nextSequence(stem: string): number {
    let next = 0;
    for (const name of [...index.keys(), ...committing]) {
      if (!name.startsWith(stem)) continue;
      const parsed = parseImageName(name);
      if (parsed && parsed.sequence >= next) next = parsed.sequence + 1;
    }
    return next;
  }

  /** Decides every eviction before any file is deleted, so an impossible reservation deletes nothing. */
  function planEviction(bytes: number): Array<{ image: IndexedImage; reason: EvictionReason }> {
    const { limitBytes, minFreeBytes } = options;
    const candidates = [...index.values()].filter((image) => options.evictUndelivered || isDelivered(image)).sort(evictionOrder);
    let used = usedBytes;
    let free = diskFreeBytes;
    const overLimit = (): boolean => used + bytes > limitBytes;
    const shortOfDisk = (): boolean => free - bytes < minFreeBytes;
    const victims: Array<{ image: IndexedImage; reason: EvictionReason }> = [];
    for (const image of candidates) {
      if (!overLimit() && !shortOfDisk()) break;
      victims.push({ image, reason: overLimit() ? 'storage_limit' : 'disk_space' });
      used -= image.size;
      // An estimate: the blocks of a file still open elsewhere (a download) are freed only on close.
      free += image.size;
    }
    if (!overLimit() && !shortOfDisk()) return victims;

    const evictable = candidates.reduce((sum, image) => sum + image.size, 0);
    const details = {
      bytes,
      used_bytes: usedBytes,
      limit_bytes: limitBytes,
      evictable_bytes: evictable,
      disk_free_bytes: diskFreeBytes,
      min_free_bytes: minFreeBytes,
    };
    const kept = options.evictUndelivered ? '' : ' (undelivered images are kept)';
    let message: string;
    if (bytes > limitBytes) message = `an image of ${bytes} bytes is larger than the storage limit of ${limitBytes} bytes`;
    else if (overLimit())
      message = `cannot make room for ${bytes} bytes: ${usedBytes} of ${limitBytes} bytes used, only ${evictable} bytes may be evicted${kept}`;
    else
      message = `not enough disk space for ${bytes} bytes: ${diskFreeBytes} bytes free, ${minFreeBytes} must stay free, only ${evictable} bytes may be evicted${kept}`;
    throw new NodeError('storage_full', message, { details });
  }

  async function evict(victims: Array<{ image: IndexedImage; reason: EvictionReason }>): Promise<ImageInfo[]> {
    // Claim them all at once: a delete() or markDelivered() arriving meanwhile sees not_found.
    for (const { image } of victims) removeFromIndex(image);
    const evicted: ImageInfo[] = [];
    let failure: unknown;
    for (const { image, reason } of victims) {
      let alreadyGone = false;
      try {
        await unlink(join(dir, image.filename));
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') {
          alreadyGone = true;
        } else {
          log.error({ err, filename: image.filename }, 'cannot evict image');
          failure ??= err;
          if (!index.has(image.filename)) {
            addToIndex(image);
            if (isDelivered(image)) persistInBackground();
          }
          continue;
        }
      }
      log.info(
        { filename: image.filename, size: image.size, reason, delivered: image.delivered, ...(alreadyGone ? { already_gone: true } : {}) },
        'image evicted',
      );
      const info = toInfo(image);
      evicted.push(info);
      events.emit('evicted', info, reason);
    }
    if (victims.length > 0) await refreshDiskFree();
    if (failure !== undefined)
      throw storageFailed('cannot delete images to make room', failure, { evicted: evicted.map((i) => i.filename) });
    return evicted;
  }

  return {
    async start() {
      try {
        index.clear();
        usedBytes = 0;
        await mkdir(dir, { recursive: true });
        const leftovers = await clearTempDir();
        const { skipped } = await scan();
        const marks = await state.load();
        let staleMarks = 0;
        for (const [filename, channels] of marks) {
          const image = index.get(filename);
          if (image) image.delivered = channels;
          else staleMarks++;
        }
        if (staleMarks > 0) {
          state.markDirty();
          await state.save().catch(() => undefined);
        }
        await refreshDiskFree();
        started = true;
        log.info(
          {
            dir,
            images: index.size,
            used_bytes: usedBytes,
            limit_bytes: options.limitBytes,
            disk_free_bytes: diskFreeBytes,
            removed_temp: leftovers,
            skipped,
            stale_marks: staleMarks,
          },
          'image store ready',
        );
      } catch (err) {
        throw storageFailed('cannot open the capture dir', err, { dir });
      }
    },

    async stop() {
      await state.flush();
      started = false;
    },

    tempBase() {
      return join(tempDir, `capture-${randomUUID()}`);
    },

    async hasDiskRoom(bytes) {
      await refreshDiskFree();
      return diskFreeBytes - bytes >= options.minFreeBytes;
    },

    async reserve(bytes) {
      assertStarted();
      // The size comes from the camera's estimate, not from a client: a bad one is our bug.
      if (!Number.isFinite(bytes) || bytes < 0)
        throw new NodeError('internal', 'reserve: bytes must be a non-negative number', { details: { bytes: String(bytes) } });
      // A read-only or unwritable folder would otherwise surface as the camera app failing to open its file.
      try {
        await access(tempDir, constants.W_OK);
      } catch (err) {
        throw storageFailed('the capture dir is not writable', err, { dir: tempDir });
      }
      await refreshDiskFree();
      return evict(planEviction(Math.ceil(bytes)));
    },

    async commit(tempPath, capturedAt) {
      assertStarted();
      const source = resolve(tempPath);
      // Commit moves a file into the served folder: only ever one of our own temp files.
      if (dirname(source) !== tempDir) throw storageFailed('commit: not a file in the store temp dir', undefined, { path: tempPath });
      let file: { size: number; mtime: Date };
      try {
        file = await syncFile(source);
      } catch (err) {
        throw storageFailed('cannot read the captured file', err, { path: tempPath });
      }
      let stem: string;
      try {
        stem = imageStem(capturedAt);
      } catch (err) {
        throw storageFailed('commit: invalid capture time', err, { path: tempPath });
      }
      for (let sequence = nextSequence(stem); sequence <= MAX_SEQUENCE; sequence++) {
        const filename = imageName(stem, sequence);
        if (index.has(filename) || committing.has(filename)) continue;
        committing.add(filename);
        let moved: boolean;
        try {
          moved = await moveNoClobber(source, join(dir, filename));
        } catch (err) {
          committing.delete(filename);
          throw storageFailed('cannot move the captured file into place', err, { path: tempPath, filename });
        }
        committing.delete(filename);
        // Taken by a file we do not know (dropped in behind our back): never replace it.
        if (!moved) continue;
        const image: IndexedImage = {
          filename,
          size: file.size,
          capturedAtMs: capturedAt.getTime(),
          created: capturedAt.toISOString(),
          modified: file.mtime.toISOString(),
          delivered: [],
        };
        addToIndex(image);
        try {
          await syncDir(dir);
        } catch (err) {
          // The image is complete and in place; only its name's survival of a power cut is in doubt.
          log.error({ err, filename }, 'cannot fsync the capture dir after commit');
        }
        await refreshDiskFree();
        log.debug({ filename, size: image.size }, 'image committed');
        const info = toInfo(image);
        events.emit('added', info);
        return info;
      }
      throw new NodeError('storage_failed', `more than ${MAX_SEQUENCE + 1} images in one second`, { details: { stem } });
    },

    list() {
      return [...index.values()].sort((a, b) => byAge(b, a)).map(toInfo);
    },

    get(filename) {
      const image = index.get(assertValidImageName(filename));
      if (!image) throw notFound(filename);
      return toInfo(image);
    },

    pathOf(filename) {
      return join(dir, assertValidImageName(filename));
    },

    async delete(filename) {
      assertStarted();
      const image = index.get(assertValidImageName(filename));
      if (!image) throw notFound(filename);
      removeFromIndex(image);
      try {
        await unlink(join(dir, image.filename));
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') {
          log.warn({ filename }, 'image vanished from disk; dropped from the index');
          throw notFound(filename);
        }
        if (!index.has(image.filename)) addToIndex(image);
        if (isDelivered(image)) persistInBackground();
        throw storageFailed('cannot delete the image', err, { filename });
      }
      await refreshDiskFree();
      log.debug({ filename, size: image.size }, 'image deleted');
      const info = toInfo(image);
      events.emit('deleted', info);
      return info;
    },

    async discard(paths) {
      for (const path of paths) {
        try {
          const target = resolve(path);
          if (dirname(target) !== tempDir) {
            log.warn({ path }, 'discard: not a file in the store temp dir; left alone');
            continue;
          }
          await unlink(target);
        } catch (err) {
          if (errnoCode(err) !== 'ENOENT') log.warn({ err, path }, 'cannot remove temp file');
        }
      }
    },

    async markDelivered(filename, channel) {
      assertStarted();
      const image = index.get(assertValidImageName(filename));
      if (!isValidChannel(channel))
        throw new NodeError('bad_request', 'invalid delivery channel', { details: { channel: String(channel).slice(0, 40) } });
      if (!image) throw notFound(filename);
      if (!image.delivered.includes(channel)) {
        image.delivered.push(channel);
        state.markDirty();
      }
      // Resolve only once the mark is on disk: a write already running may carry it, or a new one must.
      if (!state.isDirty()) await state.flush();
      if (state.isDirty()) await state.save();
    },

    usage(): StorageUsage {
      return {
        used_bytes: usedBytes,
        limit_bytes: options.limitBytes,
        available_bytes: Math.max(0, options.limitBytes - usedBytes),
        image_count: index.size,
        disk_free_bytes: diskFreeBytes,
      };
    },

    on(event, listener) {
      events.on(event, listener);
    },

    off(event, listener) {
      events.off(event, listener);
    },
  };
}
