import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnDaemon, type Daemon } from '../helpers/daemon.js';
import { recordFigures } from '../helpers/faults-figures.js';
import { entries, imagesOnDisk, listImages, processesMentioning, sleep, waitFor } from '../helpers/faults-fs.js';

const KILLS = 20;
/** Files the node keeps beside the images; anything else in the capture dir is a leftover. */
const NODE_FILES = new Set(['.tmp', '.camera-node-state.json', '.outbox']);

async function isDng(path: string): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const head = Buffer.alloc(4);
    await handle.read(head, 0, 4, 0);
    return head.equals(Buffer.from('II*\0', 'latin1')) || head.equals(Buffer.from('MM\0*', 'latin1'));
  } finally {
    await handle.close();
  }
}

test('kill -9 of the node mid-capture, 20 times: no partial file listed, temp files gone, index = disk', { timeout: 240_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'camera-node-kill9-'));
  const captureDir = join(dir, 'images');
  const tempDir = join(captureDir, '.tmp');
  // A tiny sensor written at 0.2 MB/s: a capture spends most of its ~0.9 s writing its DNG.
  const env = { CAPTURE_DIR: captureDir, LOG_DIR: join(dir, 'logs'), MQTT_ENABLED: 'false', CAMERA_SIM_WRITE_MBPS: '0.2' };
  const figures = {
    kills: 0,
    killed_mid_write: 0,
    completed_before_kill: 0,
    listings_checked: 0,
    partial_listed: 0,
    temp_left_after_restart: 0,
    stray_files: 0,
    index_mismatches: 0,
    orphan_camera_processes: 0,
    images_at_end: 0,
  };
  let daemon: Daemon | null = null;
  let referenceSize = 0;

  /** Everything a restarted node must show: an empty temp dir, complete images only, index = disk. */
  async function verify(node: Daemon): Promise<void> {
    const leftovers = await entries(tempDir);
    figures.temp_left_after_restart += leftovers.length;
    const stray = (await entries(captureDir)).filter((name) => name.startsWith('.') && !NODE_FILES.has(name));
    figures.stray_files += stray.length;
    const onDisk = await imagesOnDisk(captureDir);
    const listed = await listImages(node.httpUrl);
    const sameIndex = listed.length === onDisk.size && listed.every((image) => onDisk.get(image.filename) === image.size);
    if (!sameIndex) figures.index_mismatches += 1;
    for (const [name, size] of onDisk) {
      if (size !== referenceSize || !(await isDng(join(captureDir, name)))) figures.partial_listed += 1;
    }
    assert.deepEqual(leftovers, [], 'temp files are removed at start');
    assert.deepEqual(stray, [], 'no stray files beside the images');
    assert.ok(sameIndex, `GET /images matches the files on disk: ${JSON.stringify(listed)} vs ${JSON.stringify([...onDisk])}`);
  }

  try {
    daemon = await spawnDaemon(env);
    const first = (await (await fetch(`${daemon.httpUrl}/capture`, { method: 'POST' })).json()) as { file_info: { size: number } };
    referenceSize = first.file_info.size;
    assert.ok(referenceSize > 0);

    for (let round = 0; round < KILLS; round += 1) {
      const node = daemon;
      const before = (await imagesOnDisk(captureDir)).size;
      void fetch(`${node.httpUrl}/capture`, { method: 'POST' }).catch(() => undefined);
      await waitFor('the camera writing into the temp dir', async () => ((await entries(tempDir)).length > 0 ? true : null), 10_000, 5);
      // Kill at a different point each round: early in the JPEG, mid-DNG, or after the commit.
      const deadline = Date.now() + Math.floor(Math.random() * 1100);
      while (Date.now() < deadline) {
        for (const image of await listImages(node.httpUrl)) {
          figures.listings_checked += 1;
          if (image.size !== referenceSize) figures.partial_listed += 1;
        }
        await sleep(20);
      }
      const inTemp = await entries(tempDir);
      const sizes = await Promise.all(
        inTemp.map((name) =>
          stat(join(tempDir, name)).then(
            (s) => s.size,
            () => 0,
          ),
        ),
      );
      node.child.kill('SIGKILL');
      await node.exited;
      figures.kills += 1;
      if (sizes.some((size) => size > 0)) figures.killed_mid_write += 1;
      if ((await imagesOnDisk(captureDir)).size > before) figures.completed_before_kill += 1;
      // The simulated camera app notices its parent is gone within half a second; a real one is
      // killed by systemd (KillMode=mixed). Either way it must be gone before the node restarts.
      if ((await processesMentioning(captureDir)).length > 0) figures.orphan_camera_processes += 1;
      await waitFor(
        'the orphaned camera process gone',
        async () => ((await processesMentioning(captureDir)).length === 0 ? true : null),
        10_000,
      );

      daemon = await spawnDaemon(env);
      await verify(daemon);
    }
    figures.images_at_end = (await imagesOnDisk(captureDir)).size;
    await recordFigures('kill -9 mid-capture x20', figures);
    assert.equal(figures.kills, KILLS);
    assert.ok(figures.killed_mid_write >= KILLS / 2, 'most kills hit a capture being written');
    assert.equal(figures.partial_listed, 0, 'no partial image was ever listed');
    assert.equal(figures.temp_left_after_restart, 0);
    assert.equal(figures.index_mismatches, 0);
    const stopping = daemon;
    daemon = null;
    stopping.child.kill('SIGTERM');
    assert.equal((await stopping.exited).code, 0);
  } finally {
    if (daemon) {
      daemon.child.kill('SIGKILL');
      await daemon.exited;
    }
    await rm(dir, { recursive: true, force: true });
  }
});
