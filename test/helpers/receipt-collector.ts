import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt';
import { createReceiver, type ReceivedImage } from '../../src/client/receiver.js';
import type { Manifest } from '../../src/delivery/manifest.js';

export interface TestCollector {
  name: string;
  outDir: string;
  client: MqttClient;
  /** Every verified image, in the order they completed (a file completed twice is here twice). */
  images: ReceivedImage[];
  /** Receipts sent, by filename. */
  receipts: Map<string, number>;
  /** Resolves once `count` distinct files have been receipted. */
  waitForImages(count: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A collector for tests, on the library receiver: a persistent session, a retained availability
 * (`online`, Last Will `offline`), and the contract's receipt after each verified rename, or straight
 * away for a manifest of a file it already holds. It counts what it received, so a test fails on
 * any image lost or received twice.
 */
export async function startTestCollector(
  url: string,
  options: { name?: string; prefix?: string; missingTimeoutMs?: number } = {},
): Promise<TestCollector> {
  const name = options.name ?? `collector-${randomUUID().slice(0, 8)}`;
  const prefix = options.prefix ?? 'cameras';
  const availability = `${prefix}/collectors/${name}/availability`;
  const outDir = await mkdtemp(join(tmpdir(), 'camera-node-collected-'));
  const client = await mqtt.connectAsync(url, {
    clientId: name,
    clean: false,
    protocolVersion: 4,
    reconnectPeriod: 200,
    connectTimeout: 5000,
    will: { topic: availability, payload: Buffer.from('offline'), qos: 1, retain: true },
  });
  const images: ReceivedImage[] = [];
  const held = new Map<string, string>(); // `<node>/<file>` → sha256 of the verified file
  const transfers = new Map<string, string>(); // `<node>/<file>` → the last manifest's transfer id
  const receipts = new Map<string, number>();
  const waiters = new Set<() => void>();

  const sendReceipt = (nodeId: string, filename: string, sha256: string): void => {
    receipts.set(filename, (receipts.get(filename) ?? 0) + 1);
    const receipt = {
      action: 'receipt',
      id: `receipt-${randomUUID()}`,
      filename,
      sha256,
      transfer_id: transfers.get(`${nodeId}/${filename}`) ?? 'unknown',
      collector: name,
    };
    void client.publishAsync(`${prefix}/${nodeId}/cmd`, JSON.stringify(receipt), { qos: 1 }).catch(() => undefined);
    for (const waiter of waiters) waiter();
  };

  client.on('message', (topic: string, payload: Buffer, _packet: IPublishPacket) => {
    const parts = topic.split('/');
    if (parts.at(-1) !== 'manifest' || parts.at(-4) !== 'images') return;
    let manifest: Manifest;
    try {
      manifest = JSON.parse(payload.toString()) as Manifest;
    } catch {
      return;
    }
    const key = `${manifest.node_id}/${manifest.filename}`;
    transfers.set(key, manifest.transfer_id);
    if (held.get(key) === manifest.sha256) sendReceipt(manifest.node_id, manifest.filename, manifest.sha256);
  });
  // On every (re)connect: announce ourselves; the broker keeps it for nodes that come later.
  const announce = (): void => void client.publishAsync(availability, 'online', { qos: 1, retain: true }).catch(() => undefined);
  client.on('connect', announce);

  const receiver = createReceiver({
    client,
    prefix,
    outDir,
    missingTimeoutMs: options.missingTimeoutMs ?? 500,
    maxResends: 50,
    onImage: (image) => {
      images.push(image);
      held.set(`${image.nodeId}/${image.filename}`, image.sha256);
      sendReceipt(image.nodeId, image.filename, image.sha256);
    },
  });
  await receiver.start();
  announce();

  return {
    name,
    outDir,
    client,
    images,
    receipts,
    waitForImages(count, timeoutMs = 60_000) {
      return new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (receipts.size < count) return;
          cleanup();
          resolve();
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out: ${receipts.size} of ${count} images receipted (${images.length} received)`));
        }, timeoutMs);
        const cleanup = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async stop() {
      await receiver.stop();
      if (client.connected) await client.publishAsync(availability, 'offline', { qos: 1, retain: true }).catch(() => undefined);
      await client.endAsync();
      await rm(outDir, { recursive: true, force: true });
    },
  };
}
