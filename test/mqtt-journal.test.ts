import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { createCommandHandler, type ActionDefinition, type Reply } from '../src/mqtt/command-handler.js';
import { checkFreshness } from '../src/mqtt/freshness.js';
import { CommandJournal, type JournalLimits } from '../src/mqtt/journal.js';
import { createCommandLimits } from '../src/mqtt/limits.js';
import { NodeError } from '../src/errors.js';
import { createSchemaRegistry } from '../src/schemas.js';

const logger = pino({ level: 'silent' });
const ajv = createSchemaRegistry().ajv;
const validReply = createSchemaRegistry().validator('response.schema.json');
const interrupted = (id: string): Reply => ({
  id,
  node_id: 'cam1',
  action: null,
  status: 'error',
  error: { code: 'interrupted', message: 'interrupted' },
});
const LIMITS: JournalLimits = { windowMs: 60_000, maxEntries: 100, maxBytes: 100_000 };
const success = (id: string, extra: Record<string, unknown> = {}): Reply => ({
  id,
  node_id: 'cam1',
  action: 'x',
  status: 'success',
  ...extra,
});

describe('command journal', () => {
  let dir: string;
  let path: string;
  let n = 0;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'journal-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));
  const fresh = () => {
    path = join(dir, `journal-${n++}.jsonl`);
    return path;
  };
  const openAt = (file: string, now = () => 1_000, limits = LIMITS) =>
    CommandJournal.open<Reply>({ path: file, limits, interrupted, logger, now });

  test('a finished command is answered again after a restart; a started one reads as interrupted', async () => {
    const file = fresh();
    const first = await openAt(file);
    first.begin('done-1', Promise.resolve(success('done-1', { n: 1 })), true);
    await first.start('done-1');
    first.finish('done-1', success('done-1', { n: 1 }));
    first.begin('crashed', new Promise<Reply>(() => undefined), true);
    await first.start('crashed');
    first.begin('waiting', new Promise<Reply>(() => undefined), true);
    first.begin('read', Promise.resolve(success('read')), false);
    await first.start('read');
    first.finish('read', success('read'));
    first.begin('refused', Promise.resolve(success('refused')), true);
    await first.start('refused');
    first.forget('refused');
    // No close: what is on disk is what a kill -9 leaves.
    await new Promise((resolve) => setImmediate(resolve));
    const second = await openAt(file);
    assert.deepEqual(await second.get('done-1'), success('done-1', { n: 1 }));
    assert.equal((await second.get('crashed'))?.error?.code, 'interrupted');
    assert.equal(second.get('waiting'), undefined, 'accepted but not started: a redelivery runs it');
    assert.equal(second.get('read'), undefined, 'reads are not kept on disk');
    assert.equal(second.get('refused'), undefined, 'a refusal is forgotten');
    for (const id of ['done-1', 'crashed']) assert.ok(validReply(await second.get(id)), JSON.stringify(validReply.errors));
    await first.close();
    await second.close();
  });

  test('the "started" record is on disk before start resolves, not before', async () => {
    const file = fresh();
    const journal = await openAt(file);
    journal.begin('c1', new Promise<Reply>(() => undefined), true);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(await readFile(file, 'utf8'), '');
    await journal.start('c1');
    assert.match(await readFile(file, 'utf8'), /"id":"c1".*"s":"run"/);
    await journal.close();
  });

  test('a command still running is remembered past the window and the entry bound', () => {
    let now = 0;
    const journal = CommandJournal.inMemory<Reply>({ windowMs: 1_000, maxEntries: 3, maxBytes: 10_000 }, logger, () => now);
    const running = new Promise<Reply>(() => undefined);
    journal.begin('scheduled', running, true);
    for (let i = 0; i < 10; i++) {
      journal.begin(`quick-${i}`, Promise.resolve(success(`quick-${i}`)), true);
      journal.finish(`quick-${i}`, success(`quick-${i}`));
    }
    now = 3_600_000;
    assert.equal(journal.get('scheduled'), running, 'a repeat still waits for it');
    assert.equal(journal.get('quick-9'), undefined);
  });

  test('a torn or corrupt line is skipped; the rest is read', async () => {
    const file = fresh();
    const journal = await openAt(file);
    journal.begin('a', Promise.resolve(success('a')), true);
    await journal.start('a');
    journal.finish('a', success('a'));
    await journal.close();
    await appendFile(file, 'garbage\n{"id":"b","t":1000,"s":"do');
    const again = await openAt(file);
    assert.equal((await again.get('a'))?.status, 'success');
    assert.equal(again.get('b'), undefined);
    await again.close();
    assert.doesNotMatch(await readFile(file, 'utf8'), /garbage/, 'the restart rewrote the file without the bad lines');
  });

  test('bounded by the window, the entry count and the bytes, in memory and on disk', async () => {
    let now = 1_000;
    const file = fresh();
    const limits = { windowMs: 10_000, maxEntries: 20, maxBytes: 4_000 };
    const journal = await openAt(file, () => now, limits);
    for (let i = 0; i < 500; i++) {
      const id = `id-${i}`;
      journal.begin(id, Promise.resolve(success(id)), true);
      await journal.start(id);
      journal.finish(id, success(id, { pad: 'x'.repeat(i % 7 === 0 ? 300 : 10) }));
      now += 5;
    }
    await journal.close();
    assert.ok(journal.size <= 20);
    assert.ok(journal.weight <= 4_000);
    assert.ok(journal.get('id-0') === undefined && journal.get('id-499') !== undefined, 'the oldest went first');
    assert.ok((await stat(file)).size <= 3 * 4_000, `journal file is ${(await stat(file)).size} bytes`);
    now += 10_001;
    const later = await openAt(file, () => now, limits);
    assert.equal(later.size, 0, 'nothing outlives the window');
    await later.close();
    assert.equal((await stat(file)).size, 0);
  });
});

describe('command handler: once, fresh, bounded', () => {
  function countingAction(outcome: () => Promise<Record<string, unknown>>): { action: ActionDefinition; runs: () => number } {
    let runs = 0;
    return {
      action: {
        validate: ajv.compile({ type: 'object', additionalProperties: false, properties: { n: { type: 'integer' } } }),
        run: async () => {
          runs++;
          return outcome();
        },
      },
      runs: () => runs,
    };
  }
  const send = (handler: ReturnType<typeof createCommandHandler>, command: Record<string, unknown>) =>
    handler.handleMessage(Buffer.from(JSON.stringify(command)), 'cameras/cam1/cmd');

  test('after a crash, a command that had started answers interrupted; one still waiting for its turn runs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'journal-crash-'));
    const path = join(dir, 'journal.jsonl');
    const hang = new Promise<Record<string, unknown>>(() => undefined);
    let beforeCrash!: () => void;
    const gotTurn = new Promise<void>((resolve) => {
      beforeCrash = resolve;
    });
    const crashing: ActionDefinition = {
      validate: ajv.compile({ type: 'object' }),
      // Has its effect at once (like delete), then the node dies.
      run: async () => {
        beforeCrash();
        return hang;
      },
    };
    const queued: ActionDefinition = {
      validate: ajv.compile({ type: 'object' }),
      marksStart: true,
      // Waits in a queue (like capture) and never gets its turn before the crash.
      run: async () => hang,
    };
    const open = () => CommandJournal.open<Reply>({ path, limits: LIMITS, interrupted, logger });
    const journal = await open();
    const before = createCommandHandler({
      nodeId: 'cam1',
      maxCommandBytes: 1024,
      actions: new Map([
        ['effect', crashing],
        ['queued', queued],
      ]),
      logger,
      journal,
    });
    void send(before, { id: 'e1', action: 'effect' });
    void send(before, { id: 'q1', action: 'queued' });
    // run() is called once its start is on disk.
    await gotTurn;
    // The restart: a new journal from the same file, actions that now complete.
    let runs = 0;
    const after = createCommandHandler({
      nodeId: 'cam1',
      maxCommandBytes: 1024,
      actions: new Map(
        ['effect', 'queued'].map((name) => [
          name,
          {
            validate: ajv.compile({ type: 'object' }),
            run: async () => {
              runs++;
              return {};
            },
          },
        ]),
      ),
      logger,
      journal: await open(),
    });
    assert.equal((await send(after, { id: 'e1', action: 'effect' })).reply.error?.code, 'interrupted');
    assert.equal((await send(after, { id: 'q1', action: 'queued' })).reply.status, 'success');
    assert.equal(runs, 1, 'only the command that never started ran again');
    await journal.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('a refusal is answered but not remembered: a retry with the same id runs', async () => {
    let busy = true;
    const counted = countingAction(async () => {
      if (busy) throw new NodeError('busy', 'the camera queue is full');
      return { ok: true };
    });
    const handler = createCommandHandler({ nodeId: 'cam1', maxCommandBytes: 1024, actions: new Map([['go', counted.action]]), logger });
    assert.equal((await send(handler, { id: 'r1', action: 'go' })).reply.error?.code, 'busy');
    busy = false;
    assert.equal((await send(handler, { id: 'r1', action: 'go' })).reply.status, 'success');
    assert.equal((await send(handler, { id: 'r1', action: 'go' })).reply.status, 'success');
    assert.equal(counted.runs(), 2, 'refused once, ran once, then answered from the journal');
  });

  test('a failure that ran is remembered: the retry gets the same error, not a second run', async () => {
    const counted = countingAction(async () => {
      throw new NodeError('camera_failed', 'the camera app exited with 1');
    });
    const handler = createCommandHandler({ nodeId: 'cam1', maxCommandBytes: 1024, actions: new Map([['go', counted.action]]), logger });
    for (let i = 0; i < 3; i++) assert.equal((await send(handler, { id: 'f1', action: 'go' })).reply.error?.code, 'camera_failed');
    assert.equal(counted.runs(), 1);
  });

  test('stale and expired commands are refused with expired and the id; reply_to is returned for routing', async () => {
    const counted = countingAction(async () => ({}));
    const now = 1_800_000_000_000;
    const handler = createCommandHandler({
      nodeId: 'cam1',
      maxCommandBytes: 1024,
      actions: new Map([['go', counted.action]]),
      logger,
      freshness: { maxAgeMs: 30_000, toleranceMs: 50, now: () => now },
    });
    const stale = await send(handler, { id: 's1', action: 'go', sent_at: now - 31_000, reply_to: 'cli-1' });
    assert.equal(stale.reply.error?.code, 'expired');
    assert.equal(stale.reply.id, 's1');
    assert.equal(stale.replyTo, 'cli-1');
    assert.ok(validReply(stale.reply));
    const expired = await send(handler, { id: 's2', action: 'go', sent_at: now, expires_at: new Date(now - 1000).toISOString() });
    assert.equal(expired.reply.error?.code, 'expired');
    const fresh = await send(handler, { id: 's3', action: 'go', sent_at: new Date(now - 29_000).toISOString() });
    assert.equal(fresh.reply.status, 'success');
    const bad = await send(handler, { id: 's4', action: 'go', sent_at: 'yesterday' });
    assert.equal(bad.reply.error?.code, 'bad_request');
    assert.match(bad.reply.error?.message ?? '', /^sent_at:/);
    const badRoute = await send(handler, { id: 's5', action: 'go', reply_to: 'a/b' });
    assert.equal(badRoute.reply.error?.code, 'bad_request');
    assert.equal(counted.runs(), 1);
    assert.equal(
      (await send(handler, { id: 's1', action: 'go', sent_at: now })).reply.status,
      'success',
      'the refused id runs when retried fresh',
    );
  });

  test('freshness: a scheduled capture is judged by its at, clock offsets are allowed for, an unsynchronised clock relaxes it', () => {
    const now = 1_800_000_000_000;
    const options = { maxAgeMs: 30_000, toleranceMs: 50, now: () => now };
    const sentLongAgo = now - 3_600_000;
    assert.doesNotThrow(() => checkFreshness({ action: 'capture', sent_at: sentLongAgo, at: now + 5_000 }, options), 'booked ahead');
    assert.throws(() => checkFreshness({ action: 'capture', sent_at: now, at: now - 1_000 }, options), { code: 'expired' });
    assert.doesNotThrow(() => checkFreshness({ action: 'capture', at: now - 40 }, options), 'within the tolerance');
    // chrony says this clock is 10 s ahead: a command sent 35 s ago by this clock is 25 s old.
    const ahead = {
      ...options,
      clock: () => ({ synchronized: true, source: 'chrony' as const, server: null, offset_ms: 10_000, checked_at: null }),
    };
    assert.doesNotThrow(() => checkFreshness({ action: 'list', sent_at: now - 35_000 }, ahead));
    const unsynced = { ...options, clock: () => ({ ...ahead.clock(), synchronized: false, offset_ms: null }) };
    assert.doesNotThrow(
      () => checkFreshness({ action: 'list', sent_at: sentLongAgo }, unsynced),
      'a clock known wrong does not judge ages',
    );
    const unknown = { ...options, clock: () => ({ ...ahead.clock(), synchronized: null, source: null, offset_ms: null }) };
    assert.throws(
      () => checkFreshness({ action: 'list', sent_at: sentLongAgo }, unknown),
      { code: 'expired' },
      'a clock nobody can check is trusted',
    );
    assert.doesNotThrow(() => checkFreshness({ action: 'list', sent_at: sentLongAgo }, { ...options, maxAgeMs: 0 }), '0 = no age limit');
  });

  test('commands in flight are capped and each sender is rate-limited; refusals carry the id', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const slow = countingAction(async () => {
      await gate;
      return {};
    });
    let now = 0;
    const handler = createCommandHandler({
      nodeId: 'cam1',
      maxCommandBytes: 1024,
      actions: new Map([['slow', slow.action]]),
      logger,
      limits: createCommandLimits({ maxInFlight: 2, perMinute: 3, now: () => now }),
    });
    const running = [
      send(handler, { id: 'a', action: 'slow', reply_to: 'one' }),
      send(handler, { id: 'b', action: 'slow', reply_to: 'two' }),
    ];
    await new Promise((resolve) => setImmediate(resolve));
    const busy = await send(handler, { id: 'c', action: 'slow', reply_to: 'three' });
    assert.equal(busy.reply.error?.code, 'busy');
    assert.equal(busy.reply.id, 'c');
    const duplicate = send(handler, { id: 'a', action: 'slow', reply_to: 'one' });
    release();
    await Promise.all([...running, duplicate]);
    assert.equal((await duplicate).reply.status, 'success', 'a duplicate waits for the running command, not counted against the cap');
    for (const id of ['d', 'e']) assert.equal((await send(handler, { id, action: 'slow', reply_to: 'one' })).reply.status, 'success');
    const limited = await send(handler, { id: 'f', action: 'slow', reply_to: 'one' });
    assert.equal(limited.reply.error?.code, 'rate_limited');
    assert.equal(limited.reply.id, 'f');
    assert.equal(
      (await send(handler, { id: 'g', action: 'slow', reply_to: 'two' })).reply.status,
      'success',
      'another sender is not limited',
    );
    now += 60_000;
    assert.equal(
      (await send(handler, { id: 'f', action: 'slow', reply_to: 'one' })).reply.status,
      'success',
      'next minute, the retry runs',
    );
  });
});
