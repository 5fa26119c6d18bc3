import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { recordLateImage, type ShotNode, type ShotReport, shotFile, summarize, writeShotReport } from '../src/client/shot.js';
import { createSchemaRegistry, describeSchemaError } from '../src/schemas.js';
import { tempDir } from './helpers/delivery.js';

const SHA = 'a'.repeat(64);

function node(id: string, overrides: Partial<ShotNode> = {}): ShotNode {
  return {
    node_id: id,
    status: 'ok',
    availability: 'online',
    filename: 'capture_20260101_120000.dng',
    size: 100,
    sha256: null,
    delivered: false,
    files: [{ filename: 'capture_20260101_120000.dng', size: 100, sha256: null, delivered: false, path: null }],
    scheduled_at: '2026-01-01T12:00:00.000Z',
    triggered_at: '2026-01-01T12:00:00.004Z',
    exposure_started_at: null,
    late_ms: 4,
    exposure_late_ms: null,
    clock: { synchronized: true, offset_ms: -1.5, source: 'chrony' },
    ...overrides,
  };
}

test('the summary counts nodes asked, answered, delivered and missing, and the spreads and worst clock offset', () => {
  const report = summarize({
    shot_id: 'shot-1',
    created_at: '2026-01-01T11:59:58.000Z',
    finished_at: '2026-01-01T12:00:05.000Z',
    target: 'all',
    at: '2026-01-01T12:00:00.000Z',
    deliver: 'mqtt',
    nodes: [
      node('a', { delivered: true, exposure_started_at: '2026-01-01T12:00:00.010Z' }),
      node('b', {
        triggered_at: '2026-01-01T12:00:00.019Z',
        exposure_started_at: '2026-01-01T12:00:00.030Z',
        clock: { synchronized: true, offset_ms: 3, source: 'chrony' },
      }),
      node('c', { status: 'error', error: { code: 'camera_failed', message: 'no frame' }, files: [], filename: null, size: null }),
      node('d', {
        status: 'missing',
        availability: 'offline',
        files: [],
        filename: null,
        size: null,
        triggered_at: null,
        clock: { synchronized: null, offset_ms: null, source: null },
      }),
    ],
  });
  assert.deepEqual(report.missing, ['d']);
  assert.deepEqual(report.summary, {
    asked: 4,
    answered: 3,
    delivered: 1,
    failed: 1,
    trigger_spread_ms: 15,
    exposure_spread_ms: 20,
    worst_clock_offset_ms: 3,
    missing: 1,
  });
  const valid = createSchemaRegistry().validator<ShotReport>('shot.schema.json');
  assert.ok(valid(report), describeSchemaError(valid.errors));
  assert.equal(valid({ ...report, target: 'everyone' }), false, 'the target is all, group:<name> or a list');
});

test('an image that comes after the report was written is marked delivered in shot.json', async (t) => {
  const outDir = await tempDir('shot');
  t.after(() => rm(outDir, { recursive: true, force: true }));
  const report = summarize({
    shot_id: 'shot-2',
    created_at: '2026-01-01T11:59:58.000Z',
    finished_at: '2026-01-01T12:00:05.000Z',
    target: ['a', 'b'],
    at: null,
    deliver: 'mqtt',
    nodes: [node('a', { delivered: true, sha256: SHA }), node('b')],
  });
  await writeShotReport(outDir, report);
  const image = {
    nodeId: 'b',
    filename: 'capture_20260101_120000.dng',
    path: join(outDir, 'shot-2', 'b', 'capture_20260101_120000.dng'),
    size: 100,
    sha256: SHA,
    requestId: 'shot-2',
    transferId: 't',
    capturedAt: '2026-01-01T12:00:00.004Z',
  };
  const updated = await recordLateImage(outDir, image);
  assert.equal(updated?.summary.delivered, 2);
  const written = JSON.parse(await readFile(shotFile(outDir, 'shot-2'), 'utf8')) as ShotReport;
  assert.deepEqual(written, updated);
  assert.deepEqual(written.nodes[1]?.files[0], {
    filename: image.filename,
    size: 100,
    sha256: SHA,
    delivered: true,
    path: 'b/capture_20260101_120000.dng',
  });
  assert.equal(await recordLateImage(outDir, image), null, 'a second time changes nothing');
  assert.equal(await recordLateImage(outDir, { ...image, requestId: 'no-such-shot' }), null);
});
