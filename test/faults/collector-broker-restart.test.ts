import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { filesUnder, spawnCollector, type CollectorProcess } from '../helpers/collector.js';
import { spawnDaemon, type Daemon } from '../helpers/daemon.js';
import { recordFigures } from '../helpers/faults-figures.js';
import { sha256Of, waitFor } from '../helpers/faults-fs.js';
import { mosquittoMissing, startMosquitto } from '../helpers/mosquitto.js';

const ROUNDS = 2;
const NODE_ID = 'restart-node';

test('Mosquitto restarted mid-transfer, twice: the collector reconnects and every image completes, none listed partial', {
  skip: mosquittoMissing() ?? false,
  timeout: 240_000,
}, async () => {
  const broker = await startMosquitto(['max_queued_messages 10000']);
  const dir = await mkdtemp(join(tmpdir(), 'camera-node-collector-restart-'));
  const out = join(dir, 'collected');
  const figures = { restarts: 0, restarted_mid_transfer: 0, images: 0, completed: 0, listings_checked: 0, partial_listed: 0, lost: 0 };
  let node: Daemon | null = null;
  let collector: CollectorProcess | null = null;
  const sizes = new Map<string, number>();
  const checkListing = async (): Promise<void> => {
    for (const path of await filesUnder(out)) {
      if (path.startsWith('.partial/')) continue;
      figures.listings_checked += 1;
      const size = (await stat(join(out, path)).catch(() => null))?.size;
      if (size !== undefined && size !== sizes.get(path.split('/').at(-1) ?? '')) figures.partial_listed += 1;
    }
  };
  try {
    node = await spawnDaemon({
      NODE_ID,
      CAPTURE_DIR: join(dir, 'images'),
      LOG_DIR: join(dir, 'logs'),
      MQTT_URL: broker.url,
      CAMERA_SIM_SENSOR: 'ov5647',
      CHUNK_SIZE_KB: '16',
      HA_DISCOVERY: 'false',
    });
    collector = await spawnCollector(broker.url, out, 'shelf');
    for (let round = 0; round < ROUNDS; round += 1) {
      const response = await fetch(`${node.httpUrl}/capture?deliver=mqtt`, { method: 'POST' });
      assert.equal(response.status, 200);
      const { file_info } = (await response.json()) as { file_info: { filename: string; size: number } };
      sizes.set(file_info.filename, file_info.size);
      figures.images += 1;
      const part = join(out, '.partial', 'shelf', NODE_ID, `${file_info.filename}.part`);
      await waitFor(
        'the transfer under way',
        async () => (((await stat(part).catch(() => null))?.size ?? 0) >= file_info.size * 0.3 ? true : null),
        60_000,
        2,
      );
      await broker.restart();
      figures.restarts += 1;
      if (((await stat(part).catch(() => null))?.size ?? 0) < file_info.size) figures.restarted_mid_transfer += 1;
      const finalPath = await waitFor(
        `${file_info.filename} after the restart`,
        async () => {
          await checkListing();
          return (await filesUnder(out)).find((p) => !p.startsWith('.partial/') && p.endsWith(`/${file_info.filename}`)) ?? null;
        },
        90_000,
        10,
      );
      if ((await sha256Of(join(out, finalPath))) === (await sha256Of(join(dir, 'images', file_info.filename)))) figures.completed += 1;
    }
    figures.lost = figures.images - figures.completed;
    await recordFigures('collector, broker restarted', figures);
    assert.equal(figures.restarted_mid_transfer, ROUNDS, 'every restart was mid-transfer');
    assert.equal(figures.partial_listed, 0);
    assert.equal(figures.lost, 0);
  } finally {
    collector?.child.kill('SIGTERM');
    await collector?.exited;
    node?.child.kill('SIGTERM');
    await node?.exited;
    await broker.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
