import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { NodeError } from '../errors.js';
import { errnoCode, writeFileAtomic } from './files.js';
import { isValidImageName } from './names.js';

/**
 * The persisted delivery marks: which channels confirmed which image. A small JSON dotfile in the
 * capture dir (never listed: not an image name), replaced atomically on every change. Only the
 * marks of images still stored are written, so marks of deleted images drop out with the next write.
 */
export const STATE_FILE = '.camera-node-state.json';
const STATE_VERSION = 1;

/** A channel name as the delivery parts use it (`mqtt`, `http`); bounded so the file stays small. */
const CHANNEL = /^[a-z][a-z0-9_-]{0,31}$/;
export const isValidChannel = (channel: unknown): channel is string => typeof channel === 'string' && CHANNEL.test(channel);

interface StateFile {
  version: number;
  delivered: Record<string, string[]>;
}

export interface DeliveryStateOptions {
  dir: string;
  tempDir: string;
  /** The marks to write, taken when a write starts (so one write carries every change before it). */
  snapshot: () => Record<string, string[]>;
  logger: Logger;
}

export interface DeliveryState {
  /** The marks on disk; a missing or unreadable file is an empty set (logged), never a failed start. */
  load(): Promise<Map<string, string[]>>;
  /** Writes the current snapshot; resolves once a write that started after this call has finished. */
  save(): Promise<void>;
  /** True while a change has not reached the disk (a failed write leaves it true). */
  isDirty(): boolean;
  markDirty(): void;
  /** Waits for queued and running writes. */
  flush(): Promise<void>;
}

export function createDeliveryState(options: DeliveryStateOptions): DeliveryState {
  const { logger } = options;
  const path = join(options.dir, STATE_FILE);
  const tempPath = join(options.tempDir, `${STATE_FILE}.partial`);
  let dirty = false;
  // Writes run one at a time on this chain. A write that is queued but not yet started is shared by
  // every caller that arrives meanwhile: it will snapshot their changes too, so a burst of marks
  // costs at most two writes, not one each (the SD card thanks us).
  let tail: Promise<void> = Promise.resolve();
  let queued: Promise<void> | null = null;

  async function writeNow(): Promise<void> {
    dirty = false;
    const state: StateFile = { version: STATE_VERSION, delivered: options.snapshot() };
    try {
      await writeFileAtomic(path, tempPath, options.dir, `${JSON.stringify(state)}\n`);
    } catch (err) {
      dirty = true;
      logger.error({ err, path }, 'cannot write delivery state');
      throw new NodeError('storage_failed', 'cannot write the delivery state file', { cause: err });
    }
  }

  return {
    async load() {
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') logger.warn({ err, path }, 'cannot read delivery state; starting without marks');
        return new Map();
      }
      const marks = new Map<string, string[]>();
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (err) {
        // Atomic writes make this unlikely; if it happens, losing marks only means earlier eviction
        // protection is gone for those images, which is better than refusing to start.
        logger.warn({ err, path }, 'delivery state is not JSON; starting without marks');
        return marks;
      }
      const delivered = typeof parsed === 'object' && parsed !== null && 'delivered' in parsed ? parsed.delivered : undefined;
      if (typeof delivered !== 'object' || delivered === null) {
        logger.warn({ path }, 'delivery state has no delivered map; starting without marks');
        return marks;
      }
      for (const [name, channels] of Object.entries(delivered)) {
        if (!isValidImageName(name) || !Array.isArray(channels)) continue;
        const valid = [...new Set(channels.filter(isValidChannel))];
        if (valid.length > 0) marks.set(name, valid);
      }
      return marks;
    },

    save() {
      if (queued) return queued;
      const write = tail.then(() => {
        queued = null;
        return writeNow();
      });
      queued = write;
      tail = write.catch(() => undefined);
      return write;
    },

    isDirty: () => dirty,
    markDirty() {
      dirty = true;
    },

    async flush() {
      // A write may queue another while we wait; loop until the chain is quiet.
      let seen: Promise<void> | undefined;
      while (seen !== tail) {
        seen = tail;
        await seen;
      }
    },
  };
}
