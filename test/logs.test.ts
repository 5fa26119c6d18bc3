import assert from 'node:assert/strict';
import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { createNodeLogger } from '../src/logs/logger.js';
import { createLogRing } from '../src/logs/ring.js';
import { listLogFiles, MAX_LINE_BYTES, readLastEntries, tailLogs } from '../src/logs/tail.js';
import type { NodeLogger, NodeLoggerOptions } from '../src/logs/types.js';

const root = await mkdtemp(join(tmpdir(), 'camera-node-logs-'));
after(() => rm(root, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = () => join(root, `d${++dirCount}`);

const open: NodeLogger[] = [];
after(() => Promise.all(open.map((logs) => logs.close())));
async function startLogger(overrides: Partial<NodeLoggerOptions> = {}): Promise<NodeLogger & { dir: string }> {
  const dir = overrides.dir ?? freshDir();
  const logs = await createNodeLogger({
    dir,
    name: 'camera_node',
    maxSizeMb: 10,
    maxFiles: 3,
    level: 'info',
    target: 'file',
    ringLines: 100,
    ...overrides,
  });
  open.push(logs);
  return Object.assign(logs, { dir });
}

/** Lets the rotating file finish the clean-ups it queued. */
async function settle(dir: string, maxFilesOnDisk: number): Promise<void> {
  for (let i = 0; i < 200 && (await listLogFiles(dir, 'camera_node')).length > maxFilesOnDisk; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const line = (i: number, extra: Record<string, unknown> = {}) =>
  `${JSON.stringify({ level: 30, time: 1_700_000_000_000 + i, i, msg: `line ${i}`, ...extra })}\n`;

test('tail reaches back across files rotated by size, oldest first', async () => {
  // 2 KiB files hold about twenty lines each: 200 lines rotate often enough to drop the oldest files.
  const logs = await startLogger({ maxSizeMb: 0.002, maxFiles: 3 });
  for (let i = 0; i < 200; i++) {
    logs.logger.info({ i }, `message ${i}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
  await settle(logs.dir, 4);
  const files = await listLogFiles(logs.dir, 'camera_node');
  assert.ok(files.length > 1, `expected rotated files, got ${files.join(', ')}`);
  assert.ok(files.length <= 4, `maxFiles 3 keeps 3 rotated files plus the current one, got ${files.length}`);
  assert.equal(readlinkSync(join(logs.dir, 'current.log')), files[0]?.split('/').pop());

  const current = (await readFile(files[0] ?? '', 'utf8')).split('\n').filter(Boolean).length;
  const wanted = current + 5;
  const entries = await logs.tail(wanted);
  assert.deepEqual(
    entries.map((entry) => entry.i),
    Array.from({ length: wanted }, (_, k) => 200 - wanted + k),
  );
  assert.equal(entries.at(-1)?.msg, 'message 199');
  assert.equal(typeof entries[0]?.time, 'number');

  const all = await logs.tail(10_000);
  assert.equal(all.at(-1)?.i, 199);
  assert.ok(all.length < 200, 'files beyond maxFiles were removed');
  assert.deepEqual(
    all.map((entry) => entry.i),
    [...all.map((entry) => entry.i as number)].sort((a, b) => a - b),
  );
});

test('tail of a missing folder or an empty log is empty', async () => {
  assert.deepEqual(await tailLogs(join(root, 'never-created'), 'camera_node', 10), []);
  const logs = await startLogger();
  assert.deepEqual(await logs.tail(10), []);
  logs.logger.debug('below the level');
  assert.deepEqual(await logs.tail(10), []);
  logs.logger.info('first');
  assert.deepEqual(
    (await logs.tail(10)).map((entry) => entry.msg),
    ['first'],
  );
});

test('tail skips a partial last line and unparseable lines, and reads rotated files in numeric order', async () => {
  const dir = freshDir();
  await mkdir(dir);
  // Numbered files as pino-roll names them; 10 sorts after 9 by number, not by text.
  await writeFile(join(dir, 'camera_node.9.log'), line(1) + line(2));
  await writeFile(join(dir, 'camera_node.10.log'), `${line(3)}not json\n\n[1,2]\n${line(4)}{"level":30,"ti`);
  await writeFile(join(dir, 'camera_node.log.bak'), line(99));
  await writeFile(join(dir, 'other.1.log'), line(98));
  assert.deepEqual(await listLogFiles(dir, 'camera_node'), [join(dir, 'camera_node.10.log'), join(dir, 'camera_node.9.log')]);
  assert.deepEqual(
    (await tailLogs(dir, 'camera_node', 3)).map((entry) => entry.i),
    [2, 3, 4],
  );
  assert.deepEqual(
    (await tailLogs(dir, 'camera_node', 50)).map((entry) => entry.i),
    [1, 2, 3, 4],
  );
  assert.deepEqual(
    (await tailLogs(dir, 'camera_node', 1)).map((entry) => entry.i),
    [4],
  );
});

test('reading backwards in blocks gives the same lines as reading the whole file, for any block size', async () => {
  const dir = freshDir();
  await mkdir(dir);
  const file = join(dir, 'camera_node.1.log');
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.oneof(fc.record({ pad: fc.string({ maxLength: 40 }) }), fc.constant('junk')), { maxLength: 30 }),
      fc.boolean(),
      fc.integer({ min: 1, max: 64 }),
      fc.integer({ min: 1, max: 40 }),
      async (records, trailingNewline, blockBytes, wanted) => {
        const lines = records.map((record, i) => (record === 'junk' ? 'junk' : JSON.stringify({ level: 30, time: i, i, ...record })));
        await writeFile(file, lines.join('\n') + (trailingNewline && lines.length > 0 ? '\n' : ''));
        const expected = lines
          .flatMap((text) => (text === 'junk' ? [] : [JSON.parse(text)]))
          .reverse()
          .slice(0, wanted);
        assert.deepEqual(await readLastEntries(file, wanted, blockBytes), expected);
      },
    ),
    { numRuns: 200 },
  );
});

test('an over-long line is skipped without stopping the tail', async () => {
  const dir = freshDir();
  await mkdir(dir);
  const junk = 'x'.repeat(MAX_LINE_BYTES + 100_000);
  await writeFile(join(dir, 'camera_node.1.log'), `${line(1)}${junk}\n${line(2)}${junk}`);
  assert.deepEqual(
    (await tailLogs(dir, 'camera_node', 5)).map((entry) => entry.i),
    [1, 2],
  );
});

test('secrets are redacted and errors keep their stack', async () => {
  const logs = await startLogger();
  logs.logger.info(
    {
      password: 'hunter2',
      token: 'tok-1',
      nested: { authorization: 'Bearer abc', deeper: { secret: 's3cr3t' } },
      config: { mqtt_password: 'mq-pw', http_token: 'http-tok' },
      request: { headers: { Authorization: 'Bearer upper' } },
    },
    'with secrets',
  );
  logs.logger.error({ err: new Error('disk on fire') }, 'failed');
  const [withSecrets, failed] = await logs.tail(2);
  assert.equal(withSecrets?.password, '[redacted]');
  assert.equal(withSecrets?.token, '[redacted]');
  assert.deepEqual(withSecrets?.nested, { authorization: '[redacted]', deeper: { secret: '[redacted]' } });
  assert.deepEqual(withSecrets?.config, { mqtt_password: '[redacted]', http_token: '[redacted]' });
  assert.deepEqual(withSecrets?.request, { headers: { Authorization: '[redacted]' } });
  const raw = await readFile(join(logs.dir, 'current.log'), 'utf8');
  for (const secret of ['hunter2', 'tok-1', 'Bearer abc', 's3cr3t', 'mq-pw', 'http-tok', 'Bearer upper'])
    assert.ok(!raw.includes(secret), `${secret} reached the file`);
  const err = failed?.err as { message?: string; stack?: string; type?: string };
  assert.equal(err.message, 'disk on fire');
  assert.equal(err.type, 'Error');
  assert.match(err.stack ?? '', /disk on fire\n\s+at /);
});

test('two loggers in one process keep to their own folders', async () => {
  const a = await startLogger();
  const b = await startLogger();
  a.logger.info('from a');
  b.logger.info('from b');
  b.logger.info('from b again');
  assert.deepEqual(
    (await a.tail(10)).map((entry) => entry.msg),
    ['from a'],
  );
  assert.deepEqual(
    (await b.tail(10)).map((entry) => entry.msg),
    ['from b', 'from b again'],
  );
});

test('close() writes everything, closes the file, can be called twice, and silences later lines', async (t) => {
  const logs = await createNodeLogger({
    dir: freshDir(),
    name: 'camera_node',
    maxSizeMb: 10,
    maxFiles: 1,
    level: 'info',
    target: 'file',
    ringLines: 100,
  });
  for (let i = 0; i < 500; i++) logs.logger.info({ i }, 'burst');
  const [file] = await listLogFiles(join(root, `d${dirCount}`), 'camera_node');
  assert.ok(file);
  const fdsOnFile = () =>
    readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return readlinkSync(join('/proc/self/fd', fd)) === file;
      } catch {
        return false;
      }
    });
  const hasProc = existsSync('/proc/self/fd');
  if (hasProc) assert.equal(fdsOnFile().length, 1);
  const child = logs.logger.child({ part: 'late' });
  await logs.close();
  await logs.close();
  // A part still winding down may log after close(): the line is dropped, nothing throws.
  logs.logger.info('after close');
  child.warn('late child line');
  assert.equal((await readFile(file, 'utf8')).split('\n').filter(Boolean).length, 500);
  if (hasProc) assert.deepEqual(fdsOnFile(), [], 'the log file is still open');
  else t.diagnostic('no /proc/self/fd: open descriptors not checked');
  // Still readable after close, for a last GET /logs during shutdown.
  assert.equal((await logs.tail(1))[0]?.i, 499);
});

test('bad sizes are refused up front', async () => {
  await assert.rejects(
    createNodeLogger({ dir: freshDir(), name: 'camera_node', maxSizeMb: 0, maxFiles: 1, level: 'info', target: 'file', ringLines: 100 }),
    /maxSizeMb/,
  );
  await assert.rejects(
    createNodeLogger({ dir: freshDir(), name: 'camera_node', maxSizeMb: 1, maxFiles: 0, level: 'info', target: 'file', ringLines: 100 }),
    /maxFiles/,
  );
});

test('the in-memory ring keeps the last lines, oldest first, and skips what is not JSON', () => {
  const ring = createLogRing(3);
  assert.deepEqual(ring.tail(5), []);
  for (let n = 1; n <= 5; n += 1) ring.write(`${JSON.stringify({ level: 30, time: n, msg: `line ${n}` })}\n`);
  assert.deepEqual(
    ring.tail(10).map((entry) => entry.msg),
    ['line 3', 'line 4', 'line 5'],
  );
  assert.deepEqual(
    ring.tail(2).map((entry) => entry.msg),
    ['line 4', 'line 5'],
  );
  ring.write('not json\n');
  assert.deepEqual(
    ring.tail(3).map((entry) => entry.msg),
    ['line 4', 'line 5'],
  );
  assert.throws(() => createLogRing(0), /at least 1/);
});

test('LOG_TARGET=stdout writes no file, and tail() still answers from memory', async () => {
  const dir = freshDir();
  // warn and above only: the lines go to this test's stdout.
  const logs = await createNodeLogger({
    dir,
    name: 'camera_node',
    maxSizeMb: 1,
    maxFiles: 1,
    level: 'warn',
    target: 'stdout',
    ringLines: 2,
  });
  open.push(logs);
  logs.logger.warn('first');
  logs.logger.info('not at this level');
  logs.logger.warn('second');
  logs.logger.error('third');
  assert.deepEqual(
    (await logs.tail(10)).map((entry) => entry.msg),
    ['second', 'third'],
  );
  await logs.close();
  assert.equal(existsSync(dir), false, 'no log folder, no file');
});

test('a restart continues the newest file and removes what an earlier run left beyond maxFiles', async () => {
  const dir = freshDir();
  await mkdir(dir, { recursive: true });
  for (let n = 1; n <= 6; n += 1) await writeFile(join(dir, `camera_node.${n}.log`), line(n));
  const logs = await startLogger({ dir, maxFiles: 2 });
  logs.logger.info({ i: 7 }, 'after restart');
  await settle(dir, 3);
  const files = await listLogFiles(dir, 'camera_node');
  assert.deepEqual(
    files.map((file) => file.split('/').pop()),
    ['camera_node.6.log', 'camera_node.5.log', 'camera_node.4.log'],
  );
  assert.equal(readlinkSync(join(dir, 'current.log')), 'camera_node.6.log');
  assert.deepEqual(
    (await logs.tail(2)).map((entry) => entry.i),
    [6, 7],
  );
});
