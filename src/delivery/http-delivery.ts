import type { Logger } from 'pino';
import { NodeError, toNodeError } from '../errors.js';
import type { ImageStore } from '../storage/types.js';
import { BACKOFF_FLOOR_MS, backoffMs, createWaiter } from './backoff.js';
import type { ChannelStatus, Outbox, OutboxEntry } from './outbox.js';
import { isRetryable, uploadFile } from './upload.js';

export interface HttpDeliveryOptions {
  outbox: Outbox;
  store: ImageStore;
  logger: Logger;
  nodeId: string;
  url: string;
  method: 'POST' | 'PUT';
  headers: Record<string, string>;
  idleTimeoutMs: number;
  /** The wait before the first retry; it doubles at each failure up to retryMaxMs (never under the floor). */
  retryBaseMs: number;
  retryMaxMs: number;
  /** Give an upload up after this many failed attempts; 0 = keep trying while the image exists. */
  maxAttempts: number;
  /** For tests: the jitter source. */
  random?: () => number;
}

/**
 * The HTTP channel: uploads the images the outbox owes to UPLOAD_URL, one at a time. A 2xx is the
 * receipt; connection errors, stalls, 408, 429 and 5xx are retried with backoff (Retry-After
 * honoured, within the floor); other 4xx are given up and reported. The sha256 sent is the one
 * computed at capture: no upload attempt reads the file twice.
 */
export function createHttpDelivery(options: HttpDeliveryOptions) {
  const { outbox, store } = options;
  const logger = options.logger.child({ part: 'upload' });
  let abort = new AbortController();
  const waiter = createWaiter();
  let unsubscribe: (() => void) | null = null;
  let loop: Promise<void> | null = null;
  let stopped = false;
  /** Set from the last failure's backoff or Retry-After; one success clears it. */
  let targetPausedUntil = 0;
  const jitter = options.random ? { random: options.random } : {};
  const host = ((): string => {
    try {
      return new URL(options.url).host;
    } catch {
      return '<invalid>';
    }
  })();

  async function attempt(entry: OutboxEntry): Promise<void> {
    const { filename } = entry;
    const attempts = (entry.channels.http?.attempts ?? 0) + 1;
    let path: string;
    try {
      path = store.pathOf(store.get(filename).filename);
    } catch (err) {
      return outbox.transition(filename, 'http', 'failed', { last_error: toNodeError(err).message });
    }
    await outbox.transition(filename, 'http', 'offering', { attempts });
    const started = Date.now();
    try {
      const response = await uploadFile({
        url: options.url,
        method: options.method,
        headers: options.headers,
        path,
        fields: { node_id: options.nodeId, filename, sha256: entry.sha256, captured_at: entry.captured_at },
        idleTimeoutMs: options.idleTimeoutMs,
        signal: abort.signal,
      });
      if (response.status >= 200 && response.status < 300) {
        targetPausedUntil = 0;
        await outbox.transition(filename, 'http', 'delivered', { last_error: null });
        logger.info({ filename, status: response.status, host, attempts, ms: Date.now() - started }, 'image uploaded');
        return;
      }
      const reason = `the server answered ${response.status}`;
      if (!isRetryable(response.status)) return giveUp(entry, attempts, reason);
      await retryLater(entry, attempts, reason, response.retryAfterS);
    } catch (err) {
      // Cut by stop(): owed again, due at the next start.
      if (stopped) return outbox.transition(filename, 'http', 'owed', { next_at: Date.now() });
      await retryLater(entry, attempts, (err as Error).message, null);
    }
  }

  async function retryLater(entry: OutboxEntry, attempts: number, reason: string, retryAfterS: number | null): Promise<void> {
    if (options.maxAttempts > 0 && attempts >= options.maxAttempts)
      return giveUp(entry, attempts, `${reason} (after ${attempts} attempts)`);
    const waitMs = backoffMs({ attempts, baseMs: options.retryBaseMs, maxMs: options.retryMaxMs, retryAfterS, ...jitter });
    // The target is down or asked us to wait: every queued image waits, not only this one.
    targetPausedUntil = Math.max(targetPausedUntil, Date.now() + waitMs);
    outbox.countRetry('http', entry.filename, reason);
    await outbox.transition(entry.filename, 'http', 'owed', { next_at: Date.now() + waitMs, last_error: reason });
    logger.warn({ filename: entry.filename, host, attempts, retry_in_ms: waitMs, reason }, 'upload failed; will retry');
  }

  async function giveUp(entry: OutboxEntry, attempts: number, reason: string): Promise<void> {
    logger.error({ filename: entry.filename, host, attempts, reason }, 'upload given up');
    await outbox.transition(entry.filename, 'http', 'failed', { last_error: reason });
  }

  async function run(): Promise<void> {
    while (!stopped) {
      const next = outbox.owed('http').find((entry) => entry.channels.http?.state === 'owed');
      const dueAt = next?.channels.http ? Math.max(next.channels.http.next_at, targetPausedUntil) : Number.POSITIVE_INFINITY;
      const waitMs = dueAt - Date.now();
      if (next && waitMs <= 0) {
        await attempt(next).catch((err: unknown) => {
          // The outbox file could not be written: try again later rather than spin.
          logger.error({ err, filename: next.filename }, 'upload bookkeeping failed');
          targetPausedUntil = Date.now() + Math.max(BACKOFF_FLOOR_MS, options.retryMaxMs);
        });
        continue;
      }
      await waiter.wait(waitMs);
    }
  }

  return {
    start(): void {
      stopped = false;
      abort = new AbortController();
      unsubscribe = outbox.onChange('http', () => waiter.wake());
      loop = run();
    },
    async stop(): Promise<void> {
      stopped = true;
      unsubscribe?.();
      abort.abort(new NodeError('shutting_down', 'the node is shutting down'));
      waiter.wake();
      await loop;
    },
    status: (): ChannelStatus => outbox.status('http'),
  };
}
export type HttpDelivery = ReturnType<typeof createHttpDelivery>;
