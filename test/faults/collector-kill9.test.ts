import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { filesUnder, spawnCollector, type CollectorProcess } from '../helpers/collector.js';
import { spawnDaemon, type Daemon } from '../helpers/daemon.js';
import { recordFigures } from '../helpers/faults-figures.js';
import { sha256Of, waitFor } from '../helpers/faults-fs.js';
import { mosquittoMissing, startMosquitto } from '../helpers/mosquitto.js';

const ROUNDS = 3;
const CHUNK_KB = 16;
const NODE_ID = 'kill9-node';

test('kill -9 of the collector mid-transfer, 3 times: each image completes after the restart, no partial file is ever listed', {
  skip: mosquittoMissing() ?? false,
  timeout: 240_000,
}, async () => {
  // The broker holds the chunks published while the collector is away (its session is persistent).
  const broker = await startMosquitto(['max_queued_messages 10000']);
  const dir = await mkdtemp(join(tmpdir(), 'camera-node-collector-kill9-'));
  const out = join(dir, 'collected');
  const figures = {
    kills: 0,
    killed_mid_transfer: 0,
    images: 0,
    completed: 0,
    listings_checked: 0,
    partial_listed: 0,
    corrupt: 0,
    lost: 0,
    partial_files_left: 0,
  };
  let node: Daemon | null = null;
  let collector: CollectorProcess | null = null;
  // A 10 MB DNG in 16 KB chunks: about 640 chunks, long enough to be killed in the middle.
  node = await spawnDaemon({
    NODE_ID,
    CAPTURE_DIR: join(dir, 'images'),
    LOG_DIR: join(dir, 'logs'),
    MQTT_URL: broker.url,
    CAMERA_SIM_SENSOR: 'ov5647',
    CHUNK_SIZE_KB: String(CHUNK_KB),
    HA_DISCOVERY: 'false',
  });
  const sizes = new Map<string, number>();
  /** Every file shown outside the hidden partial folder must be a complete image. */
  const checkListing = async (): Promise<void> => {
    for (const path of await filesUnder(out)) {
      if (path.startsWith('.partial/')) continue;
      figures.listings_checked += 1;
      const name = path.split('/').at(-1) ?? '';
      const size = (await stat(join(out, path)).catch(() => null))?.size;
      if (size !== undefined && size !== sizes.get(name)) figures.partial_listed += 1;
    }
  };
  try {
    collector = await spawnCollector(broker.url, out, 'shelf');
    for (let round = 0; round < ROUNDS; round += 1) {
      const response = await fetch(`${node.httpUrl}/capture?deliver=mqtt`, { method: 'POST' });
      assert.equal(response.status, 200, await response.clone().text());
      const { file_info } = (await response.json()) as { file_info: { filename: string; size: number } };
      sizes.set(file_info.filename, file_info.size);
      figures.images += 1;
      const part = join(out, '.partial', NODE_ID, `${file_info.filename}.part`);
      // Kill once a good part of the image is in, and well before the end.
      const wanted = Math.floor(file_info.size * (0.2 + 0.2 * round));
      await waitFor(
        'the collector halfway',
        async () => (((await stat(part).catch(() => null))?.size ?? 0) >= wanted ? true : null),
        20_000,
        2,
      ).catch(async (err: Error) => {
        throw new Error(
          `${err.message} (round ${round}; files: ${(await filesUnder(out)).join(', ')}; collector: ${collector?.stderr()}; node: ${node?.records
            .slice(-8)
            .map((r) => JSON.stringify(r))
            .join('\n')})`,
        );
      });
      const running = collector;
      running.child.kill('SIGKILL');
      await running.exited;
      figures.kills += 1;
      const partSize = (await stat(part).catch(() => null))?.size ?? 0;
      if (partSize < file_info.size) figures.killed_mid_transfer += 1;
      await checkListing();
      collector = await spawnCollector(broker.url, out, 'shelf');
      const finalPath = await waitFor(
        `${file_info.filename} completed after the restart`,
        async () => {
          await checkListing();
          return (await filesUnder(out)).find((p) => !p.startsWith('.partial/') && p.endsWith(`/${file_info.filename}`)) ?? null;
        },
        60_000,
        5,
      );
      const expected = await sha256Of(join(dir, 'images', file_info.filename));
      if ((await sha256Of(join(out, finalPath))) === expected) figures.completed += 1;
      else figures.corrupt += 1;
    }
    figures.lost = figures.images - figures.completed;
    figures.partial_files_left = (await filesUnder(join(out, '.partial'))).length;
    await recordFigures('collector kill -9', figures);
    assert.equal(figures.killed_mid_transfer, ROUNDS, 'every kill was mid-transfer');
    assert.equal(figures.partial_listed, 0, 'no partial file listed');
    assert.equal(figures.corrupt, 0);
    assert.equal(figures.lost, 0, 'every image completed');
    assert.equal(figures.partial_files_left, 0, 'no partial file left');
  } finally {
    collector?.child.kill('SIGKILL');
    await collector?.exited;
    node.child.kill('SIGTERM');
    await node.exited;
    await broker.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
