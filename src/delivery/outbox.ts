import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { EventBus } from '../events.js';
import { NodeError, toNodeError } from '../errors.js';
import type { ImageStore } from '../storage/types.js';
import { sha256File } from './chunks.js';
import { isRetryable, uploadFile } from './upload.js';

export const OUTBOX_DIR = '.outbox';
const FIRST_RETRY_MS = 2000;

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
  retryMaxMs: number;
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

  async function save(entry: Entry): Promise<void> {
    const partial = join(dir, `${entryFile(entry.filename)}.partial`);
    await writeFile(partial, JSON.stringify(entry));
    await rename(partial, join(dir, entryFile(entry.filename)));
  }

  async function forget(entry: Entry): Promise<void> {
    entries.delete(entry.filename);
    await rm(join(dir, entryFile(entry.filename)), { force: true });
  }

  function backoffMs(attempts: number, retryAfterS: number | null): number {
    if (retryAfterS !== null) return Math.min(options.retryMaxMs, retryAfterS * 1000);
    const ceiling = Math.min(options.retryMaxMs, FIRST_RETRY_MS * 2 ** Math.max(0, attempts - 1));
    // Full jitter: a fleet that lost its target together does not come back in lockstep.
    return Math.round(ceiling / 2 + (random() * ceiling) / 2);
  }

  async function attempt(entry: Entry): Promise<void> {
    const started = Date.now();
    let info;
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
        await forget(entry);
        await store.markDelivered(info.filename, 'http').catch((err: unknown) => logger.warn({ err, filename: info.filename }, 'could not mark the image delivered'));
        counts.delivered += 1;
        counts.lastDeliveredAt = new Date().toISOString();
        logger.info({ filename: info.filename, status: response.status, host, attempts: entry.attempts + 1, ms: Date.now() - started }, 'image uploaded');
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
    entry.attempts += 1;
    entry.last_error = reason;
    entry.next_at = Date.now() + backoffMs(entry.attempts, retryAfterS);
    counts.lastError = `${entry.filename}: ${reason}`;
    await save(entry);
    logger.warn({ filename: entry.filename, host, attempts: entry.attempts, retry_in_ms: entry.next_at - Date.now(), reason }, 'upload failed; will retry');
  }

  async function giveUp(entry: Entry, reason: string): Promise<void> {
    await forget(entry);
    counts.failed += 1;
    counts.lastError = `${entry.filename}: ${reason}`;
    logger.error({ filename: entry.filename, host, attempts: entry.attempts + 1, reason }, 'upload given up');
    events.emit('delivery_failed', { filename: entry.filename, channel: 'http', code: 'delivery_failed', message: reason, request_id: entry.request_id });
  }

  async function run(): Promise<void> {
    while (!stopped) {
      const next = [...entries.values()].sort((a, b) => a.next_at - b.next_at)[0];
      const waitMs = next ? next.next_at - Date.now() : Number.POSITIVE_INFINITY;
      if (next && waitMs <= 0) {
        await attempt(next);
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
    if (entries.has(filename)) return;
    const entry: Entry = { filename, request_id: requestId, attempts: 0, next_at: Date.now(), created_at: new Date().toISOString(), last_error: null };
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
          const entry = JSON.parse(await readFile(join(dir, name), 'utf8')) as Entry;
          if (typeof entry.filename !== 'string' || entryFile(entry.filename) !== name) throw new Error('unexpected content');
          entries.set(entry.filename, { ...entry, next_at: Math.min(entry.next_at, Date.now()) });
        } catch (err) {
          logger.warn({ file: name, err: (err as Error).message }, 'unreadable outbox entry removed');
          await rm(join(dir, name), { force: true });
        }
      }
      if (entries.size > 0) logger.info({ pending: entries.size }, 'resuming uploads');
      events.on('upload', 'captured', ({ image, deliver, request_id }) => {
        if (deliver !== 'http') return;
        enqueue(image.filename, request_id ?? null).catch((err: unknown) => logger.error({ err, filename: image.filename }, 'could not queue the upload'));
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
      return { pending: entries.size, delivered: counts.delivered, failed: counts.failed, last_error: counts.lastError, last_delivered_at: counts.lastDeliveredAt };
    },
  };
}
export type UploadOutbox = ReturnType<typeof createUploadOutbox>;
