/**
 * RSS and live heap after 50 start/stop cycles of a node in one process, ÷ after 1, run with the
 * V8 flags it is given (bench/budget.ts gives it the systemd unit's). Prints one JSON line.
 * test/lifecycle.test.ts runs the same cycles under the test runner's JIT and checks handles and
 * listeners exactly; JIT code for paths warmed by later cycles makes its RSS figure the looser one.
 *
 *   node --expose-gc dist/bench/cycles.js [cycles]
 */
import { startTestNode } from '../test/helpers/node.js';

const cycles = Number(process.argv[2] ?? 50);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');

function settled(): { rss: number; heap: number } {
  gc?.();
  gc?.();
  return { rss: process.memoryUsage.rss(), heap: process.memoryUsage().heapUsed };
}

const figures: Record<number, { rss: number; heap: number }> = {};
for (let i = 1; i <= cycles; i += 1) {
  const node = await startTestNode({ timelapse_interval_s: 3600 });
  const capture = await node.node.commands.capture({}, { source: 'http' });
  if (capture.status !== 'success') throw new Error(`capture failed: ${JSON.stringify(capture)}`);
  await node.stop();
  // A collection every cycle (as in the test) keeps the heap at its live size: RSS then follows
  // what the cycles retain, not how far V8 let the heap grow before it collected.
  const now = settled();
  if (i === 1 || i === Math.ceil(cycles / 2) || i === cycles) figures[i] = now;
}
const first = figures[1];
const middle = figures[Math.ceil(cycles / 2)];
const last = figures[cycles];
if (!first || !middle || !last) throw new Error('no figures');
process.stdout.write(
  `${JSON.stringify({ cycles, rss_ratio: last.rss / first.rss, heap_ratio: last.heap / first.heap, rss_second_half_ratio: last.rss / middle.rss, rss_after_1_mb: first.rss / 2 ** 20, rss_after_last_mb: last.rss / 2 ** 20 })}\n`,
);
