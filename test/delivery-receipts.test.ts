import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { startTestCollector } from './helpers/receipt-collector.js';
import { waitFor } from './helpers/delivery.js';
import { collect, connectClient, request } from './helpers/mqtt.js';
import { startTestNode } from './helpers/node.js';

interface Channel {
  pending: number;
  awaiting_receipt: number;
  delivered: number;
  failed: number;
}

describe('delivered means a collector has it', () => {
  test('no collector: captures stay pending and undelivered, a full budget answers 507; a collector comes: every image arrives and is receipted', async (t) => {
    // Re-offers an hour apart: only the collector's `online` can explain a delivery within the test.
    const node = await startTestNode({
      deliver: 'mqtt',
      storage_limit_mb: 1,
      evict_undelivered: false,
      delivery_reoffer_base_s: 3600,
    });
    t.after(() => node.stop());
    const client = await connectClient(node.node.mqttUrl!);
    t.after(() => client.endAsync());
    const id = node.config.node_id;
    const status = async (): Promise<Channel> =>
      ((await request(client, 'cameras', id, { action: 'status' }))['node_status'] as { delivery: { mqtt: Channel } }).delivery.mqtt;
    const listed = async () =>
      (await request(client, 'cameras', id, { action: 'list' }))['images'] as Array<{ filename: string; delivered: string[] }>;

    const captured: string[] = [];
    let refused: Response | null = null;
    for (let i = 0; i < 30 && !refused; i += 1) {
      const response = await fetch(`${node.httpUrl}/capture`, { method: 'POST' });
      if (response.status === 200) captured.push(((await response.json()) as { file_info: { filename: string } }).file_info.filename);
      else refused = response;
    }
    assert.ok(refused, 'the budget filled');
    assert.equal(refused.status, 507, await refused.clone().text());
    await waitFor('every capture in the outbox', async () => ((await status()).pending === captured.length ? true : null));
    // Offered to nobody: the broker acknowledged every chunk, and still nothing is delivered.
    await waitFor('every capture offered', async () => ((await status()).awaiting_receipt === captured.length ? true : null));
    const before = await status();
    const listedBefore = await listed();
    const metrics = await (await fetch(`${node.httpUrl}/metrics`)).text();
    console.log(`no collector: captured ${captured.length}, refused 1 (507), pending ${before.pending}, delivered ${before.delivered}`);
    assert.equal(before.delivered, 0);
    assert.deepEqual(listedBefore.map((i) => i.filename).sort(), [...captured].sort(), 'nothing evicted');
    assert.ok(
      listedBefore.every((i) => i.delivered.length === 0),
      'no image shows delivered',
    );
    assert.match(metrics, new RegExp(`camera_node_delivery_pending\\{[^}]*channel="mqtt"[^}]*\\} ${captured.length}`));
    assert.match(metrics, /camera_node_deliveries_total\{[^}]*channel="mqtt"[^}]*\} 0/);

    const collector = await startTestCollector(node.node.mqttUrl!);
    t.after(() => collector.stop());
    await collector.waitForImages(captured.length);
    const after = await waitFor('every receipt', async () => {
      const found = await status();
      return found.delivered === captured.length ? found : null;
    });
    const counts = new Map<string, number>();
    for (const image of collector.images) counts.set(image.filename, (counts.get(image.filename) ?? 0) + 1);
    for (const image of collector.images)
      assert.ok((await readFile(image.path)).equals(await readFile(join(node.config.capture_dir, image.filename))), image.filename);
    console.log(
      `collector: received ${collector.images.length} of ${captured.length}, twice ${[...counts.values()].filter((n) => n > 1).length}, delivered ${after.delivered}, pending ${after.pending}`,
    );
    assert.deepEqual([...counts.keys()].sort(), [...captured].sort(), 'every image arrived');
    assert.ok(
      [...counts.values()].every((n) => n === 1),
      'each once',
    );
    assert.equal(after.pending, 0);
    assert.equal(after.failed, 0);
    assert.ok((await listed()).every((i) => i.delivered.includes('mqtt')));
    const accepted = await fetch(`${node.httpUrl}/capture`, { method: 'POST' });
    assert.equal(accepted.status, 200, 'delivered images may now make room');
  });

  test('receipts: a wrong sha256 is refused, an unknown image is not_found, a repeated receipt is a success', async (t) => {
    const node = await startTestNode({ delivery_reoffer_base_s: 3600 });
    t.after(() => node.stop());
    const client = await connectClient(node.node.mqttUrl!);
    t.after(() => client.endAsync());
    const id = node.config.node_id;
    const captured = await request(client, 'cameras', id, { action: 'capture', deliver: 'mqtt' });
    const filename = (captured['file_info'] as { filename: string }).filename;
    const sha256 = createHash('sha256')
      .update(await readFile(join(node.config.capture_dir, filename)))
      .digest('hex');
    const receipt = (fields: Record<string, unknown>) =>
      request(client, 'cameras', id, { action: 'receipt', collector: 'test', ...fields });

    const wrong = await receipt({ filename, sha256: '0'.repeat(64) });
    assert.equal(wrong['status'], 'error');
    assert.equal((wrong['error'] as { code: string }).code, 'bad_request');
    const unknown = await receipt({ filename: 'capture_20200101_000000.dng', sha256 });
    assert.equal((unknown['error'] as { code: string }).code, 'not_found');
    const invalid = await receipt({ filename, sha256: 'not-hex' });
    assert.equal((invalid['error'] as { code: string }).code, 'bad_request');
    const status = (await request(client, 'cameras', id, { action: 'status' }))['node_status'] as { delivery: { mqtt: Channel } };
    assert.equal(status.delivery.mqtt.pending, 1, 'bad receipts change nothing');

    const first = await receipt({ filename, sha256, transfer_id: 'x' });
    assert.deepEqual([first['status'], first['delivered']], ['success', true]);
    const again = await receipt({ filename, sha256 });
    assert.deepEqual([again['status'], again['delivered']], ['success', true]);
    const after = (await request(client, 'cameras', id, { action: 'status' }))['node_status'] as { delivery: { mqtt: Channel } };
    assert.deepEqual([after.delivery.mqtt.pending, after.delivery.mqtt.delivered], [0, 1]);
  });

  test('delivery_failures_total counts images given up, the same on MQTT and HTTP', async (t) => {
    // The upload target refuses (400: given up at once); the image owed on MQTT is deleted before any receipt.
    const target = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(400).end());
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => target.close(() => resolve())));
    const node = await startTestNode({
      upload_url: `http://127.0.0.1:${(target.address() as AddressInfo).port}/upload`,
      delivery_reoffer_base_s: 3600,
    });
    t.after(() => node.stop());
    const channel = async (name: 'mqtt' | 'http'): Promise<Channel & { retries: number }> =>
      ((await (await fetch(`${node.httpUrl}/status`)).json()) as { delivery: Record<string, Channel & { retries: number }> }).delivery[
        name
      ]!;
    assert.equal((await fetch(`${node.httpUrl}/capture?deliver=http`, { method: 'POST' })).status, 200);
    const owed = (await (await fetch(`${node.httpUrl}/capture?deliver=mqtt`, { method: 'POST' })).json()) as {
      file_info: { filename: string };
    };
    await waitFor('the upload given up', async () => ((await channel('http')).failed === 1 ? true : null));
    await waitFor('the MQTT offer made', async () => ((await channel('mqtt')).awaiting_receipt === 1 ? true : null));
    assert.equal((await fetch(`${node.httpUrl}/images/${owed.file_info.filename}`, { method: 'DELETE' })).status, 200);
    await waitFor('the MQTT delivery given up', async () => ((await channel('mqtt')).failed === 1 ? true : null));
    const [http, mqtt] = [await channel('http'), await channel('mqtt')];
    const metrics = await (await fetch(`${node.httpUrl}/metrics`)).text();
    const failures = (name: string) =>
      Number(new RegExp(`camera_node_delivery_failures_total\\{[^}]*channel="${name}"[^}]*\\} (\\d+)`).exec(metrics)?.[1]);
    console.log(`given up: http ${http.failed}, mqtt ${mqtt.failed}; metrics http ${failures('http')}, mqtt ${failures('mqtt')}`);
    assert.deepEqual([http.failed, http.pending, http.retries], [1, 0, 0]);
    assert.deepEqual([mqtt.failed, mqtt.pending, mqtt.retries], [1, 0, 0]);
    assert.deepEqual([failures('http'), failures('mqtt')], [1, 1]);
  });

  test('an image no receipt covers is offered again with a backoff, as its manifest alone; a collector then pulls it', async (t) => {
    const node = await startTestNode({ delivery_reoffer_base_s: 1, delivery_reoffer_max_s: 2, chunk_size_kb: 16 });
    t.after(() => node.stop());
    const client = await connectClient(node.node.mqttUrl!);
    t.after(() => client.endAsync());
    const id = node.config.node_id;
    const manifests = await collect(client, `cameras/${id}/images/+/manifest`);
    const chunks = await collect(client, `cameras/${id}/images/+/chunk/+`);
    const started = Date.now();
    const captured = await request(client, 'cameras', id, { action: 'capture', deliver: 'mqtt' });
    const filename = (captured['file_info'] as { filename: string }).filename;
    const offers = await manifests.waitFor(() => true, 3, 20_000);
    const first = offers[0]!.json<{ chunks: number }>();
    await waitFor('the first offer sent whole', () => (chunks.messages.length >= first.chunks ? true : null));
    const chunksAfterReoffers = chunks.messages.length;
    console.log(`offers ${offers.length} in ${Date.now() - started} ms, chunks ${chunksAfterReoffers} (the image has ${first.chunks})`);
    assert.equal(chunksAfterReoffers, first.chunks, 're-offers sent no chunks');
    assert.ok(Date.now() - started >= 2 * 1000 - 100, 'two re-offers took at least two backoff floors');
    assert.ok(
      offers.every((m) => m.json<{ resend?: unknown }>()['resend'] === undefined),
      'each offer is a plain manifest',
    );

    const collector = await startTestCollector(node.node.mqttUrl!);
    t.after(() => collector.stop());
    await collector.waitForImages(1);
    assert.equal(collector.images[0]?.filename, filename);
    const status = await waitFor('the receipt', async () => {
      const found = (
        (await request(client, 'cameras', id, { action: 'status' }))['node_status'] as { delivery: { mqtt: Channel & { retries: number } } }
      ).delivery.mqtt;
      return found.delivered === 1 ? found : null;
    });
    assert.ok(status.retries >= 2, `re-offers counted as retries (${status.retries})`);
    assert.equal(status.failed, 0);
  });
});
