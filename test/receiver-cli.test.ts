import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { MAIN } from './helpers/daemon.js';
import { collect, connectClient } from './helpers/mqtt.js';
import { mosquittoMissing, startMosquitto } from './helpers/mosquitto.js';
import { startTestNode, type TestNode } from './helpers/node.js';
import { tempDir, waitFor } from './helpers/delivery.js';

const missingMosquitto = mosquittoMissing();

/** Runs `camera-node <args>` as a person would, and collects its exit code and output. */
function camera(args: string[]) {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env['PATH'] ?? '' } });
  const output = { stdout: '', stderr: '' };
  child.stdout.on('data', (chunk: Buffer) => (output.stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output.stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.once('exit', (code) => resolve({ code, ...output })),
  );
  return { child, output, exited };
}

const stored = (node: TestNode, filename: string): Promise<Buffer> => readFile(join(node.config.capture_dir, filename));

/** The `node<TAB>ok|FAILED<TAB>what` lines of a capture, by node (the `#` lines are the report). */
function outcomeLines(stdout: string): Map<string, string[]> {
  return new Map(
    stdout
      .trim()
      .split('\n')
      .filter((line) => line && !line.startsWith('#'))
      .map((line) => {
        const [node = '', ...rest] = line.split('\t');
        return [node, rest];
      }),
  );
}

describe('camera-node capture, status and watch against the embedded broker', () => {
  let a: TestNode;
  let b: TestNode;
  let out: string;
  before(async () => {
    a = await startTestNode({ groups: ['yard'] });
    // A second node on the first one's broker: a fleet of two.
    b = await startTestNode({ mqtt_url: a.node.mqttUrl!, mqtt_protocol_version: 4 });
    out = await tempDir('cli-out');
  });
  after(async () => {
    await b.stop();
    await a.stop();
    await rm(out, { recursive: true, force: true });
  });

  test('capture --node saves the verified image under <out>/<shot>/<node>/ with shot.json, and exits 0', async () => {
    const run = await camera(['capture', '--broker', a.node.mqttUrl!, '--node', a.config.node_id, '--out', out, '--timeout', '30']).exited;
    assert.equal(run.code, 0, run.stderr);
    const [status, path] = outcomeLines(run.stdout).get(a.config.node_id) ?? [];
    assert.equal(status, 'ok');
    const shot = /^# shot (cli-\S+):/m.exec(run.stdout)?.[1];
    assert.ok(shot, run.stdout);
    assert.equal(path, join(out, shot, a.config.node_id, path!.split('/').at(-1)!));
    assert.ok((await readFile(path!)).equals(await stored(a, path!.split('/').at(-1)!)), 'byte-identical');
    assert.match(run.stderr, /sha256 verified/);
    assert.match(run.stdout, /^# shot cli-\S+: 1 asked, 1 answered, 1 delivered, 0 failed, 0 missing$/m);
    const report = JSON.parse(await readFile(join(out, shot, 'shot.json'), 'utf8')) as {
      nodes: Array<{ node_id: string; delivered: boolean }>;
    };
    assert.deepEqual(
      report.nodes.map((n) => [n.node_id, n.delivered]),
      [[a.config.node_id, true]],
    );
  });

  test('capture --all learns the fleet from retained availability and waits for every image', async () => {
    const run = await camera(['capture', '--broker', a.node.mqttUrl!, '--all', '--out', out, '--timeout', '30']).exited;
    assert.equal(run.code, 0, run.stderr);
    const lines = outcomeLines(run.stdout);
    assert.deepEqual([...lines.keys()].sort(), [a.config.node_id, b.config.node_id].sort());
    for (const node of [a, b]) {
      const [status, path] = lines.get(node.config.node_id) ?? [];
      assert.equal(status, 'ok', run.stdout);
      assert.ok((await readFile(path!)).equals(await stored(node, path!.split('/').at(-1)!)));
    }
  });

  test('capture --group addresses only the members', async () => {
    const run = await camera(['capture', '--broker', a.node.mqttUrl!, '--group', 'yard', '--deliver', 'none', '--timeout', '30']).exited;
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual([...outcomeLines(run.stdout).keys()], [a.config.node_id]);
  });

  test('a node that does not answer fails the command; a usage mistake exits 2', async () => {
    const silent = await camera(['capture', '--broker', a.node.mqttUrl!, '--node', 'no-such-node', '--timeout', '1']).exited;
    assert.equal(silent.code, 1);
    assert.deepEqual(outcomeLines(silent.stdout).get('no-such-node'), ['FAILED', 'no reply']);
    const usage = await camera(['capture', '--broker', a.node.mqttUrl!]).exited;
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /exactly one of --node, --all or --group/);
    const unreachable = await camera(['status', '--broker', 'mqtt://127.0.0.1:1']).exited;
    assert.equal(unreachable.code, 1);
  });

  test('status --json is the fleet from the retained topics', async () => {
    const run = await camera(['status', '--broker', a.node.mqttUrl!, '--json']).exited;
    assert.equal(run.code, 0, run.stderr);
    const rows = JSON.parse(run.stdout) as Array<{ node: string; availability: string; status: string }>;
    assert.deepEqual(
      rows.map((r) => [r.node, r.availability]),
      [a.config.node_id, b.config.node_id].sort().map((id) => [id, 'online']),
    );
    const table = await camera(['status', '--broker', a.node.mqttUrl!]).exited;
    assert.match(table.stdout, new RegExp(`^node\\s+availability.*\\n.*${a.config.node_id}\\s+online`, 'm'));
  });

  test('watch saves every image the fleet delivers until stopped', async () => {
    const watchOut = await tempDir('cli-watch');
    const watch = camera(['watch', '--broker', a.node.mqttUrl!, '--out', watchOut]);
    try {
      await waitFor('the watcher ready', () => (watch.output.stderr.includes('watching') ? true : null));
      const client = await connectClient(a.node.mqttUrl!);
      try {
        await client.publishAsync(`cameras/${b.config.node_id}/cmd`, JSON.stringify({ id: 'w1', action: 'capture', deliver: 'mqtt' }), {
          qos: 1,
        });
        const line = await waitFor(
          'the saved image',
          () => watch.output.stdout.split('\n').find((l) => l.includes(b.config.node_id)) ?? null,
        );
        const [, node, path] = line.split('\t');
        assert.equal(node, b.config.node_id);
        assert.ok((await readFile(path!)).equals(await stored(b, path!.split('/').at(-1)!)));
      } finally {
        await client.endAsync();
      }
      watch.child.kill('SIGTERM');
      assert.equal((await watch.exited).code, 0);
    } finally {
      watch.child.kill('SIGKILL');
      await rm(watchOut, { recursive: true, force: true });
    }
  });
});

describe('camera-node capture through Mosquitto (MQTT 5)', { skip: missingMosquitto ?? false }, () => {
  test('the command names its reply route and send time; the image is received and receipted', async () => {
    const broker = await startMosquitto();
    const node = await startTestNode({ mqtt_url: broker.url, mqtt_protocol_version: 5 });
    const out = await tempDir('cli-out5');
    const monitor = await connectClient(broker.url, { protocolVersion: 5 });
    try {
      const commands = await collect(monitor, `cameras/${node.config.node_id}/cmd`);
      const before = Date.now();
      const run = await camera(['capture', '--broker', broker.url, '--node', node.config.node_id, '--out', out, '--timeout', '30']).exited;
      assert.equal(run.code, 0, run.stderr);
      const [status, path] = outcomeLines(run.stdout).get(node.config.node_id) ?? [];
      assert.equal(status, 'ok');
      assert.ok((await readFile(path!)).equals(await stored(node, path!.split('/').at(-1)!)));
      const [capture, receipt] = (await commands.waitFor(() => true, 2)).map((m) => m.json<Record<string, unknown>>());
      assert.equal(capture!['action'], 'capture');
      assert.match(String(capture!['reply_to']), /^cli_/);
      assert.ok(Number(capture!['sent_at']) >= before, 'sent_at is the send time');
      assert.equal(receipt!['action'], 'receipt', 'the image is receipted once it is on disk');
      assert.equal(receipt!['filename'], path!.split('/').at(-1));
      assert.equal(receipt!['collector'], capture!['reply_to']);
    } finally {
      await monitor.endAsync();
      await node.stop();
      await broker.stop();
      await rm(out, { recursive: true, force: true });
    }
  });
});
