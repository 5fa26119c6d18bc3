import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { MqttClient } from 'mqtt';
import { spawnDaemon, type Daemon } from '../helpers/daemon.js';
import { recordFigures } from '../helpers/faults-figures.js';
import { diffTrees, entries, imagesOnDisk, listImages, snapshotTree, sleep, waitFor, type TreeSnapshot } from '../helpers/faults-fs.js';
import { embeddedBrokerUrl } from '../helpers/faults-mqtt.js';
import { httpCases, type HttpCase } from '../helpers/faults-fuzz-http.js';
import { commandCases, commandPayload, expectedReplyId, type HostileTargets } from '../helpers/fuzz.js';
import { connectClient, request } from '../helpers/mqtt.js';

const COMMANDS = 10_000;
const HTTP_REQUESTS = 10_000;
const MAX_COMMAND_BYTES = 16_384;
/** Commands published and not yet answered, at most: the node is flooded, the broker is not. */
const WINDOW = 100;
const SEED = Number(process.env['FUZZ_SEED'] ?? Date.now() % 2 ** 31);
const NODE_ID = 'fuzz-node';
const SENTINEL_IMAGE = 'capture_20200101_000000.dng';

interface Reply {
  id: string | null;
  status: 'success' | 'error';
  action: string | null;
  error?: { code: string; message: string };
  file_info?: { filename: string };
}

describe('hostile input against one node (daemon on its embedded broker)', { timeout: 300_000 }, () => {
  let dir = '';
  let captureDir = '';
  let daemon: Daemon;
  let client: MqttClient;
  let targets: HostileTargets;
  let before0: TreeSnapshot;
  let stderr = '';
  const produced = new Set<string>();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'camera-node-fuzz-'));
    captureDir = join(dir, 'images');
    // Sentinels a traversal or an injected command would hit: a valid image name beside the capture
    // dir and in a sibling dir, and files a shell would create are expected in this dir too.
    await mkdir(join(dir, 'sentinel'));
    await writeFile(join(dir, SENTINEL_IMAGE), 'sentinel beside the capture dir');
    await writeFile(join(dir, 'sentinel', SENTINEL_IMAGE), 'sentinel in a sibling dir');
    await writeFile(join(dir, 'sentinel', 'victim.dng'), 'victim');
    targets = { targetDir: dir, sentinelImage: SENTINEL_IMAGE };
    daemon = await spawnDaemon({
      CAPTURE_DIR: captureDir,
      LOG_DIR: join(dir, 'logs'),
      NODE_ID,
      HTTP_RATE_LIMIT: '0',
      MAX_SCHEDULE_AHEAD_S: '2',
      HA_DISCOVERY: 'false',
      MQTT_MAX_COMMAND_BYTES: String(MAX_COMMAND_BYTES),
    });
    daemon.child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const url = await embeddedBrokerUrl(daemon);
    client = await connectClient(url);
    before0 = await snapshotTree(dir, ['images', 'logs']);
  });

  after(async () => {
    await client?.endAsync(true);
    if (daemon && daemon.child.exitCode === null) {
      daemon.child.kill('SIGTERM');
      await daemon.exited;
    }
    await rm(dir, { recursive: true, force: true });
  });

  test(`${COMMANDS} generated MQTT commands: no crash, an error reply for every malformed one, no file touched outside the capture dir`, async () => {
    const cases = fc.sample(commandCases(targets), { numRuns: COMMANDS, seed: SEED });
    const byId = new Map<string, { kind: string; malformed: boolean }>();
    const replies = new Map<string, Reply[]>();
    const nullReplies: Reply[] = [];
    let answered = 0;
    let wake: (() => void) | null = null;
    client.on('message', (topic, payload) => {
      if (topic !== `cameras/${NODE_ID}/res`) return;
      const reply = JSON.parse(payload.toString()) as Reply;
      answered += 1;
      if (reply.id === null) nullReplies.push(reply);
      else replies.set(reply.id, [...(replies.get(reply.id) ?? []), reply]);
      wake?.();
    });
    await client.subscribeAsync(`cameras/${NODE_ID}/res`, { qos: 1 });

    let expectedNull = 0;
    let nullMalformed = 0;
    const kinds = new Map<string, number>();
    for (const [i, c] of cases.entries()) {
      while (i - answered >= WINDOW) await new Promise<void>((resolve) => (wake = resolve));
      const payload = commandPayload(c, `fz${i}-`);
      const id = expectedReplyId(payload, MAX_COMMAND_BYTES);
      if (id === null) {
        expectedNull += 1;
        if (c.malformed || c.id.mode !== 'unique') nullMalformed += 1;
      } else {
        byId.set(id, { kind: c.kind, malformed: c.malformed });
      }
      kinds.set(c.kind, (kinds.get(c.kind) ?? 0) + 1);
      client.publish(`cameras/${NODE_ID}/cmd`, payload, { qos: 1 });
    }
    await waitFor(
      'every reply',
      () => ([...byId.keys()].every((id) => replies.has(id)) && nullReplies.length >= expectedNull ? true : null),
      120_000,
      100,
    );
    await sleep(1000); // late extras would be counted

    const all = [...replies.values()].flat();
    for (const reply of all) if (reply.status === 'success' && reply.file_info) produced.add(reply.file_info.filename);
    const malformedWithId = [...byId].filter(([, c]) => c.malformed);
    const malformedErrored = malformedWithId.filter(([id]) => replies.get(id)?.every((r) => r.status === 'error')).length;
    const goodOk = [...byId]
      .filter(([, c]) => !c.malformed)
      .filter(([id]) => {
        const reply = replies.get(id)?.[0];
        return reply?.status === 'success' || (reply?.action === 'capture' && reply.error?.code === 'busy');
      }).length;
    const codes = new Map<string, number>();
    for (const reply of [...all, ...nullReplies]) if (reply.error) codes.set(reply.error.code, (codes.get(reply.error.code) ?? 0) + 1);
    const internal = codes.get('internal') ?? 0;

    const duplicates = [...byId.keys()].reduce((sum, id) => sum + Math.max(0, (replies.get(id)?.length ?? 0) - 1), 0);
    const unexpectedIds = [...replies.keys()].filter((id) => !byId.has(id)).length;
    const statusReply = await request(client, 'cameras', NODE_ID, { action: 'status' });
    const httpStatus = await fetch(`${daemon.httpUrl}/status`);
    const alive =
      daemon.child.exitCode === null &&
      daemon.child.signalCode === null &&
      statusReply['status'] === 'success' &&
      httpStatus.status === 200;
    const touched = diffTrees(before0, await snapshotTree(dir, ['images', 'logs']));
    const onDisk = await imagesOnDisk(captureDir);
    const foreign = [...onDisk.keys()].filter((name) => !produced.has(name));
    const strayInCaptureDir = (await entries(captureDir)).filter(
      (name) => name.startsWith('.') && !['.tmp', '.camera-node-state.json'].includes(name),
    );
    const unhandled = (stderr.match(/unhandled promise rejection/g) ?? []).length;
    const figures = {
      seed: SEED,
      commands: cases.length,
      kinds: kinds.size,
      with_id: byId.size,
      replies_by_id_missing: [...byId.keys()].filter((id) => !replies.has(id)).length,
      duplicate_replies: duplicates,
      replies_under_unknown_ids: unexpectedIds,
      malformed_with_id: malformedWithId.length,
      malformed_error_reply_pct: malformedWithId.length ? Math.round((malformedErrored / malformedWithId.length) * 10000) / 100 : 100,
      without_parseable_id: expectedNull,
      null_id_error_replies: nullReplies.filter((r) => r.status === 'error').length,
      null_id_success_replies: nullReplies.filter((r) => r.status === 'success').length,
      valid_answered_ok: `${goodOk}/${byId.size - malformedWithId.length}`,
      images_captured: produced.size,
      internal_errors: internal,
      crashes: alive ? 0 : 1,
      unhandled_rejections: unhandled,
      files_touched_outside: touched.length,
      foreign_files_in_capture_dir: foreign.length + strayInCaptureDir.length,
      top_codes: [...codes]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 6)
        .map(([code, n]) => `${code}:${n}`)
        .join(' '),
    };
    await recordFigures(`MQTT fuzz (${COMMANDS} commands)`, figures);
    assert.equal(figures.crashes, 0, 'the node still answers');
    assert.equal(unhandled, 0, `no unhandled rejection: ${stderr.slice(0, 2000)}`);
    assert.equal(figures.replies_by_id_missing, 0, 'every command with an id got a reply under it');
    assert.equal(duplicates, 0, 'and only one');
    assert.equal(unexpectedIds, 0, 'no reply under an id nobody sent');
    assert.equal(figures.malformed_error_reply_pct, 100, 'every malformed command got an error reply');
    assert.equal(nullMalformed, expectedNull, 'commands without a usable id are all malformed ones');
    assert.equal(figures.null_id_error_replies, expectedNull, 'each of them got a null-id error reply');
    assert.equal(figures.null_id_success_replies, 0);
    assert.equal(internal, 0, 'bad input is never an internal error');
    assert.equal(goodOk, byId.size - malformedWithId.length, 'well-formed commands still work among the bad ones');
    assert.deepEqual(touched, [], 'nothing outside the capture dir was created, changed or removed');
    assert.deepEqual(foreign, [], 'the capture dir holds only images the node produced');
    assert.deepEqual(strayInCaptureDir, []);
    assert.deepEqual((await listImages(daemon.httpUrl)).map((i) => i.filename).sort(), [...onDisk.keys()].sort());
  });

  /** A message, or FastAPI's validation issues (422): every one with its place, words and kind. */
  const explains = (detail: unknown): boolean =>
    (typeof detail === 'string' && detail !== '') ||
    (Array.isArray(detail) &&
      detail.length > 0 &&
      detail.every(
        (issue: { loc?: unknown; msg?: unknown; type?: unknown } | null) =>
          Array.isArray(issue?.loc) && typeof issue.msg === 'string' && issue.msg !== '' && typeof issue.type === 'string',
      ));

  test(`${HTTP_REQUESTS} generated HTTP requests: no 5xx, every 4xx is JSON with a detail, nothing touched outside`, async () => {
    const cases = fc.sample(httpCases(targets), { numRuns: HTTP_REQUESTS, seed: SEED });
    const { hostname, port } = new URL(daemon.httpUrl);
    const agent = new Agent({ keepAlive: true, maxSockets: 16 });
    const statuses = new Map<number, number>();
    const serverErrors: string[] = [];
    const badErrorBodies: string[] = [];
    const transportErrors = new Map<string, number>();
    let hung = 0;
    let retried = 0;
    // A request sent on a keep-alive connection the server was closing fails in transit: it is sent
    // again once on a fresh connection, and only a second failure counts.
    const send = (c: HttpCase, fresh = false): Promise<void> =>
      new Promise((resolve) => {
        const req = httpRequest(
          {
            host: hostname,
            port: Number(port),
            method: c.method,
            path: c.path,
            headers: { ...c.headers, ...(c.body ? { 'content-length': String(c.body.length) } : {}) },
            agent: fresh ? false : agent,
            timeout: 15_000,
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (chunk: Buffer) => chunks.push(chunk));
            res.on('end', () => {
              const status = res.statusCode ?? 0;
              statuses.set(status, (statuses.get(status) ?? 0) + 1);
              const text = Buffer.concat(chunks).toString();
              if (status >= 500) serverErrors.push(`${c.method} ${c.path.slice(0, 200)} -> ${status} ${text.slice(0, 200)}`);
              if (status >= 400 && status < 500 && c.method !== 'HEAD') {
                let detail: unknown;
                try {
                  detail = (JSON.parse(text) as { detail?: unknown }).detail;
                } catch {
                  detail = undefined;
                }
                if (!explains(detail)) badErrorBodies.push(`${c.method} ${c.path.slice(0, 200)} -> ${status} ${text.slice(0, 200)}`);
              }
              if (status === 200 && c.method === 'POST') {
                const filename =
                  /filename="([^"]+)"/.exec(String(res.headers['content-disposition'] ?? ''))?.[1] ??
                  (JSON.parse(text) as { file_info?: { filename: string } }).file_info?.filename;
                if (filename) produced.add(filename);
              }
              resolve();
            });
            res.on('error', () => resolve());
          },
        );
        req.on('timeout', () => {
          hung += 1;
          req.destroy(new Error('timeout'));
        });
        req.on('error', (err: NodeJS.ErrnoException) => {
          if (!fresh && err.message !== 'timeout') {
            retried += 1;
            resolve(send(c, true));
            return;
          }
          const key = err.code ?? err.message;
          transportErrors.set(key, (transportErrors.get(key) ?? 0) + 1);
          resolve();
        });
        req.end(c.body ?? undefined);
      });
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let c = cases[next++]; c !== undefined; c = cases[next++]) await send(c);
      }),
    );
    agent.destroy();

    const alive = daemon.child.exitCode === null && (await fetch(`${daemon.httpUrl}/health`)).status === 200;
    const touched = diffTrees(before0, await snapshotTree(dir, ['images', 'logs']));
    const onDisk = await imagesOnDisk(captureDir);
    const foreign = [...onDisk.keys()].filter((name) => !produced.has(name));
    const count = (from: number, to: number): number =>
      [...statuses].filter(([s]) => s >= from && s < to).reduce((sum, [, n]) => sum + n, 0);
    const figures = {
      seed: SEED,
      requests: cases.length,
      '2xx': count(200, 300),
      '4xx': count(400, 500),
      '5xx': count(500, 600),
      '4xx_without_detail': badErrorBodies.length,
      statuses: [...statuses]
        .sort((a, b) => a[0] - b[0])
        .map(([s, n]) => `${s}:${n}`)
        .join(' '),
      resent_on_fresh_connection: retried,
      unanswered: [...transportErrors].map(([e, n]) => `${e}:${n}`).join(' ') || 0,
      hung,
      crashes: alive ? 0 : 1,
      files_touched_outside: touched.length,
      foreign_files_in_capture_dir: foreign.length,
    };
    await recordFigures(`HTTP fuzz (${HTTP_REQUESTS} requests)`, figures);
    assert.deepEqual(serverErrors, [], 'no 5xx on bad input');
    assert.deepEqual(badErrorBodies, [], 'every 4xx says why in {"detail": ...}');
    assert.equal(hung, 0, 'every request was answered');
    assert.deepEqual([...transportErrors], [], 'every request got an HTTP answer');
    assert.ok(alive, 'the node is still up');
    assert.deepEqual(touched, [], 'nothing outside the capture dir was created, changed or removed');
    assert.deepEqual(foreign, [], 'the capture dir holds only images the node produced');
  });
});
