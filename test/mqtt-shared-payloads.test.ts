import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Packet } from 'mqtt';
import { sharePublishPayloads } from '../src/mqtt/shared-payloads.js';
import { startAedes } from './helpers/delivery.js';
import { collect, connectClient } from './helpers/mqtt.js';

test('a QoS 1 publish is stored for redelivery without a copy of its payload, and arrives intact', async (t) => {
  const broker = await startAedes();
  const publisher = await connectClient(broker.url);
  const subscriber = await connectClient(broker.url);
  t.after(async () => {
    await publisher.endAsync();
    await subscriber.endAsync();
    await broker.stop();
  });
  assert.equal(sharePublishPayloads(publisher), true, 'this mqtt.js has the methods replaced');
  const stored: Packet[] = [];
  const store = publisher.outgoingStore as unknown as { put(packet: Packet, cb: () => void): unknown };
  const put = store.put.bind(store);
  store.put = (packet, cb) => {
    stored.push(packet);
    return put(packet, cb);
  };
  const received = await collect(subscriber, 'shared/payload');
  const payload = randomBytes(256 * 1024);
  await publisher.publishAsync('shared/payload', payload, { qos: 1 });
  const [message] = await received.waitFor();
  assert.equal(stored.length, 1);
  assert.equal((stored[0] as { payload: unknown }).payload, payload, 'the stored packet shares the buffer');
  assert.equal((stored[0] as { topic: string }).topic, 'shared/payload');
  assert.ok(message!.payload.equals(payload), 'the subscriber got the same bytes');
});
