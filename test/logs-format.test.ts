import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatLogLine } from '../src/logs/format.js';

// asctime is local time; one zone makes the expected lines exact.
process.env['TZ'] = 'UTC';
const time = Date.UTC(2026, 10, 25, 10, 15, 0, 123);

test('a log entry reads as the seed’s `timestamp - name - level - message`', () => {
  assert.equal(
    formatLogLine({
      level: 30,
      time,
      pid: 1,
      hostname: 'pi',
      node_id: 'cam-1',
      part: 'commands',
      msg: 'captured',
      filename: 'capture_20261125_101500.dng',
      size: 52340,
    }),
    '2026-11-25 10:15:00,123 - camera-node.commands - INFO - captured filename=capture_20261125_101500.dng size=52340',
  );
  assert.equal(formatLogLine({ level: 40, time, msg: 'no part' }), '2026-11-25 10:15:00,123 - camera-node - WARNING - no part');
});

test('levels take Python’s names; values that need it are quoted; errors show type and message', () => {
  const levels = [10, 20, 30, 40, 50, 60].map((level) => formatLogLine({ level, time, msg: 'm' }).split(' - ')[2]);
  assert.deepEqual(levels, ['TRACE', 'DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL']);
  assert.equal(
    formatLogLine({
      level: 50,
      time,
      part: 'http',
      msg: 'request failed',
      url: '/a b',
      err: { type: 'Error', message: 'boom', stack: 'Error: boom\n    at x' },
      ok: false,
      n: null,
    }),
    '2026-11-25 10:15:00,123 - camera-node.http - ERROR - request failed url="/a b" err="Error: boom" ok=false n=null',
  );
  assert.equal(
    formatLogLine({ level: 30, time, nested: { a: [1, 2] } }),
    '2026-11-25 10:15:00,123 - camera-node - INFO - nested={"a":[1,2]}',
  );
});
