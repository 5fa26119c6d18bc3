import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acceptReply, commandPayload, type Reply } from '../../src/client/request.js';
import { spawnDaemon, type Daemon } from '../helpers/daemon.js';
import { recordFigures } from '../helpers/faults-figures.js';
import { sleep } from '../helpers/faults-fs.js';
import { mosquittoMissing, startMosquitto } from '../helpers/mosquitto.js';
import { connectClient } from '../helpers/mqtt.js';

/**
 * Once, fresh, bounded, over Mosquitto: a controller sends captures in waves, repeats ids (its own
 * retries, duplicates of answered commands, and the broker's redeliveries after a kill), retries
 * every refusal with the same id, and throws in commands that are already stale; meanwhile the node
 * is restarted 20 times, half of them with kill -9, sometimes for longer than MAX_COMMAND_AGE_S so
 * the commands the broker held for it arrive stale. Every capture carries its id in its exposure time
 * (shutter_us), so the images on disk tell exactly which command ran how many times.
 */

const NODE = 'soak-node';
const PREFIX = 'cameras';
const DISTINCT = 300;
const SENDS = 1000;
const RESTARTS = 20;
const WAVE = 8;
const MAX_AGE_S = 2;
const REQUESTERS = ['ctl-a', 'ctl-b', 'ctl-c', 'ctl-d'];
/** Answers that say the command did not run: retried with the same id. */
const REFUSED = new Set(['busy', 'rate_limited', 'expired', 'shutting_down', 'camera_unavailable', 'cancelled']);
const shutterOf = (k: number): number => 10_000 + k;
const staleShutterOf = (k: number): number => 50_000 + k;

interface Tracked {
  id: string;
  shutter: number;
  requester: string;
  done: boolean;
  waiting: boolean;
  refused: number;
  final: Reply | null;
}

const exiftoolMissing = (): string | null =>
  spawnSync('exiftool', ['-ver'], { stdio: 'ignore' }).error ? 'exiftool is not installed (it reads the exposure markers)' : null;

/** Exposure time (µs) of every image in the folder, from one exiftool run. */
async function shuttersOnDisk(dir: string): Promise<number[]> {
  const names = (await readdir(dir)).filter((name) => name.endsWith('.dng'));
  if (names.length === 0) return [];
  const run = spawnSync('exiftool', ['-j', '-n', '-ExposureTime', ...names.map((name) => join(dir, name))], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  assert.equal(run.status, 0, run.stderr);
  return (JSON.parse(run.stdout) as Array<{ ExposureTime: number }>).map((row) => Math.round(row.ExposureTime * 1_000_000));
}

test('commands over Mosquitto through 20 node restarts: none runs twice, none runs stale, every refused retry runs', {
  skip: mosquittoMissing() ?? exiftoolMissing() ?? false,
  timeout: 600_000,
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'camera-node-soak-'));
  const captureDir = join(dir, 'images');
  const broker = await startMosquitto();
  const env = {
    NODE_ID: NODE,
    CAPTURE_DIR: captureDir,
    LOG_DIR: join(dir, 'logs'),
    MQTT_URL: broker.url,
    MQTT_PROTOCOL_VERSION: '5',
    HA_DISCOVERY: 'false',
    MAX_COMMAND_AGE_S: String(MAX_AGE_S),
    MAX_QUEUED_CAPTURES: '2',
    MQTT_MAX_IN_FLIGHT: '4',
    MQTT_RATE_LIMIT: '90',
    STORAGE_LIMIT_MB: '100000',
  };
  const controller = await connectClient(broker.url, { protocolVersion: 5, clientId: 'soak-controller' });
  const ids: Tracked[] = Array.from({ length: DISTINCT }, (_, k) => ({
    id: `soak-${k}`,
    shutter: shutterOf(k),
    requester: REQUESTERS[k % REQUESTERS.length] ?? 'ctl-a',
    done: false,
    waiting: false,
    refused: 0,
    final: null,
  }));
  const byId = new Map(ids.map((t) => [t.id, t]));
  const codes: Record<string, number> = {};
  const counts = { sent: 0, duplicates: 0, duplicate_mismatches: 0, stale_sent: 0, stale_refused: 0, kills: 0, terms: 0 };
  let replied: () => void = () => undefined;

  controller.on('message', (topic, payload) => {
    const requester = topic.split('/').at(-1) ?? '';
    const reply = acceptReply(PREFIX, requester, topic, payload);
    if (!reply?.id) return;
    const code = (reply['error'] as { code?: string } | undefined)?.code ?? 'success';
    codes[code] = (codes[code] ?? 0) + 1;
    if (reply.id.startsWith('stale-')) {
      if (code === 'expired') counts.stale_refused++;
      return;
    }
    const tracked = byId.get(reply.id);
    if (!tracked) return;
    if (tracked.done) {
      // A repeat of an answered command gets its first reply again, never a second run.
      if (reply.status === 'success' && JSON.stringify(reply) !== JSON.stringify(tracked.final)) counts.duplicate_mismatches++;
      return;
    }
    tracked.waiting = false;
    if (REFUSED.has(code)) tracked.refused++;
    else {
      tracked.done = true;
      tracked.final = reply;
    }
    replied();
  });
  await controller.subscribeAsync(`${PREFIX}/+/res/+`, { qos: 1 });

  const send = async (id: string, requester: string, shutter: number, sentAt = Date.now()): Promise<void> => {
    const command = commandPayload('capture', { shutter_us: shutter }, { requester, id, sentAt });
    counts.sent++;
    await controller.publishAsync(`${PREFIX}/${NODE}/cmd`, JSON.stringify(command), {
      qos: 1,
      properties: { messageExpiryInterval: 60 },
    });
  };
  /** Waits until no command of the wave is still waiting, or `ms` passed (the node may be down). */
  const settle = async (wave: Tracked[], ms: number): Promise<void> => {
    const deadline = Date.now() + ms;
    while (wave.some((t) => t.waiting) && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        replied = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    for (const t of wave) t.waiting = false;
  };

  let daemon: Daemon | null = await spawnDaemon(env, { timeoutMs: 30_000 });
  const restartEvery = Math.floor(SENDS / (RESTARTS + 1));
  let nextRestart = restartEvery;
  let restarts = 0;
  let stale = 0;
  const deadline = Date.now() + 480_000;
  try {
    while ((!ids.every((t) => t.done) || counts.sent < SENDS) && Date.now() < deadline) {
      const open = ids.filter((t) => !t.done).slice(0, WAVE);
      const answered = ids.filter((t) => t.done);
      // Repeats of answered ids: the controller never knows for sure that its reply was the last word.
      const repeats = answered.length > 0 && counts.sent < SENDS ? [0, 1].map(() => answered[(counts.sent * 7) % answered.length]) : [];
      for (const t of open) {
        t.waiting = true;
        await send(t.id, t.requester, t.shutter);
      }
      for (const t of repeats) {
        if (!t) continue;
        counts.duplicates++;
        await send(t.id, t.requester, t.shutter);
      }
      if (counts.sent < SENDS) {
        counts.stale_sent++;
        await send(`stale-${stale}`, 'ctl-stale', staleShutterOf(stale++), Date.now() - 60_000);
      }
      if (restarts < RESTARTS && counts.sent >= nextRestart) {
        nextRestart += restartEvery;
        restarts++;
        const node: Daemon = daemon;
        daemon = null;
        const hard = restarts % 2 === 0;
        // Mid-wave: the captures just sent are queued or running.
        await sleep(hard ? 150 : 50);
        node.child.kill(hard ? 'SIGKILL' : 'SIGTERM');
        if (hard) counts.kills++;
        else counts.terms++;
        await node.exited;
        // Every fourth restart stays away longer than MAX_COMMAND_AGE_S: what the broker held goes stale.
        if (restarts % 4 < 2) await sleep(MAX_AGE_S * 1000 + 500);
        daemon = await spawnDaemon(env, { timeoutMs: 30_000 });
      }
      await settle(open, 8_000);
      // A controller backs off when everything it sent was turned away (busy, rate limited).
      if (open.length > 0 && open.every((t) => !t.done)) await sleep(300);
    }
    // The last stragglers: answered or not, their images are on disk now.
    await settle(
      ids.filter((t) => !t.done),
      5_000,
    );
  } finally {
    if (daemon) {
      daemon.child.kill('SIGTERM');
      await daemon.exited;
    }
    await controller.endAsync();
    await broker.stop();
  }

  const shutters = await shuttersOnDisk(captureDir);
  await rm(dir, { recursive: true, force: true });
  const runs = new Map<number, number>();
  for (const shutter of shutters) runs.set(shutter, (runs.get(shutter) ?? 0) + 1);
  const executedTwice = [...runs.values()].filter((n) => n > 1).length;
  const staleExecuted = [...runs.keys()].filter((shutter) => shutter >= 50_000).length;
  const refusedThenRetried = ids.filter((t) => t.refused > 0);
  // Ran: its image is on disk, or the node answered it with something other than a refusal (success,
  // a camera failure, or `interrupted`: it started and the node died under it).
  const ran = refusedThenRetried.filter((t) => runs.has(t.shutter) || t.final !== null);
  const errorWithoutImage = ids.filter((t) => t.final?.['error'] && !runs.has(t.shutter)).length;
  const figures = {
    commands_sent: counts.sent,
    distinct_ids: DISTINCT,
    repeats_of_answered_ids: counts.duplicates,
    restarts,
    kill9: counts.kills,
    sigterm: counts.terms,
    answers: JSON.stringify(codes),
    executed_twice: executedTwice,
    stale_sent: counts.stale_sent,
    stale_refused: counts.stale_refused,
    stale_executed: staleExecuted,
    refused_then_retried: refusedThenRetried.length,
    refused_then_retried_ran: ran.length,
    refused_then_retried_ran_ratio: refusedThenRetried.length === 0 ? 1 : ran.length / refusedThenRetried.length,
    repeats_answered_differently: counts.duplicate_mismatches,
    unanswered_at_end: ids.filter((t) => !t.done).length,
    ended_in_error_without_image: errorWithoutImage,
    images: shutters.length,
  };
  await recordFigures('commands-soak', figures);
  assert.equal(executedTwice, 0, 'no command ran twice');
  assert.equal(staleExecuted, 0, 'no stale command ran');
  assert.equal(figures.refused_then_retried_ran_ratio, 1, 'every refused command that was retried ran');
  assert.equal(counts.duplicate_mismatches, 0);
  assert.ok(refusedThenRetried.length > 0, 'the soak produced refusals to retry');
  assert.equal(figures.unanswered_at_end, 0);
});
