import { describe, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { pino } from 'pino';
import { STEP_MS, waitUntil } from '../src/schedule/clock.js';
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

describe('timelapse across wall-clock steps (an injected clock)', () => {
  /** Runs the timelapse on mocked timers with a wall clock that can be stepped; counts its captures. */
  async function withSteppedClock(
    run: (clock: { advance(ms: number): Promise<void>; step(ms: number): void; captures: number[]; skipped(): number }) => Promise<void>,
  ) {
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_800_000_000_000 });
    let offset = 0;
    const captures: number[] = [];
    const timelapse = createTimelapse({
      intervalS: 1,
      capture: async (at) => {
        captures.push(at ?? Date.now() + offset);
      },
      logger: pino({ level: 'silent' }),
      leadMs: 300,
      now: () => Date.now() + offset,
    });
    const clock = {
      captures,
      skipped: () => timelapse.status().skipped,
      step: (ms: number) => {
        offset += ms;
      },
      async advance(ms: number) {
        for (let left = ms; left > 0; left -= 50) {
          mock.timers.tick(Math.min(50, left));
          await new Promise((resolve) => setImmediate(resolve));
        }
      },
    };
    try {
      timelapse.start();
      await run(clock);
    } finally {
      await timelapse.stop();
      mock.timers.reset();
    }
  }

  test('a forward step (NTP correcting a Pi without a real-time clock) is one capture, not a catch-up storm', async () => {
    await withSteppedClock(async (clock) => {
      await clock.advance(3_000);
      const before = clock.captures.length;
      assert.ok(before >= 2 && before <= 4, `${before} captures in 3 s`);
      clock.step(3_600_000);
      await clock.advance(3_000);
      const after = clock.captures.length - before;
      assert.ok(after >= 2 && after <= 4, `${after} captures in the 3 s after a 1 h step`);
      assert.equal(clock.skipped(), 0, `${clock.skipped()} ticks skipped (${clock.captures.join(',')}): a storm of missed ticks`);
      const last = clock.captures.at(-1) ?? 0;
      assert.equal(last % 1000, 0, 'back on the grid');
    });
  });

  test('a backward step re-anchors within seconds instead of waiting out the hour', async () => {
    await withSteppedClock(async (clock) => {
      await clock.advance(2_000);
      clock.step(-3_600_000);
      const before = clock.captures.length;
      await clock.advance(15_000);
      const after = clock.captures.length - before;
      assert.ok(after >= 3, `${after} captures in the 15 s after stepping back 1 h`);
      const ticks = clock.captures.slice(before + 1);
      for (let i = 1; i < ticks.length; i++) assert.equal((ticks[i] ?? 0) - (ticks[i - 1] ?? 0), 1000, 'on the new grid, a second apart');
    });
  });
});

test('a wait for an instant follows the wall clock: a forward step ends it, a backward step prolongs it', async () => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_800_000_000_000 });
  try {
    let offset = 0;
    const now = () => Date.now() + offset;
    let done = false;
    const wait = waitUntil(now() + 3_600_000, undefined, now).then(() => {
      done = true;
    });
    const advance = async (ms: number) => {
      for (let left = ms; left > 0; left -= 500) {
        mock.timers.tick(Math.min(500, left));
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    offset -= 60_000;
    await advance(3_600_000);
    assert.equal(done, false, 'stepped back a minute: a minute more to wait');
    offset += 3_660_000 - 30_000;
    await advance(STEP_MS);
    assert.equal(done, true, 'stepped past the instant: over within one step');
    await wait;
  } finally {
    mock.timers.reset();
  }
});
