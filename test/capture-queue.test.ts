import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NodeError } from '../src/errors.js';
import { createCaptureQueue } from '../src/camera/queue.js';

/** A promise with its resolve/reject outside, to hold a job open as long as a test needs. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (err: unknown) => void } {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function isNodeError(code: string): (err: unknown) => boolean {
  return (err) => err instanceof NodeError && err.code === code;
}

describe('capture queue', () => {
  test('runs jobs one at a time in arrival order', async () => {
    const queue = createCaptureQueue({ maxPending: 10 });
    const events: string[] = [];
    let running = 0;
    const job = (name: string, ms: number) => async () => {
      running++;
      assert.equal(running, 1, 'only one job runs at a time');
      events.push(`start ${name}`);
      await new Promise((resolve) => setTimeout(resolve, ms));
      events.push(`end ${name}`);
      running--;
      return name;
    };
    const results = await Promise.all([queue.run(job('a', 20)), queue.run(job('b', 5)), queue.run(job('c', 1))]);
    assert.deepEqual(results, ['a', 'b', 'c']);
    assert.deepEqual(events, ['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
    assert.equal(queue.size(), 0);
  });

  test('size counts the running job and the waiting ones', async () => {
    const queue = createCaptureQueue({ maxPending: 5 });
    const gate = deferred();
    assert.equal(queue.size(), 0);
    const first = queue.run(() => gate.promise);
    const second = queue.run(async () => undefined);
    assert.equal(queue.size(), 2);
    gate.resolve();
    await Promise.all([first, second]);
    assert.equal(queue.size(), 0);
  });

  test('refuses with busy (and the pending count) when maxPending jobs already wait', async () => {
    const queue = createCaptureQueue({ maxPending: 2 });
    const gate = deferred();
    const running = queue.run(() => gate.promise);
    const waiting = [queue.run(async () => 1), queue.run(async () => 2)];
    await assert.rejects(
      queue.run(async () => 3),
      (err: unknown) => {
        assert.ok(err instanceof NodeError);
        assert.equal(err.code, 'busy');
        assert.equal(err.httpStatus, 503);
        assert.equal(err.details?.pending, 2);
        return true;
      },
    );
    assert.equal(queue.size(), 3, 'the refused job was never queued');
    gate.resolve();
    await running;
    assert.deepEqual(await Promise.all(waiting), [1, 2]);
    // Room again once the queue drained.
    assert.equal(await queue.run(async () => 4), 4);
  });

  test('maxPending 0 still runs a job when nothing else does', async () => {
    const queue = createCaptureQueue({ maxPending: 0 });
    const gate = deferred();
    const first = queue.run(() => gate.promise);
    await assert.rejects(
      queue.run(async () => 'second'),
      isNodeError('busy'),
    );
    gate.resolve();
    await first;
    assert.equal(await queue.run(async () => 'third'), 'third');
  });

  test('a failing job (rejecting or throwing) does not stop the queue', async () => {
    const queue = createCaptureQueue({ maxPending: 5 });
    const failing = queue.run(async () => {
      throw new NodeError('camera_failed', 'boom');
    });
    const throwing = queue.run((): Promise<never> => {
      throw new Error('synchronous');
    });
    const working = queue.run(async () => 'ok');
    await assert.rejects(failing, isNodeError('camera_failed'));
    await assert.rejects(throwing, /synchronous/);
    assert.equal(await working, 'ok');
    assert.equal(queue.size(), 0);
  });

  test('close rejects the waiting jobs, aborts the running one and refuses new ones', async () => {
    const queue = createCaptureQueue({ maxPending: 5 });
    let seenSignal: AbortSignal | null = null;
    const running = queue.run(
      (signal) =>
        new Promise<string>((_resolve, reject) => {
          seenSignal = signal;
          signal.addEventListener('abort', () => reject(signal.reason), { once: true });
        }),
    );
    let waitingStarted = false;
    const waiting = [1, 2].map(() =>
      queue.run(async () => {
        waitingStarted = true;
      }),
    );
    await tick();
    assert.ok(seenSignal);
    queue.close('the node is shutting down');
    await assert.rejects(
      running,
      (err: unknown) => isNodeError('shutting_down')(err) && (err as Error).message === 'the node is shutting down',
    );
    for (const job of waiting) await assert.rejects(job, isNodeError('shutting_down'));
    assert.equal(waitingStarted, false);
    await assert.rejects(
      queue.run(async () => undefined),
      isNodeError('shutting_down'),
    );
    await queue.idle();
    assert.equal(queue.size(), 0);
  });

  test('a waiting job whose requester went away leaves the queue and never runs', async () => {
    const queue = createCaptureQueue({ maxPending: 1 });
    let release: () => void = () => undefined;
    const first = queue.run(
      () =>
        new Promise<void>((resolve) => {
          release = resolve;
        }),
    );
    const gone = new AbortController();
    let ran = false;
    const dropped = queue.run(
      async () => {
        ran = true;
      },
      { signal: gone.signal },
    );
    await tick();
    assert.equal(queue.size(), 2);
    gone.abort(new NodeError('cancelled', 'the HTTP client disconnected'));
    await assert.rejects(dropped, isNodeError('cancelled'));
    assert.equal(queue.size(), 1, 'its slot is free at once');
    const next = queue.run(async () => 'next');
    release();
    await first;
    assert.equal(await next, 'next');
    assert.equal(ran, false);
    await assert.rejects(
      queue.run(async () => undefined, { signal: gone.signal }),
      isNodeError('cancelled'),
      'already gone: refused at once',
    );
  });

  test('idle resolves at once when empty, else when the last job settles', async () => {
    const queue = createCaptureQueue({ maxPending: 5 });
    await queue.idle();
    const gate = deferred();
    void queue.run(() => gate.promise);
    let idle = false;
    const idlePromise = queue.idle().then(() => {
      idle = true;
    });
    await tick();
    assert.equal(idle, false);
    gate.resolve();
    await idlePromise;
    assert.equal(queue.size(), 0);
  });

  test('idle after close waits for a running job that ignores its signal', async () => {
    const queue = createCaptureQueue({ maxPending: 5 });
    const gate = deferred<string>();
    const running = queue.run(() => gate.promise);
    queue.close('stopping');
    let idle = false;
    const idlePromise = queue.idle().then(() => {
      idle = true;
    });
    await tick();
    assert.equal(idle, false);
    gate.resolve('done anyway');
    assert.equal(await running, 'done anyway');
    await idlePromise;
  });

  test('queues are independent (no module-level state)', async () => {
    const a = createCaptureQueue({ maxPending: 0 });
    const b = createCaptureQueue({ maxPending: 0 });
    const gate = deferred();
    const held = a.run(() => gate.promise);
    assert.equal(await b.run(async () => 'b runs'), 'b runs');
    gate.resolve();
    await held;
  });
});
