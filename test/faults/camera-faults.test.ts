import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { recordFigures } from '../helpers/faults-figures.js';
import { api, defined, entries, imagesOnDisk, listImages, processesMentioning, sleep, waitFor } from '../helpers/faults-fs.js';
import { readRetained } from '../helpers/faults-mqtt.js';
import { collect, connectClient } from '../helpers/mqtt.js';
import { startTestNode, type TestNode } from '../helpers/node.js';

interface Reply {
  id: string;
  status: 'success' | 'error';
  error?: { code: string; message: string };
  file_info?: { filename: string };
}

interface CameraStatus {
  status: string;
  camera: { connected: boolean; last_error: string | null };
}

test('the camera app hangs, crashes, fails and loses its camera mid-run: clear errors, the queue moves on, status follows', {
  timeout: 90_000,
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'camera-node-camfaults-'));
  const control = join(dir, 'camera-control');
  await writeFile(control, '');
  const fault = (mode: string): Promise<void> => writeFile(control, mode);
  let node: TestNode | null = null;
  let client: MqttClient | null = null;
  try {
    const started = await startTestNode(
      { capture_timeout_s: 2, camera_check_interval_s: 1, ha_discovery: false },
      { cameraEnv: { CAMERA_SIM_CONTROL: control } },
    );
    node = started;
    const { httpUrl } = started;
    const nodeId = started.config.node_id;
    const brokerUrl = defined(started.node.mqttUrl, 'the broker URL');
    client = await connectClient(brokerUrl);
    const replies = await collect(client, `cameras/${nodeId}/res`);
    const mqttClient = client;
    /** Publishes captures at once (they queue behind each other) and waits for every reply. */
    const captures = async (count: number, timeoutMs = 20_000): Promise<Reply[]> => {
      const ids = Array.from({ length: count }, () => `cam-${randomUUID().slice(0, 8)}`);
      for (const id of ids) await mqttClient.publishAsync(`cameras/${nodeId}/cmd`, JSON.stringify({ id, action: 'capture' }), { qos: 1 });
      const got = await replies.waitFor((m) => ids.includes(String(m.json()['id'])), count, timeoutMs);
      return ids.map((id) =>
        defined(
          got.find((m) => m.json()['id'] === id),
          `the reply to ${id}`,
        ).json<Reply>(),
      );
    };
    /** The first reply of a batch, which the fault hit. */
    const hit = (batch: Reply[]): Reply & { error: { code: string; message: string } } => {
      const reply = defined(batch[0], 'a reply');
      return { ...reply, error: reply.error ?? { code: 'none', message: `expected an error, got ${JSON.stringify(reply)}` } };
    };
    const row = (failed: Reply | undefined, later: Reply[]) => ({
      code: failed?.error?.code ?? 'none',
      message: failed?.error?.message ?? '',
      later_ok: later.filter((r) => r.status === 'success').length,
    });
    const results: Record<string, ReturnType<typeof row>> = {};

    assert.equal(defined((await captures(1))[0], 'a reply').status, 'success');

    // Hang: the first capture is killed at the timeout; the two queued behind it then succeed.
    await fault('hang');
    const hanging = captures(3);
    // Mend the camera once the first app is running and has had time to read the fault (it hangs);
    // the other two wait in the queue and start after it is killed, with the camera mended.
    await waitFor(
      'the first camera app running',
      async () => ((await processesMentioning(started.config.capture_dir)).length > 0 ? true : null),
      10_000,
      10,
    );
    await sleep(700);
    await fault('');
    const [first, ...afterHang] = await hanging;
    const hung = hit([defined(first, 'the hung capture')]);
    results['hang'] = row(hung, afterHang);
    assert.equal(hung.error.code, 'camera_timeout', JSON.stringify(hung));
    assert.match(hung.error.message, /exceeded 2000 ms/);

    // Crash: the app dies of SIGKILL halfway through the DNG.
    await fault('crash');
    const crashed = hit(await captures(1));
    await fault('');
    results['crash'] = row(crashed, await captures(2));
    assert.equal(crashed.error.code, 'camera_failed', JSON.stringify(crashed));
    assert.match(crashed.error.message, /SIGKILL|killed|signal/i);

    // An error the app reports itself.
    await fault('capture-error');
    const errored = hit(await captures(1));
    await fault('');
    results['capture-error'] = row(errored, await captures(2));
    assert.equal(errored.error.code, 'camera_failed');
    assert.match(errored.error.message, /timed out waiting for a frame/);

    // The camera is unplugged: captures fail fast, the status (HTTP and retained MQTT) says so.
    await fault('no-camera');
    const unplugged = hit(await captures(1));
    const seenDown = await waitFor('status showing the camera disconnected', async () => {
      const status = await api<CameraStatus>(httpUrl, '/status');
      return status.body.camera.connected === false ? status.body : null;
    });
    const retainedDown = await waitFor('retained status showing it', async () => {
      const retained = await readRetained(brokerUrl, 'cameras', nodeId);
      return (retained.status?.['camera'] as { connected: boolean } | undefined)?.connected === false ? true : null;
    });
    const whileUnplugged = await captures(2);
    await fault('');
    const seenUp = await waitFor('status showing the camera back', async () => {
      const status = await api<CameraStatus>(httpUrl, '/status');
      return status.body.camera.connected ? status.body : null;
    });
    const retainedUp = await waitFor('retained status showing it back', async () => {
      const retained = await readRetained(brokerUrl, 'cameras', nodeId);
      return (retained.status?.['camera'] as { connected: boolean } | undefined)?.connected === true ? true : null;
    });
    results['no-camera'] = row(unplugged, await captures(2));
    assert.equal(unplugged.error.code, 'camera_unavailable', JSON.stringify(unplugged));
    assert.match(unplugged.error.message, /no camera/);
    assert.deepEqual(
      whileUnplugged.map((r) => r.error?.code),
      ['camera_unavailable', 'camera_unavailable'],
      'captures fail fast while it is away',
    );
    assert.equal(seenDown.status, 'degraded');
    assert.match(seenDown.camera.last_error ?? '', /no camera/);
    assert.equal(seenUp.status, 'online');

    const succeeded = [...replies.messages.map((m) => m.json<Reply>())].filter((r) => r.status === 'success');
    const onDisk = await imagesOnDisk(started.config.capture_dir);
    const listed = await listImages(httpUrl);
    const tempLeft = await entries(join(started.config.capture_dir, '.tmp'));
    const figures = {
      ...Object.fromEntries(
        Object.entries(results).map(([mode, r]) => [mode, `${r.code} '${r.message.slice(0, 60)}', later ${r.later_ok}/2 ok`]),
      ),
      status_disconnected_seen: retainedDown === true && seenDown.camera.connected === false,
      status_recovered: retainedUp === true && seenUp.camera.connected,
      successful_captures: succeeded.length,
      images_on_disk: onDisk.size,
      temp_left: tempLeft.length,
    };
    await recordFigures('camera app hangs/crashes/unplugged', figures);
    for (const [mode, r] of Object.entries(results)) assert.equal(r.later_ok, 2, `captures after ${mode} succeed`);
    assert.equal(onDisk.size, succeeded.length, 'one image per successful capture, none from a failed one');
    assert.deepEqual(listed.map((i) => i.filename).sort(), [...onDisk.keys()].sort());
    assert.deepEqual(tempLeft, [], 'failed captures leave no temp files');
    await replies.close();
  } finally {
    await client?.endAsync();
    await node?.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
