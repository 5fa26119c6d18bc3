import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { publishImage } from '../src/delivery/chunks.js';
import { sha256File } from '../src/delivery/manifest.js';
import { connectClient } from './helpers/mqtt.js';
import { startAedes, startReceiver, tempDir } from './helpers/delivery.js';

const MB = 1024 * 1024;
const SIZE = 24 * MB;
const NAME = 'capture_20260101_120000.dng';

/** A collector that can be forced, so a sample measures live memory rather than garbage not yet swept. */
function forcedGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/** Writes SIZE random bytes a megabyte at a time, so the test itself never holds the file. */
async function writeRandomFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  const handle = await open(path, 'w');
  try {
    for (let written = 0; written < SIZE; written += MB) {
      const block = randomBytes(MB);
      hash.update(block);
      await handle.write(block);
    }
  } finally {
    await handle.close();
  }
  return hash.digest('hex');
}

test('a 24 MB transfer through the broker keeps live memory far below the file size', async () => {
  const gc = forcedGc();
  const dir = await tempDir('delivery-memory');
  const broker = await startAedes();
  const publisher = await connectClient(broker.url);
  const controller = await connectClient(broker.url);
  try {
    const path = join(dir, NAME);
    const sha256 = await writeRandomFile(path);
    const r = await startReceiver(controller, { missingTimeoutMs: 10_000 });
    const live = (): number => {
      gc();
      const usage = process.memoryUsage();
      return usage.heapUsed + usage.arrayBuffers;
    };
    const baseline = live();
    let peak = baseline;
    let samples = 0;
    const sample = (): void => {
      peak = Math.max(peak, live());
      samples += 1;
    };
    const manifest = await publishImage({
      client: publisher,
      prefix: 'cameras',
      nodeId: 'memory',
      image: { path, filename: NAME, capturedAt: new Date(0).toISOString() },
      chunkSizeBytes: 256 * 1024,
      window: 8,
      onProgress: (sent) => {
        if (sent % 4 === 0) sample();
      },
    });
    const image = await r.next();
    sample();
    await r.receiver.stop();

    assert.equal(manifest.chunks, 96);
    assert.equal(image.sha256, sha256);
    assert.equal((await sha256File(image.path)).sha256, sha256, 'byte-identical');
    const growth = peak - baseline;
    process.stdout.write(`# live memory growth: peak ${(growth / MB).toFixed(1)} MB over ${samples} samples (${((growth / SIZE) * 100).toFixed(0)} % of the file)\n`);
    // Publisher buffers (8 × 256 KiB), the receiver's chunk in hand and the broker's queues: a few MB.
    assert.ok(growth < SIZE / 4, `live memory grew by ${(growth / MB).toFixed(1)} MB for a ${SIZE / MB} MB file`);
    await rm(r.outDir, { recursive: true, force: true });
  } finally {
    await publisher.endAsync();
    await controller.endAsync();
    await broker.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
