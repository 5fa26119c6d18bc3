import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { NodeError } from '../src/errors.js';
import { createCaptureQueue } from '../src/camera/queue.js';
import { createCaptureScheduler, parseAbsoluteAt, parseAt, planCapture } from '../src/commands/schedule.js';
import { preciseNow, waitUntil } from '../src/schedule/clock.js';

const NOW = Date.parse('2026-03-01T12:00:00.000Z');
const LIMITS = { maxAheadMs: 3_600_000, toleranceMs: 50 };

const badRequest =
  (pattern: RegExp) =>
  (err: unknown): boolean => {
    assert.ok(err instanceof NodeError, String(err));
    assert.equal(err.code, 'bad_request');
    assert.match(err.message, pattern);
    return true;
  };

describe('parseAt (what a client types)', () => {
  test('relative times count from now', () => {
    assert.equal(parseAt('+2s', NOW), NOW + 2000);
    assert.equal(parseAt('+500ms', NOW), NOW + 500);
    assert.equal(parseAt('+1.5m', NOW), NOW + 90_000);
    assert.equal(parseAt('+1h', NOW), NOW + 3_600_000);
    assert.equal(parseAt('+3', NOW), NOW + 3000);
  });

  test('absolute times pass through as epoch ms', () => {
    assert.equal(parseAt('2026-03-01T12:00:05Z', NOW), NOW + 5000);
    assert.equal(parseAt('2026-03-01T13:00:05.250+01:00', NOW), NOW + 5250);
    assert.equal(parseAt('2026-03-01T13:00:05+0100', NOW), NOW + 5000);
    assert.equal(parseAt(String(NOW + 42), NOW), NOW + 42);
  });

  test('any epoch ms survives a round trip through text', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1e12, max: 4e12 }), (ms) => {
        assert.equal(parseAt(String(ms), NOW), ms);
        assert.equal(parseAt(new Date(ms).toISOString(), NOW), ms);
      }),
    );
  });

  test('nonsense is a bad request naming the field', () => {
    assert.throws(() => parseAt('tomorrow', NOW), badRequest(/^at: /));
    assert.throws(() => parseAt('+2 parsecs', NOW), badRequest(/^at: /));
  });
});

describe('parseAbsoluteAt (what a node accepts)', () => {
  test('epoch ms as a number or digits, ISO 8601 with a zone', () => {
    assert.equal(parseAbsoluteAt(NOW), NOW);
    assert.equal(parseAbsoluteAt(String(NOW)), NOW);
    assert.equal(parseAbsoluteAt('2026-03-01T12:00:00Z'), NOW);
  });

  test('relative, zoneless and second-based times are refused with the reason', () => {
    assert.throws(() => parseAbsoluteAt('+2s'), badRequest(/absolute/));
    assert.throws(() => parseAbsoluteAt('2026-03-01T12:00:00'), badRequest(/zone/));
    assert.throws(() => parseAbsoluteAt(1_772_366_400), badRequest(/epoch seconds/));
    assert.throws(() => parseAbsoluteAt(true), badRequest(/expected/));
    assert.throws(() => parseAbsoluteAt('2026-13-45T99:00:00Z'), badRequest(/not a valid date/));
  });
});

describe('planCapture', () => {
  test('splits settings from timing', () => {
    const plan = planCapture({ shutter_us: 1000, at: NOW + 1000, count: 3, interval_ms: 200 }, LIMITS, NOW);
    assert.deepEqual(plan, { settings: { shutter_us: 1000 }, at: NOW + 1000, count: 3, intervalMs: 200 });
    assert.deepEqual(planCapture({}, LIMITS, NOW), { settings: {}, at: null, count: 1, intervalMs: 0 });
  });

  test('a time within the tolerance in the past is taken; beyond it, refused', () => {
    assert.equal(planCapture({ at: NOW - 50 }, LIMITS, NOW).at, NOW - 50);
    assert.throws(() => planCapture({ at: NOW - 51 }, LIMITS, NOW), badRequest(/in the past/));
  });

  test('too far ahead is refused, as is a burst outlasting the limit', () => {
    assert.equal(planCapture({ at: NOW + 3_600_000 }, LIMITS, NOW).at, NOW + 3_600_000);
    assert.throws(() => planCapture({ at: NOW + 3_600_001 }, LIMITS, NOW), badRequest(/ahead/));
    assert.throws(() => planCapture({ count: 100, interval_ms: 3_600_000 }, LIMITS, NOW), badRequest(/burst would last/));
  });

  test('count and interval are checked even when the edges did not', () => {
    assert.throws(() => planCapture({ count: 0 }, LIMITS, NOW), badRequest(/count/));
    assert.throws(() => planCapture({ count: 1.5 }, LIMITS, NOW), badRequest(/count/));
    assert.throws(() => planCapture({ count: 2, interval_ms: -1 }, LIMITS, NOW), badRequest(/interval_ms/));
  });
});

describe('waiting for an instant', () => {
  test('waitUntil resolves at or after the instant, never before', async () => {
    for (const ahead of [0, 5, 30, 60]) {
      const at = preciseNow() + ahead;
      await waitUntil(at);
      assert.ok(preciseNow() >= at, `woke before the instant (${ahead} ms ahead)`);
    }
  });

  test('waitUntil rejects with the abort reason and leaves nothing pending', async () => {
    const controller = new AbortController();
    const waiting = waitUntil(preciseNow() + 60_000, controller.signal);
    controller.abort(new NodeError('shutting_down', 'stop'));
    await assert.rejects(waiting, (err: unknown) => err instanceof NodeError && err.code === 'shutting_down');
  });

  test('the scheduler bounds waiting captures and releases places', () => {
    const scheduler = createCaptureScheduler({ ...LIMITS, maxPending: 2 });
    const a = scheduler.enter();
    scheduler.enter();
    assert.throws(
      () => scheduler.enter(),
      (err: unknown) => err instanceof NodeError && err.code === 'busy',
    );
    assert.equal(scheduler.pending(), 2);
    a.release();
    a.release();
    assert.equal(scheduler.pending(), 1);
    scheduler.enter();
  });

  test('closing the scheduler ends every wait with shutting_down and refuses new places', async () => {
    const scheduler = createCaptureScheduler({ ...LIMITS, maxPending: 5 });
    const waits = [scheduler.enter().waitForTurn(Date.now() + 60_000), scheduler.enter().waitForTurn(Date.now() + 30_000)];
    scheduler.close('stopping');
    for (const wait of waits) await assert.rejects(wait, (err: unknown) => err instanceof NodeError && err.code === 'shutting_down');
    assert.throws(
      () => scheduler.enter(),
      (err: unknown) => err instanceof NodeError && err.code === 'shutting_down',
    );
  });

  test('a scheduled job goes ahead of plain waiting jobs and past a full queue', async () => {
    const queue = createCaptureQueue({ maxPending: 1 });
    const order: string[] = [];
    let release: () => void = () => undefined;
    const first = queue.run(() => new Promise<void>((resolve) => (release = resolve)).then(() => void order.push('running')));
    const plain = queue.run(async () => void order.push('plain'));
    await assert.rejects(
      queue.run(async () => undefined),
      (err: unknown) => err instanceof NodeError && err.code === 'busy',
    );
    const scheduled = queue.run(async () => void order.push('scheduled'), { front: true });
    const scheduled2 = queue.run(async () => void order.push('scheduled 2'), { front: true });
    release();
    await Promise.all([first, plain, scheduled, scheduled2]);
    assert.deepEqual(order, ['running', 'scheduled', 'scheduled 2', 'plain']);
  });
});
