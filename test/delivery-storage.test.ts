import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connectClient, request } from './helpers/mqtt.js';
import { startTestNode } from './helpers/node.js';
import { tempDir } from './helpers/delivery.js';

const OLDER = 'capture_20260101_120000.dng';
const NEWER = 'capture_20260101_130000.dng';
const KB = 1024;

/** A node whose store already holds the named images (found at start, never delivered). */
async function nodeWith(images: Record<string, number>, overrides: Parameters<typeof startTestNode>[0]) {
  const dir = await tempDir('delivery-storage');
  await mkdir(join(dir, 'images'), { recursive: true });
  for (const [name, size] of Object.entries(images)) await writeFile(join(dir, 'images', name), randomBytes(size));
  const node = await startTestNode({ min_free_disk_mb: 0, ...overrides }, { keepDir: dir });
  const client = await connectClient(node.node.mqttUrl!);
  return {
    node,
    client,
    send: (filename: string) => request(client, 'cameras', node.config.node_id, { action: 'send', filename }, 30_000),
    capture: () => fetch(`${node.httpUrl}/capture`, { method: 'POST' }),
    names: async () =>
      ((await (await fetch(`${node.httpUrl}/images`)).json()) as Array<{ filename: string }>).map((i) => i.filename).sort(),
    async stop() {
      await client.endAsync();
      await node.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

describe('storage policy and delivery', () => {
  test('eviction takes a delivered image before an older undelivered one', async (t) => {
    // Room for the two stored images and not for a third (a tiny simulated DNG is ~150 KB).
    const n = await nodeWith({ [OLDER]: 500 * KB, [NEWER]: 500 * KB }, { storage_limit_mb: 1.1 });
    t.after(() => n.stop());
    assert.equal((await n.send(NEWER))['status'], 'success');
    const response = await n.capture();
    assert.equal(response.status, 200, await response.clone().text());
    const captured = ((await response.json()) as { file_info: { filename: string } }).file_info.filename;
    assert.deepEqual(await n.names(), [OLDER, captured].sort(), 'the delivered (newer) image went, the undelivered one stayed');
  });

  test('with EVICT_UNDELIVERED=false a capture that needs an undelivered image deleted fails with 507; once it is delivered, it may go', async (t) => {
    const n = await nodeWith({ [OLDER]: 1000 * KB }, { storage_limit_mb: 1.1, evict_undelivered: false });
    t.after(() => n.stop());
    const refused = await n.capture();
    assert.equal(refused.status, 507);
    assert.match(((await refused.json()) as { detail: string }).detail, /undelivered/);
    assert.deepEqual(await n.names(), [OLDER], 'nothing was deleted');

    assert.equal((await n.send(OLDER))['status'], 'success');
    const accepted = await n.capture();
    assert.equal(accepted.status, 200, await accepted.clone().text());
    const captured = ((await accepted.json()) as { file_info: { filename: string } }).file_info.filename;
    assert.deepEqual(await n.names(), [captured]);
  });
});
