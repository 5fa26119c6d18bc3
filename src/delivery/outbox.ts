import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { EventBus } from '../events.js';
import { NodeError, toNodeError } from '../errors.js';
import { syncDir, writeFileAtomic } from '../storage/files.js';
import type { ImageInfo, ImageStore } from '../storage/types.js';
import { sha256File } from './manifest.js';
import { isRetryable, uploadFile } from './upload.js';

export const OUTBOX_DIR = '.outbox';

export interface UploadOutboxOptions {
  /** The capture dir: the outbox lives in `<dir>/.outbox`, one JSON file per image to upload. */
  dir: string;
  store: ImageStore;
  events: EventBus;
  logger: Logger;
  nodeId: string;
  url: string;
  method: 'POST' | 'PUT';
  headers: Record<string, string>;
  idleTimeoutMs: number;
  /** The wait before the first retry; it doubles at each failure up to retryMaxMs. */
  retryBaseMs: number;
  retryMaxMs: number;
  /** Give an upload up after this many failed attempts; 0 = keep trying while the image exists. */
  maxAttempts: number;
  /** For tests: the jitter source. */
  random?: () => number;
}

interface Entry {
  filename: string;
  request_id: string | null;
  attempts: number;
  /** Epoch ms of the next attempt. */
  next_at: number;
  created_at: string;
  last_error: string | null;
}

export interface OutboxStatus {
  pending: number;
  delivered: number;
  failed: number;
  last_error: string | null;
  last_delivered_at: string | null;
}

const entryFile = (filename: string): string => `${filename}.json`;

function readEntry(value: unknown): Entry | null {
  if (typeof value !== 'object' || value === null) return null;
  const raw = value as Record<string, unknown>;
  if (typeof raw['filename'] !== 'string') return null;
  const number = (key: string): number => {
    const found = raw[key];
    return typeof found === 'number' && Number.isFinite(found) ? found : 0;
  };
  const text = (key: string): string | null => {
    const found = raw[key];
    return typeof found === 'string' ? found : null;
  };
  return {
    filename: raw['filename'],
    request_id: text('request_id'),
    attempts: number('attempts'),
    next_at: number('next_at'),
    created_at: text('created_at') ?? new Date().toISOString(),
    last_error: text('last_error'),
  };
}

/**
 * A durable queue of uploads: each image to upload is a small JSON file written atomically, so the
 * queue survives restarts and `kill -9`. One upload at a time; connection errors, stalls, 408, 429
 * and 5xx are retried with exponential backoff and full jitter (Retry-After honoured); other 4xx are
 * given up and reported. A delivered image is marked delivered in the store (eviction takes it first).
 */
export function createUploadOutbox(options: UploadOutboxOptions) {
  const { store, events } = options;
  const logger = options.logger.child({ part: 'upload' });
  const dir = join(options.dir, OUTBOX_DIR);
  const random = options.random ?? Math.random;
  const entries = new Map<string, Entry>();
  const counts = { delivered: 0, failed: 0, lastError: null as string | null, lastDeliveredAt: null as string | null };
  let abort = new AbortController();
  let wake: (() => void) | null = null;
  let timer: NodeJS.Timeout | null = null;
  let loop: Promise<void> | null = null;
  let stopped = false;
  const host = ((): string => {
    try {
      return new URL(options.url).host;
    } catch {
      return '<invalid>';
    }
  })();

  // Synced to the device: an upload asked for must survive a power cut, not only a crash.
  async function save(entry: Entry): Promise<void> {
    const name = entryFile(entry.filename);
    await writeFileAtomic(join(dir, name), join(dir, `${name}.partial`), dir, JSON.stringify(entry));
  }

  async function forget(entry: Entry): Promise<void> {
    entries.delete(entry.filename);
    await rm(join(dir, entryFile(entry.filename)), { force: true });
    await syncDir(dir).catch(() => undefined);
  }

  /** Set from the last failure's backoff or Retry-After; one success clears it. */
  let targetPausedUntil = 0;

  function backoffMs(attempts: number, retryAfterS: number | null): number {
    if (retryAfterS !== null) return Math.min(options.retryMaxMs, retryAfterS * 1000);
    const ceiling = Math.min(options.retryMaxMs, options.retryBaseMs * 2 ** Math.min(30, Math.max(0, attempts - 1)));
    // Jitter over the upper half: a fleet that lost its target together does not come back in
    // lockstep, and no retry comes much sooner than the backoff asks.
    return Math.round(ceiling / 2 + (random() * ceiling) / 2);
  }

  async function attempt(entry: Entry): Promise<void> {
    const started = Date.now();
    let info: ImageInfo;
    try {
      info = store.get(entry.filename);
    } catch (err) {
      return giveUp(entry, toNodeError(err).message);
    }
    const path = store.pathOf(info.filename);
    try {
      const { sha256 } = await sha256File(path, abort.signal);
      const response = await uploadFile({
        url: options.url,
        method: options.method,
        headers: options.headers,
        path,
        fields: { node_id: options.nodeId, filename: info.filename, sha256, captured_at: info.created },
        idleTimeoutMs: options.idleTimeoutMs,
        signal: abort.signal,
      });
      if (response.status >= 200 && response.status < 300) {
        // Counted before the entry goes, so the status never shows it neither pending nor delivered.
        counts.delivered += 1;
        counts.lastDeliveredAt = new Date().toISOString();
        targetPausedUntil = 0;
        await forget(entry);
        await store
          .markDelivered(info.filename, 'http')
          .catch((err: unknown) => logger.warn({ err, filename: info.filename }, 'could not mark the image delivered'));
        logger.info(
          { filename: info.filename, status: response.status, host, attempts: entry.attempts + 1, ms: Date.now() - started },
          'image uploaded',
        );
        events.emit('delivered', { filename: info.filename, channel: 'http', request_id: entry.request_id });
        return;
      }
      if (!isRetryable(response.status)) return giveUp(entry, `the server answered ${response.status}`);
      await retryLater(entry, `the server answered ${response.status}`, response.retryAfterS);
    } catch (err) {
      if (stopped) return; // aborted by stop(): the entry stays on disk for the next start
      await retryLater(entry, (err as Error).message, null);
    }
  }

  async function retryLater(entry: Entry, reason: string, retryAfterS: number | null): Promise<void> {
    if (options.maxAttempts > 0 && entry.attempts + 1 >= options.maxAttempts)
      return giveUp(entry, `${reason} (after ${entry.attempts + 1} attempts)`);
    entry.attempts += 1;
    entry.last_error = reason;
    entry.next_at = Date.now() + backoffMs(entry.attempts, retryAfterS);
    // The target is down or asked us to wait: every queued image waits, not only this one.
    targetPausedUntil = Math.max(targetPausedUntil, entry.next_at);
    counts.lastError = `${entry.filename}: ${reason}`;
    await save(entry);
    logger.warn(
      { filename: entry.filename, host, attempts: entry.attempts, retry_in_ms: entry.next_at - Date.now(), reason },
      'upload failed; will retry',
    );
  }

  async function giveUp(entry: Entry, reason: string): Promise<void> {
    await forget(entry);
    counts.failed += 1;
    counts.lastError = `${entry.filename}: ${reason}`;
    logger.error({ filename: entry.filename, host, attempts: entry.attempts + 1, reason }, 'upload given up');
    events.emit('delivery_failed', {
      filename: entry.filename,
      channel: 'http',
      code: 'delivery_failed',
      message: reason,
      request_id: entry.request_id,
    });
  }

  async function run(): Promise<void> {
    while (!stopped) {
      const next = [...entries.values()].sort((a, b) => a.next_at - b.next_at)[0];
      const waitMs = next ? Math.max(next.next_at, targetPausedUntil) - Date.now() : Number.POSITIVE_INFINITY;
      if (next && waitMs <= 0) {
        await attempt(next).catch((err: unknown) => {
          // The outbox file could not be written or removed: try again later rather than spin.
          logger.error({ err, filename: next.filename }, 'upload bookkeeping failed');
          next.next_at = Date.now() + options.retryMaxMs;
        });
        continue;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        if (Number.isFinite(waitMs)) timer = setTimeout(resolve, waitMs);
      });
      if (timer) clearTimeout(timer);
      timer = null;
      wake = null;
    }
  }

  async function enqueue(filename: string, requestId: string | null): Promise<void> {
    store.pathOf(filename); // invalid_filename for a name the store could not have produced
    if (entries.has(filename)) return;
    const entry: Entry = {
      filename,
      request_id: requestId,
      attempts: 0,
      next_at: Date.now(),
      created_at: new Date().toISOString(),
      last_error: null,
    };
    entries.set(filename, entry);
    await save(entry);
    wake?.();
  }

  return {
    async start(): Promise<void> {
      stopped = false;
      abort = new AbortController();
      await mkdir(dir, { recursive: true });
      for (const name of await readdir(dir)) {
        if (!name.endsWith('.json')) {
          await rm(join(dir, name), { force: true }); // a .partial left by a crash
          continue;
        }
        try {
          const entry = readEntry(JSON.parse(await readFile(join(dir, name), 'utf8')) as unknown);
          if (!entry || entryFile(entry.filename) !== name) throw new Error('unexpected content');
          // A Retry-After or backoff still runs after a restart, but never longer than the longest wait
          // (the clock may have been set back); an upload cut by stop() was due and starts at once.
          entries.set(entry.filename, { ...entry, next_at: Math.min(entry.next_at, Date.now() + options.retryMaxMs) });
        } catch (err) {
          logger.warn({ file: name, err: (err as Error).message }, 'unreadable outbox entry removed');
          await rm(join(dir, name), { force: true });
        }
      }
      if (entries.size > 0) logger.info({ pending: entries.size }, 'resuming uploads');
      events.on('upload', 'captured', ({ image, deliver, request_id }) => {
        if (deliver !== 'http') return;
        enqueue(image.filename, request_id ?? null).catch((err: unknown) =>
          logger.error({ err, filename: image.filename }, 'could not queue the upload'),
        );
      });
      loop = run();
    },
    enqueue,
    async stop(): Promise<void> {
      stopped = true;
      events.removeOwner('upload');
      abort.abort(new NodeError('shutting_down', 'the node is shutting down'));
      wake?.();
      await loop;
    },
    status(): OutboxStatus {
      return {
        pending: entries.size,
        delivered: counts.delivered,
        failed: counts.failed,
        last_error: counts.lastError,
        last_delivered_at: counts.lastDeliveredAt,
      };
    },
  };
}
export type UploadOutbox = ReturnType<typeof createUploadOutbox>;
