import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { sha256File } from '../src/delivery/manifest.js';
import { connectClient } from './helpers/mqtt.js';
import { mosquittoMissing, startMosquitto } from './helpers/mosquitto.js';
import { runPublisherProcess, startAedes, startReceiver, tempDir } from './helpers/delivery.js';

const MB = 1024 * 1024;
const SIZE = 24 * MB;
const NAME = 'capture_20260101_120000.dng';
const missingMosquitto = mosquittoMissing();

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

/** A collector that can be forced, so a sample measures live memory rather than garbage not yet swept. */
function liveMemory(): () => number {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  return () => {
    gc();
    const usage = process.memoryUsage();
    return usage.heapUsed + usage.arrayBuffers;
  };
}

const mb = (bytes: number): string => `${(bytes / MB).toFixed(1)} MB`;

describe('memory during a 24 MB transfer stays far below the file size', () => {
  test('the publisher (through aedes)', async () => {
    const dir = await tempDir('delivery-memory');
    const broker = await startAedes();
    const controller = await connectClient(broker.url);
    try {
      const sha256 = await writeRandomFile(join(dir, NAME));
      const r = await startReceiver(controller, { outDir: join(dir, 'received'), missingTimeoutMs: 10_000 });
      const { growth, chunks } = await runPublisherProcess(broker.url, join(dir, NAME), 4);
      const image = await r.next();
      await r.receiver.stop();
      assert.equal(chunks, 96);
      assert.equal((await sha256File(image.path)).sha256, sha256, 'byte-identical');
      process.stdout.write(`# publisher live memory growth: ${mb(growth)} for a ${mb(SIZE)} file\n`);
      // Its pool of 8 × 256 KiB chunk buffers, one hashing buffer and the socket's: a few MB; reading
      // the file whole would be 24 MB at once.
      assert.ok(growth < SIZE / 3, `the publisher's live memory grew by ${mb(growth)}`);
    } finally {
      await controller.endAsync();
      await broker.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('the publisher and the receiver (through Mosquitto, each in its own process)', { skip: missingMosquitto ?? false }, async () => {
    const live = liveMemory();
    const dir = await tempDir('delivery-memory');
    const mosquitto = await startMosquitto();
    const controller = await connectClient(mosquitto.url, { protocolVersion: 5 });
    try {
      const sha256 = await writeRandomFile(join(dir, NAME));
      const baseline = live();
      let peak = baseline;
      const r = await startReceiver(controller, {
        outDir: join(dir, 'received'),
        missingTimeoutMs: 10_000,
        onProgress: ({ received }) => {
          if (received % 4 === 0) peak = Math.max(peak, live());
        },
      });
      const publisher = await runPublisherProcess(mosquitto.url, join(dir, NAME), 5);
      const image = await r.next();
      await r.receiver.stop();
      assert.equal((await sha256File(image.path)).sha256, sha256, 'byte-identical');
      const received = peak - baseline;
      process.stdout.write(`# live memory growth: publisher ${mb(publisher.growth)}, receiver ${mb(received)} for a ${mb(SIZE)} file\n`);
      assert.ok(publisher.growth < SIZE / 3, `the publisher's live memory grew by ${mb(publisher.growth)}`);
      assert.ok(received < SIZE / 3, `the receiver's live memory grew by ${mb(received)}`);
    } finally {
      await controller.endAsync();
      await mosquitto.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
