import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { pino } from 'pino';
import { createTimelapse, minutesOfDay, nextTick } from '../src/schedule/timelapse.js';

const local = (h: number, m: number, day = 10, s = 0): number => new Date(2026, 2, day, h, m, s).getTime();
const MIN = 60_000;

describe('timelapse ticks', () => {
  test('without a window, ticks sit on multiples of the interval since the epoch (the same on every node)', () => {
    assert.equal(nextTick(1_000_000_001, 60_000), 1_000_020_000);
    assert.equal(nextTick(1_000_020_000, 60_000), 1_000_020_000);
  });

  test('with a window, ticks start at its opening and stop before its close', () => {
    const window = { start: '07:00', stop: '19:00' };
    assert.equal(nextTick(local(6, 0), 15 * MIN, window), local(7, 0));
    assert.equal(nextTick(local(7, 1), 15 * MIN, window), local(7, 15));
    assert.equal(nextTick(local(18, 45), 15 * MIN, window), local(18, 45));
    // 18:50 → the window is closed; next morning.
    assert.equal(nextTick(local(18, 50), 15 * MIN, window), local(7, 0, 11));
  });

  test('a window past midnight (stop before start) spans the two days', () => {
    const window = { start: '22:00', stop: '02:00' };
    assert.equal(nextTick(local(23, 59), 30 * MIN, window), local(0, 0, 11));
    assert.equal(nextTick(local(1, 10), 30 * MIN, window), local(1, 30));
    assert.equal(nextTick(local(2, 0), 30 * MIN, window), local(22, 0));
  });

  test('any tick is at or after the time asked, and inside the window', () => {
    const window = { start: '08:30', stop: '17:45' };
    fc.assert(
      fc.property(fc.integer({ min: local(0, 0, 1), max: local(0, 0, 28) }), fc.integer({ min: 1, max: 180 }), (t, minutes) => {
        const tick = nextTick(t, minutes * MIN, window);
        assert.ok(tick >= t);
        const date = new Date(tick);
        const ofDay = date.getHours() * 60 + date.getMinutes();
        assert.ok(ofDay >= minutesOfDay('08:30') && ofDay < minutesOfDay('17:45'), `tick at ${date.toString()}`);
      }),
    );
  });

  test('a bad time of day is refused when the timelapse is made', () => {
    assert.throws(
      () =>
        createTimelapse({ intervalS: 60, start: '25:00', capture: async () => undefined, logger: pino({ level: 'silent' }), leadMs: 300 }),
      /HH:MM/,
    );
  });
});
