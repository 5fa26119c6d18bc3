import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { startTestNode, type TestNode } from './helpers/node.js';

interface BurstReply {
  status: string;
  detail?: string;
  count?: number;
  failed?: number;
  file_info: { filename: string };
  files?: Array<{ filename: string; size: number }>;
  frames?: Array<{ index: number; filename?: string; triggered_at?: string; scheduled_at?: string; late_ms?: number; error?: unknown }>;
}

describe('bursts (count, interval_ms)', () => {
  let node: TestNode;
  before(async () => {
    node = await startTestNode({ mqtt_enabled: false });
  });
  after(async () => {
    await node.stop();
  });

  test('a burst of 3 answers once with every file, each stored, frames spaced from the first', async () => {
    const response = await fetch(`${node.httpUrl}/capture?count=3&interval_ms=250`, { method: 'POST' });
    const body = (await response.json()) as BurstReply;
    assert.equal(response.status, 200, JSON.stringify(body));
    assert.equal(body.status, 'success');
    assert.equal(body.count, 3);
    assert.equal(body.failed, 0);
    assert.equal(body.files?.length, 3);
    assert.equal(body.frames?.length, 3);
    const names = body.files?.map((file) => file.filename) ?? [];
    assert.equal(new Set(names).size, 3, 'three different files');
    assert.equal(body.file_info.filename, names[0]);
    for (const name of names) assert.ok((await stat(join(node.config.capture_dir, name))).size > 0);
    const list = (await (await fetch(`${node.httpUrl}/images`)).json()) as Array<{ filename: string }>;
    for (const name of names)
      assert.ok(
        list.some((image) => image.filename === name),
        `${name} is listed`,
      );
    // Frames after the first are scheduled from the first frame's trigger, interval_ms apart.
    const [first, second, third] = body.frames ?? [];
    assert.equal(first?.scheduled_at, undefined);
    const t0 = Date.parse(first?.triggered_at ?? '');
    assert.ok(Math.abs(Date.parse(second?.scheduled_at ?? '') - (t0 + 250)) <= 1);
    assert.ok(Math.abs(Date.parse(third?.scheduled_at ?? '') - (t0 + 500)) <= 1);
    for (const frame of [second, third])
      assert.ok(Date.parse(frame?.triggered_at ?? '') >= Date.parse(frame?.scheduled_at ?? '') - node.config.schedule_tolerance_ms);
  });

  test('a burst with at starts at that instant', async () => {
    const at = Date.now() + 400;
    const response = await fetch(`${node.httpUrl}/capture?count=2&interval_ms=100&at=${at}`, { method: 'POST' });
    const body = (await response.json()) as BurstReply;
    assert.equal(response.status, 200, JSON.stringify(body));
    assert.deepEqual(
      body.frames?.map((frame) => frame.scheduled_at),
      [new Date(at).toISOString(), new Date(at + 100).toISOString()],
    );
    assert.ok(body.frames?.every((frame) => typeof frame.late_ms === 'number'));
  });

  test('bad counts and intervals are refused, and return_file does not mix with a burst', async () => {
    // Out of the schema's range: FastAPI's 422. Each value valid, the combination not: 400.
    for (const [query, status] of [
      ['count=0', 422],
      ['count=101', 422],
      ['count=2&interval_ms=-5', 422],
      ['count=2&interval_ms=3600001', 422],
      ['count=2&return_file=true', 400],
    ] as const) {
      const response = await fetch(`${node.httpUrl}/capture?${query}`, { method: 'POST' });
      assert.equal(response.status, status, query);
      assert.ok(((await response.json()) as { detail?: unknown }).detail, `${query}: a detail says why`);
    }
  });
});
