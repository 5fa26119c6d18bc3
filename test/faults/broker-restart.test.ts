import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt, { type IPublishPacket, type Packet } from 'mqtt';
import { recordFigures } from '../helpers/faults-figures.js';
import { imagesOnDisk, listImages, sleep, waitFor } from '../helpers/faults-fs.js';
import { waitForRetainedOnline } from '../helpers/faults-mqtt.js';
import { mosquittoMissing, startMosquitto } from '../helpers/mosquitto.js';
import { startTestNode } from '../helpers/node.js';

const RESTARTS = 10;
const COMMANDS_PER_ROUND = 6;
const PREFIX = 'cameras';

test('Mosquitto restarted 10 times while captures are commanded: each runs once, each reply arrives, retained state returns', {
  skip: mosquittoMissing() ?? false,
  timeout: 180_000,
}, async () => {
  const broker = await startMosquitto();
  // The queue holds every command of the run, so no capture is refused as busy: each one must run.
  const node = await startTestNode({ mqtt_url: broker.url, mqtt_session_expiry_s: 600, max_queued_captures: 100, ha_discovery: false });
  const nodeId = node.config.node_id;
  // The controller keeps a persistent session under a fixed id, as a dashboard or script should:
  // the broker queues replies for it while it is away, and mqtt.js resends unacknowledged commands.
  const controller = await mqtt.connectAsync(broker.url, {
    protocolVersion: 5,
    clientId: `faults-controller-${process.pid}`,
    clean: false,
    properties: { sessionExpiryInterval: 600 },
    reconnectPeriod: 250,
    connectTimeout: 5000,
  });
  const replies = new Map<string, Array<Record<string, unknown>>>();
  const sends = new Map<string, number>();
  const acked = new Set<string>();
  const published: string[] = [];
  let republished = 0;
  let controllerConnects = 0;
  const secondsToOnline: number[] = [];
  try {
    controller.on('message', (_topic: string, payload: Buffer, _packet: IPublishPacket) => {
      const reply = JSON.parse(payload.toString()) as Record<string, unknown>;
      const id = String(reply['id']);
      replies.set(id, [...(replies.get(id) ?? []), reply]);
    });
    // Every PUBLISH of a command that leaves the controller, first sends and resends alike.
    controller.on('packetsend', (packet: Packet) => {
      if (packet.cmd !== 'publish' || !String(packet.topic).endsWith('/cmd')) return;
      const id = String((JSON.parse(String(packet.payload)) as { id: string }).id);
      sends.set(id, (sends.get(id) ?? 0) + 1);
    });
    controller.on('connect', () => {
      controllerConnects += 1;
    });
    await controller.subscribeAsync(`${PREFIX}/${nodeId}/res`, { qos: 1 });

    const publish = (id: string): void => {
      if (!published.includes(id)) published.push(id);
      controller.publishAsync(`${PREFIX}/${nodeId}/cmd`, JSON.stringify({ id, action: 'capture' }), { qos: 1 }).then(
        () => acked.add(id),
        () => undefined,
      );
    };

    for (let round = 1; round <= RESTARTS; round += 1) {
      const before = Math.floor(COMMANDS_PER_ROUND / 2);
      for (let k = 0; k < before; k += 1) publish(`restart-${round}-${k}`);
      await sleep(Math.floor(Math.random() * 150));
      const restartedAt = Date.now();
      const restarting = broker.restart();
      // The rest go out while the broker is going down or is down: mqtt.js keeps them in its store.
      for (let k = before; k < COMMANDS_PER_ROUND; k += 1) publish(`restart-${round}-${k}`);
      await restarting;
      const state = await waitForRetainedOnline(broker.url, PREFIX, nodeId, restartedAt, 30_000);
      assert.equal(state.availability, 'online');
      secondsToOnline.push((Date.now() - restartedAt) / 1000);
      // A controller that saw no PUBACK republishes under the same id; the node must not run it twice.
      await waitFor('the controller back', () => (controller.connected ? true : null), 15_000);
      for (const id of published) {
        if (!acked.has(id)) {
          republished += 1;
          publish(id);
        }
      }
    }

    await waitFor(`replies to all ${published.length} commands`, () => (published.every((id) => replies.has(id)) ? true : null), 60_000);
    await sleep(500); // late duplicates, if any, are counted too
    const filenames = new Map<string, Set<string>>();
    for (const id of published) {
      for (const reply of replies.get(id) ?? []) {
        assert.equal(reply['status'], 'success', JSON.stringify(reply));
        const names = filenames.get(id) ?? new Set<string>();
        names.add((reply['file_info'] as { filename: string }).filename);
        filenames.set(id, names);
      }
    }
    const onDisk = await imagesOnDisk(node.config.capture_dir);
    const listed = await listImages(node.httpUrl);
    const replyFiles = new Set([...filenames.values()].flatMap((names) => [...names]));
    const executedTwice = [...filenames.values()].filter((names) => names.size > 1).length;
    const figures = {
      restarts: RESTARTS,
      commands: published.length,
      republished_by_controller: republished,
      resent_by_mqtt_js: [...sends.values()].reduce((sum, n) => sum + n, 0) - published.length - republished,
      replies: [...replies.values()].reduce((sum, list) => sum + list.length, 0),
      duplicate_replies: [...replies.values()].reduce((sum, list) => sum + list.length - 1, 0),
      replies_missing: published.filter((id) => !replies.has(id)).length,
      images: onDisk.size,
      executed_twice: executedTwice,
      retained_back: secondsToOnline.length,
      max_s_to_online: Math.max(...secondsToOnline).toFixed(1),
      controller_connects: controllerConnects,
    };
    await recordFigures('broker restarted 10x (Mosquitto)', figures);
    assert.equal(figures.replies_missing, 0, 'every command got a reply');
    assert.equal(executedTwice, 0, 'a command repeated under its id is answered with its first reply');
    assert.equal(onDisk.size, published.length, 'one image per command: none lost, none doubled');
    assert.deepEqual([...onDisk.keys()].sort(), [...replyFiles].sort(), 'the replies name exactly the stored images');
    assert.deepEqual(listed.map((image) => image.filename).sort(), [...onDisk.keys()].sort(), 'the index matches the disk');
    assert.equal(secondsToOnline.length, RESTARTS, 'availability, status and telemetry retained again after every restart');
  } finally {
    await controller.endAsync(true).catch(() => undefined);
    await node.stop();
    await broker.stop();
  }
});
