import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, stat, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { recordFigures } from '../helpers/faults-figures.js';
import { api, defined, entries, imagesOnDisk, listImages, sha256Of, waitFor } from '../helpers/faults-fs.js';
import { fillDisk, isRoot, mountTmpfs, remount, removeFile, tmpfsProblem, unmount } from '../helpers/faults-mount.js';
import { connectClient, request } from '../helpers/mqtt.js';
import { startTestNode, type TestNode } from '../helpers/node.js';

const mountProblem = await tmpfsProblem();

interface Failure {
  detail: string;
  code: string;
}

async function hashes(dir: string): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (const name of (await imagesOnDisk(dir)).keys()) found.set(name, await sha256Of(join(dir, name)));
  return found;
}

/** One capture over HTTP and one over MQTT; the replies, for the caller to judge. */
async function captureBoth(node: TestNode, client: MqttClient, id: string) {
  const http = await api<Failure & { file_info?: { filename: string } }>(node.httpUrl, '/capture', { method: 'POST' });
  const mqtt = await request(client, 'cameras', node.config.node_id, { id, action: 'capture' });
  return { http, mqtt, mqttError: mqtt['error'] as { code: string; message: string } | undefined };
}

async function stillUp(node: TestNode, client: MqttClient): Promise<boolean> {
  const health = await api(node.httpUrl, '/health');
  const status = await request(client, 'cameras', node.config.node_id, { action: 'status' });
  return health.status === 200 && status['status'] === 'success';
}

test('disk full (8 MB tmpfs): 507 or an error naming the cause, node up, stored images intact, recovery when space returns', {
  skip: mountProblem ?? false,
  timeout: 60_000,
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'camera-node-diskfull-'));
  const mnt = join(dir, 'mnt');
  await mountTmpfs(mnt, 8);
  let node: TestNode | null = null;
  let client: MqttClient | null = null;
  try {
    const captureDir = join(mnt, 'images');
    // Undelivered images are kept, so a full disk cannot be "fixed" by evicting what is stored.
    node = await startTestNode(
      { capture_dir: captureDir, evict_undelivered: false, storage_limit_mb: 100, min_free_disk_mb: 0 },
      { cameraEnv: { CAMERA_SIM_WRITE_MBPS: '0.2' } },
    );
    client = await connectClient(defined(node.node.mqttUrl, 'the broker URL'));
    for (let i = 0; i < 3; i += 1) assert.equal((await api(node.httpUrl, '/capture', { method: 'POST' })).status, 200);
    const before = await hashes(captureDir);

    // 1. No room at all: refused before the camera runs.
    const filler = join(mnt, 'filler');
    const filled = await fillDisk(filler);
    const full = await captureBoth(node, client, 'full-1');
    assert.equal(full.http.status, 507, JSON.stringify(full.http.body));
    assert.equal(full.http.body.code, 'storage_full');
    assert.match(full.http.body.detail, /disk space/);
    assert.equal(full.mqtt['id'], 'full-1');
    assert.equal(full.mqttError?.code, 'storage_full');
    assert.match(full.mqttError?.message ?? '', /disk space/);
    const upWhileFull = await stillUp(node, client);

    // 2. Room for the reservation, then another writer fills the disk while the camera writes its DNG.
    await truncate(filler, Math.max(0, filled - 320 * 1024));
    const pending = api<Failure>(node.httpUrl, '/capture', { method: 'POST' });
    await waitFor('the camera writing', async () => ((await entries(join(captureDir, '.tmp'))).length > 0 ? true : null), 10_000, 5);
    await fillDisk(join(mnt, 'filler-2'));
    const midWrite = await pending;
    // A disk that fills during the capture is a storage problem (507), and the message says why.
    assert.equal(midWrite.status, 507, JSON.stringify(midWrite.body));
    assert.equal(midWrite.body.code, 'storage_full');
    assert.match(midWrite.body.detail, /disk filled up/);
    const tempAfterFailure = await entries(join(captureDir, '.tmp'));
    const upAfterMidWrite = await stillUp(node, client);

    // 3. Space returns: captures work again.
    await removeFile(filler);
    await removeFile(join(mnt, 'filler-2'));
    const recovered = await captureBoth(node, client, 'recovered-1');
    assert.equal(recovered.http.status, 200, JSON.stringify(recovered.http.body));
    assert.equal(recovered.mqtt['status'], 'success', JSON.stringify(recovered.mqtt));

    const after = await hashes(captureDir);
    const damaged = [...before].filter(([name, hash]) => after.get(name) !== hash).length;
    const listed = await listImages(node.httpUrl);
    const figures = {
      stored_before: before.size,
      refused_507_http: full.http.status === 507 ? 1 : 0,
      refused_storage_full_mqtt: full.mqttError?.code === 'storage_full' ? 1 : 0,
      mid_write_failure: `${midWrite.status} ${midWrite.body.code}`,
      temp_left_after_failure: tempAfterFailure.length,
      node_up: upWhileFull && upAfterMidWrite,
      damaged,
      recovered_captures: Number(recovered.http.status === 200) + Number(recovered.mqtt['status'] === 'success'),
      stored_after: after.size,
    };
    await recordFigures('disk full (8 MB tmpfs)', figures);
    assert.equal(damaged, 0, 'no stored image changed');
    assert.deepEqual(tempAfterFailure, [], 'the half-written capture was removed');
    assert.ok(upWhileFull && upAfterMidWrite, 'the node stayed up');
    assert.equal(after.size, before.size + 2);
    assert.deepEqual(listed.map((i) => i.filename).sort(), [...after.keys()].sort(), 'the index matches the disk');
  } finally {
    await client?.endAsync();
    await node?.stop();
    await unmount(mnt);
    await rm(dir, { recursive: true, force: true });
  }
});

// Root ignores permission bits, so as root the folder is made read-only by remounting its file system.
const readOnlyProblem = isRoot() ? mountProblem : null;

test('read-only capture dir: errors name the cause, nothing stored is damaged, recovery when writable again', {
  skip: readOnlyProblem ?? false,
  timeout: 60_000,
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'camera-node-readonly-'));
  const mnt = join(dir, 'mnt');
  const root = isRoot();
  if (root) await mountTmpfs(mnt, 8);
  const captureDir = join(mnt, 'images');
  let node: TestNode | null = null;
  let client: MqttClient | null = null;
  const setWritable = async (writable: boolean): Promise<void> => {
    if (root) return remount(mnt, writable ? 'rw' : 'ro');
    for (const path of [captureDir, join(captureDir, '.tmp')]) await chmod(path, writable ? 0o755 : 0o555);
  };
  try {
    node = await startTestNode({ capture_dir: captureDir });
    client = await connectClient(defined(node.node.mqttUrl, 'the broker URL'));
    for (let i = 0; i < 2; i += 1) assert.equal((await api(node.httpUrl, '/capture', { method: 'POST' })).status, 200);
    const before = await hashes(captureDir);
    const victim = defined([...before.keys()][0], 'a stored image');

    await setWritable(false);
    const refused = await captureBoth(node, client, 'ro-1');
    const deleted = await api<Failure>(node.httpUrl, `/images/${victim}`, { method: 'DELETE' });
    const cause = root ? /read-only file system/ : /permission denied/;
    assert.ok(refused.http.status >= 500, JSON.stringify(refused.http.body));
    assert.match(refused.http.body.detail, cause);
    assert.equal(refused.mqtt['id'], 'ro-1');
    assert.match(refused.mqttError?.message ?? '', cause);
    assert.ok(deleted.status >= 500, JSON.stringify(deleted.body));
    assert.match(deleted.body.detail, cause);
    const upWhileReadOnly = await stillUp(node, client);
    const listedWhileReadOnly = await listImages(node.httpUrl);

    await setWritable(true);
    const recovered = await captureBoth(node, client, 'rw-1');
    assert.equal(recovered.http.status, 200, JSON.stringify(recovered.http.body));
    assert.equal(recovered.mqtt['status'], 'success');
    const after = await hashes(captureDir);
    const damaged = [...before].filter(([name, hash]) => after.get(name) !== hash).length;
    const figures = {
      method: root ? 'tmpfs remounted ro' : 'chmod 555',
      stored_before: before.size,
      capture_http: `${refused.http.status} ${refused.http.body.code}`,
      capture_mqtt: refused.mqttError?.code ?? 'success',
      delete_http: `${deleted.status} ${deleted.body.code}`,
      cause_named: cause.test(refused.http.body.detail) && cause.test(deleted.body.detail),
      node_up: upWhileReadOnly,
      damaged,
      still_listed: listedWhileReadOnly.length,
      recovered_captures: Number(recovered.http.status === 200) + Number(recovered.mqtt['status'] === 'success'),
    };
    await recordFigures('read-only capture dir', figures);
    assert.equal(damaged, 0);
    assert.ok(upWhileReadOnly);
    assert.equal(listedWhileReadOnly.length, before.size, 'a failed delete keeps the image listed');
    assert.ok((await stat(join(captureDir, victim))).isFile());
  } finally {
    await setWritable(true).catch(() => undefined);
    await client?.endAsync();
    await node?.stop();
    if (root) await unmount(mnt);
    await rm(dir, { recursive: true, force: true });
  }
});
