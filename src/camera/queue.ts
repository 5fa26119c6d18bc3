import { NodeError } from '../errors.js';

export interface CaptureQueueOptions {
  /** How many jobs may wait behind the running one; one more is refused with `busy`. */
  maxPending: number;
}

export interface CaptureQueue {
  /**
   * Runs `job` after every job queued before it, alone. `signal` aborts when the queue is closed
   * while the job runs. Rejects at once with `busy` (details.pending) when the queue is full, and
   * with `shutting_down` once closed. A `front` job (a scheduled capture whose time has come) goes
   * ahead of the waiting ones and is never refused as busy: it was accepted when it was scheduled.
   * A job whose own `signal` aborts while it waits (its HTTP client went away) leaves the queue at
   * once and rejects with the signal's reason; once started, the job itself watches that signal.
   */
  run<T>(job: (signal: AbortSignal) => Promise<T>, options?: RunOptions): Promise<T>;
  /** Running + waiting jobs. */
  size(): number;
  /** Refuses new jobs, rejects the waiting ones and aborts the running one. */
  close(reason: string): void;
  /** Resolves when no job runs or waits. */
  idle(): Promise<void>;
}

export interface RunOptions {
  front?: boolean;
  signal?: AbortSignal;
}

interface Waiting {
  start: () => void;
  reject: (err: NodeError) => void;
  front: boolean;
}

/**
 * A FIFO of capture jobs, one at a time: the camera can take one picture at a time, and a bounded
 * queue turns a burst of requests into a prompt `busy` instead of a pile of timeouts.
 */
export function createCaptureQueue(options: CaptureQueueOptions): CaptureQueue {
  const waiting: Waiting[] = [];
  let running: AbortController | null = null;
  let closedReason: string | null = null;
  let idleWaiters: Array<() => void> = [];

  function next(): void {
    if (running !== null) return;
    const job = waiting.shift();
    if (job) {
      job.start();
      return;
    }
    const waiters = idleWaiters;
    idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  return {
    run<T>(job: (signal: AbortSignal) => Promise<T>, runOptions: RunOptions = {}): Promise<T> {
      if (closedReason !== null) return Promise.reject(new NodeError('shutting_down', closedReason));
      const caller = runOptions.signal;
      if (caller?.aborted) return Promise.reject(caller.reason);
      if (!runOptions.front && running !== null && waiting.length >= options.maxPending) {
        return Promise.reject(
          new NodeError('busy', 'the camera is busy: too many captures queued', {
            details: { pending: waiting.length, max_pending: options.maxPending },
          }),
        );
      }
      return new Promise<T>((resolve, reject) => {
        let entry: Waiting;
        const dropped = (): void => {
          const index = waiting.indexOf(entry);
          if (index === -1) return;
          waiting.splice(index, 1);
          reject(caller?.reason);
        };
        const start = (): void => {
          caller?.removeEventListener('abort', dropped);
          const controller = new AbortController();
          running = controller;
          // The slot is freed before the caller hears the outcome, so size() is already right for it.
          const finish = (): void => {
            running = null;
            next();
          };
          // Called inside then() so a job that throws synchronously is handled like one that rejects.
          Promise.resolve()
            .then(() => job(controller.signal))
            .then(
              (value) => {
                finish();
                resolve(value);
              },
              (err: unknown) => {
                finish();
                reject(err);
              },
            );
        };
        const refuse = (err: NodeError): void => {
          caller?.removeEventListener('abort', dropped);
          reject(err);
        };
        entry = { start, reject: refuse, front: runOptions.front ?? false };
        if (entry.front) {
          // Behind earlier front jobs (scheduled ones keep their order), ahead of plain ones.
          const firstPlain = waiting.findIndex((other) => !other.front);
          waiting.splice(firstPlain === -1 ? waiting.length : firstPlain, 0, entry);
        } else {
          waiting.push(entry);
        }
        caller?.addEventListener('abort', dropped, { once: true });
        next();
      });
    },

    size: () => waiting.length + (running === null ? 0 : 1),

    close(reason) {
      if (closedReason !== null) return;
      closedReason = reason;
      for (const job of waiting.splice(0)) job.reject(new NodeError('shutting_down', reason));
      running?.abort(new NodeError('shutting_down', reason));
      if (running === null) next();
    },

    idle() {
      if (running === null && waiting.length === 0) return Promise.resolve();
      return new Promise((resolve) => idleWaiters.push(resolve));
    },
  };
}
