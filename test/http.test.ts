import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type FileHandle, open, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { createSchemaRegistry } from '../src/schemas.js';
import { imageStem } from '../src/storage/names.js';
import { startTestNode, type TestNode } from './helpers/node.js';

const IMAGE_NAME = /^capture_\d{8}_\d{6}(_\d+)?\.dng$/;

async function json(response: Response): Promise<Record<string, unknown>> {
  return (await response.json()) as Record<string, unknown>;
}

async function capture(base: string, query = ''): Promise<Response> {
  return fetch(`${base}/capture${query}`, { method: 'POST' });
}

async function filesIn(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => !name.startsWith('.'));
}

describe('HTTP API', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode();
  });
  after(async () => {
    await t.stop();
  });

  test('GET /status has the seed’s shape and validates against the schema', async () => {
    const response = await fetch(`${t.httpUrl}/status`);
    assert.equal(response.status, 200);
    const body = await json(response);
    const validate = createSchemaRegistry().validator('status.schema.json');
    assert.ok(validate(body), JSON.stringify(validate.errors));
    assert.equal(body['node_id'], t.config.node_id);
    assert.equal(body['status'], 'online');
    const camera = body['camera'] as Record<string, unknown>;
    assert.equal(camera['simulated'], true);
    assert.equal(camera['connected'], true);
    assert.equal(camera['sensor'], 'tiny');
    for (const key of ['cpu_percent', 'memory_percent', 'disk_usage', 'uptime']) {
      assert.equal(typeof (body['system'] as Record<string, unknown>)[key], 'number', key);
    }
  });

  test('POST /capture returns the seed’s JSON and stores a complete DNG', async () => {
    const response = await capture(t.httpUrl);
    assert.equal(response.status, 200);
    const body = await json(response);
    assert.equal(body['status'], 'success');
    assert.equal(body['node_id'], t.config.node_id);
    const info = body['file_info'] as { filename: string; filepath: string; timestamp: string; size: number; captured_at: string };
    assert.match(info.filename, IMAGE_NAME);
    // The seed's timestamp is the name's local-time second; captured_at says the same instant in UTC.
    assert.equal(info.filename.slice('capture_'.length, 'capture_YYYYMMDD_HHMMSS'.length), info.timestamp);
    assert.match(info.timestamp, /^\d{8}_\d{6}$/);
    assert.equal(imageStem(new Date(info.captured_at)), `capture_${info.timestamp}`);
    assert.ok(createSchemaRegistry().validator('response.schema.json')({ ...body, id: null, action: 'capture' }));
    const onDisk = await stat(info.filepath);
    assert.equal(onDisk.size, info.size);
    const head = (await readFile(info.filepath)).subarray(0, 4);
    assert.deepEqual([...head], [0x49, 0x49, 0x2a, 0x00], 'little-endian TIFF header');
    assert.deepEqual(await readdir(join(t.config.capture_dir, '.tmp')), [], 'no temp files left');
  });

  test('POST /capture?return_file=true streams the DNG itself', async () => {
    const response = await capture(t.httpUrl, '?return_file=true');
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'image/x-adobe-dng');
    const disposition = response.headers.get('content-disposition') ?? '';
    const name = /filename="([^"]+)"/.exec(disposition)?.[1] ?? '';
    assert.match(name, IMAGE_NAME);
    const body = Buffer.from(await response.arrayBuffer());
    assert.deepEqual(body, await readFile(join(t.config.capture_dir, name)));
  });

  test('capture settings are validated; a bad one is a 422 in FastAPI’s shape and changes nothing', async () => {
    const before = (await filesIn(t.config.capture_dir)).length;
    for (const [query, type, input] of [
      ['?shutter_us=abc', 'int_parsing', 'abc'],
      ['?shutter_us=1.5', 'int_parsing', '1.5'],
      ['?gain=100', 'less_than_equal', 100],
      ['?awb=purple', 'enum', 'purple'],
      ['?shuter=100', 'extra_forbidden', '100'],
      ['?return_file=maybe', 'bool_parsing', 'maybe'],
    ] as const) {
      const response = await capture(t.httpUrl, query);
      assert.equal(response.status, 422, query);
      const body = await json(response);
      assert.equal(body['code'], 'validation_error');
      const [issue, ...more] = body['detail'] as Array<{ type: string; loc: string[]; msg: string; input: unknown }>;
      assert.deepEqual(more, [], query);
      assert.equal(issue?.type, type, query);
      assert.deepEqual(issue?.loc, ['query', query.slice(1, query.indexOf('='))]);
      assert.equal(issue?.input, input);
      assert.ok(issue?.msg.startsWith('Input should') || issue?.msg === 'Extra inputs are not permitted', issue?.msg);
    }
    assert.equal((await filesIn(t.config.capture_dir)).length, before);
    const ok = await capture(t.httpUrl, '?shutter_us=20000&gain=2.5&ev=-1&awb=daylight&hflip=true');
    assert.equal(ok.status, 200, await ok.clone().text());
  });

  test('GET /images lists newest first; GET /images/{name} streams the file', async () => {
    await capture(t.httpUrl);
    const images = (await (await fetch(`${t.httpUrl}/images`)).json()) as Array<{
      filename: string;
      size: number;
      created: string;
      timestamp: string;
      delivered: string[];
    }>;
    assert.ok(Array.isArray(images) && images.length >= 2);
    for (const image of images) {
      assert.equal(`capture_${image.timestamp}`, image.filename.slice(0, 'capture_YYYYMMDD_HHMMSS'.length));
      assert.deepEqual(image.delivered, []);
    }
    // The MQTT list reply's form, on request.
    assert.deepEqual(await json(await fetch(`${t.httpUrl}/images?envelope=true`)), { images, count: images.length });
    const created = images.map((i) => Date.parse(i.created));
    assert.deepEqual(
      created,
      [...created].sort((a, b) => b - a),
    );
    const first = images[0]!;
    const response = await fetch(`${t.httpUrl}/images/${first.filename}`);
    assert.equal(response.status, 200);
    assert.equal(Number(response.headers.get('content-length')), first.size);
    assert.deepEqual(Buffer.from(await response.arrayBuffer()), await readFile(join(t.config.capture_dir, first.filename)));
  });

  const rawRequest = (url: string, method: string): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const { host, pathname } = new URL(url.replace(/\/images\/.*$/, '/'));
      const path = `${pathname}${url.slice(url.indexOf('/images/') + 1)}`;
      const req = httpRequest({ host: host.split(':')[0], port: Number(host.split(':')[1]), path, method }, (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => {
          body += chunk.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });

  test('any missing image is 404, traversal and foreign names included, and no file is touched', async () => {
    // A file with an image's name just outside the capture dir: the target of a traversal.
    const outside = join(t.dir, 'capture_20260101_000000.dng');
    await writeFile(outside, 'secret');
    for (const path of [
      '..%2Fcapture_20260101_000000.dng',
      '%2E%2E%2Fcapture_20260101_000000.dng',
      '..%5Ccapture_20260101_000000.dng',
      '..%2F..%2Fetc%2Fpasswd',
      '..',
      '%2Fetc%2Fpasswd',
      'capture_x.dng',
      'camera_node.log',
      'capture_20260101_000000.dng%00.txt',
      '.tmp',
    ]) {
      for (const method of ['GET', 'DELETE']) {
        // node:http sends the path as written: fetch would resolve `..` before it left.
        const response = await rawRequest(`${t.httpUrl}/images/${path}`, method);
        assert.equal(response.status, 404, `${method} ${path}`);
        assert.deepEqual(JSON.parse(response.body), { detail: 'Image not found', code: 'not_found' });
      }
    }
    const long = await fetch(`${t.httpUrl}/images/${'a'.repeat(300)}.dng`);
    assert.equal(long.status, 404);
    assert.equal((await json(long))['detail'], 'Image not found');
    assert.equal((await stat(outside)).size, 6, 'the file beside the capture dir is untouched');
    const missing = await fetch(`${t.httpUrl}/images/capture_19990101_000000.dng`);
    assert.equal(missing.status, 404);
    assert.deepEqual(await json(missing), { detail: 'Image not found: capture_19990101_000000.dng', code: 'not_found' });
  });

  test('DELETE /images/{name} removes the file; a second delete is 404', async () => {
    const made = (await json(await capture(t.httpUrl)))['file_info'] as { filename: string; filepath: string };
    const response = await fetch(`${t.httpUrl}/images/${made.filename}`, { method: 'DELETE' });
    assert.equal(response.status, 200);
    assert.equal((await json(response))['status'], 'success');
    await assert.rejects(stat(made.filepath), { code: 'ENOENT' });
    const listed = (await (await fetch(`${t.httpUrl}/images`)).json()) as Array<{ filename: string }>;
    assert.ok(!listed.some((i) => i.filename === made.filename));
    assert.equal((await fetch(`${t.httpUrl}/images/${made.filename}`, { method: 'DELETE' })).status, 404);
  });

  test('GET /logs returns the last N entries as readable lines, or as logged, and bounds N', async () => {
    const lines = (await (await fetch(`${t.httpUrl}/logs?lines=5`)).json()) as string[];
    assert.equal(lines.length, 5);
    // The seed's `timestamp - name - level - message`, Python's asctime first.
    for (const line of lines)
      assert.match(line, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - camera-node(\.[a-z-]+)? - (DEBUG|INFO|WARNING|ERROR|CRITICAL) - \S/);
    const entries = (await (await fetch(`${t.httpUrl}/logs?lines=5&format=json`)).json()) as Array<Record<string, unknown>>;
    assert.equal(entries.length, 5);
    assert.ok(entries.every((entry) => typeof entry['msg'] === 'string' && typeof entry['time'] === 'number'));
    const wrapped = await json(await fetch(`${t.httpUrl}/logs?lines=2&format=json&envelope=on`));
    assert.deepEqual(Object.keys(wrapped), ['logs', 'lines']);
    assert.equal(wrapped['lines'], 2);
    assert.ok(((await (await fetch(`${t.httpUrl}/logs`)).json()) as unknown[]).length > 5);
    for (const query of ['?lines=0', '?lines=-1', '?lines=abc', `?lines=${t.config.max_log_lines + 1}`, '?format=xml']) {
      const response = await fetch(`${t.httpUrl}/logs${query}`);
      assert.equal(response.status, 422, query);
      assert.equal(((await json(response))['detail'] as unknown[]).length, 1);
    }
  });

  test('a download whose stat fails answers 500 and closes the file it opened', async () => {
    const made = (await json(await capture(t.httpUrl)))['file_info'] as { filename: string; filepath: string };
    // Every FileHandle shares one prototype: the next stat() on any of them fails once, as an EIO would.
    const probe = await open(made.filepath, 'r');
    const prototype = Object.getPrototypeOf(probe) as { stat: FileHandle['stat'] };
    await probe.close();
    const original = prototype.stat;
    let failed: FileHandle | undefined;
    prototype.stat = async function (this: FileHandle) {
      prototype.stat = original;
      failed = this;
      throw Object.assign(new Error('EIO: i/o error, fstat'), { code: 'EIO' });
    } as FileHandle['stat'];
    try {
      const response = await fetch(`${t.httpUrl}/images/${made.filename}`);
      assert.equal(response.status, 500);
      assert.equal((await json(response))['code'], 'storage_failed');
    } finally {
      prototype.stat = original;
    }
    assert.ok(failed, 'the route called stat');
    assert.equal(failed.fd, -1, 'the handle was closed');
  });

  test('concurrent captures queue and all succeed with distinct names', async () => {
    const responses = await Promise.all([1, 2, 3, 4].map(() => capture(t.httpUrl)));
    const names = await Promise.all(responses.map(async (r) => ((await json(r))['file_info'] as { filename: string }).filename));
    assert.deepEqual(
      responses.map((r) => r.status),
      [200, 200, 200, 200],
    );
    assert.equal(new Set(names).size, 4);
  });

  test('unknown routes answer 404 with a detail; CORS is on', async () => {
    const response = await fetch(`${t.httpUrl}/nope`, { headers: { origin: 'http://dashboard.local' } });
    assert.equal(response.status, 404);
    assert.equal((await json(response))['detail'], 'Not Found');
    assert.equal(response.headers.get('access-control-allow-origin'), '*');
  });
});

describe('HTTP API limits and failures', () => {
  test('a queue past its bound answers 503 busy', async () => {
    const t = await startTestNode({ max_queued_captures: 1 }, { cameraEnv: { CAMERA_SIM_CAPTURE_MS: '400' } });
    try {
      const responses = await Promise.all([1, 2, 3, 4].map(() => capture(t.httpUrl)));
      const statuses = responses.map((r) => r.status).sort();
      assert.deepEqual(statuses, [200, 200, 503, 503]);
      const busy = await json(responses.find((r) => r.status === 503)!);
      assert.equal(busy['code'], 'busy');
    } finally {
      await t.stop();
    }
  });

  test('a camera failure is a 500 carrying the app’s error, with no file left behind', async () => {
    const t = await startTestNode({}, { cameraEnv: { CAMERA_SIM_FAIL: 'capture-error' } });
    try {
      const response = await capture(t.httpUrl);
      assert.equal(response.status, 500);
      const body = await json(response);
      assert.equal(body['code'], 'camera_failed');
      assert.ok(String(body['detail']).length > 10);
      assert.deepEqual(await filesIn(t.config.capture_dir), []);
      assert.deepEqual(await readdir(join(t.config.capture_dir, '.tmp')), []);
    } finally {
      await t.stop();
    }
  });

  test('a camera process that dies mid-write leaves no partial image', async () => {
    const t = await startTestNode({}, { cameraEnv: { CAMERA_SIM_FAIL: 'crash' } });
    try {
      const response = await capture(t.httpUrl);
      assert.equal(response.status, 500);
      assert.deepEqual(await (await fetch(`${t.httpUrl}/images`)).json(), []);
      assert.deepEqual(await filesIn(t.config.capture_dir), []);
      assert.deepEqual(await readdir(join(t.config.capture_dir, '.tmp')), []);
    } finally {
      await t.stop();
    }
  });

  test('a hung camera is killed after the timeout (504)', async () => {
    const t = await startTestNode({ capture_timeout_s: 1 }, { cameraEnv: { CAMERA_SIM_FAIL: 'hang' } });
    try {
      const response = await capture(t.httpUrl);
      assert.equal(response.status, 504);
      assert.equal((await json(response))['code'], 'camera_timeout');
      assert.deepEqual(await readdir(join(t.config.capture_dir, '.tmp')), []);
    } finally {
      await t.stop();
    }
  });

  test('no camera: status is degraded and a capture is 503', async () => {
    const t = await startTestNode({}, { cameraEnv: { CAMERA_SIM_FAIL: 'no-camera' } });
    try {
      const status = await json(await fetch(`${t.httpUrl}/status`));
      assert.equal(status['status'], 'degraded');
      assert.equal((status['camera'] as Record<string, unknown>)['connected'], false);
      const response = await capture(t.httpUrl);
      assert.equal(response.status, 503);
      assert.equal((await json(response))['code'], 'camera_unavailable');
    } finally {
      await t.stop();
    }
  });

  test('the storage limit evicts the oldest images; an image that can never fit is 507', async () => {
    const t = await startTestNode({ storage_limit_mb: 0.3 });
    try {
      const names: string[] = [];
      for (let i = 0; i < 6; i++) {
        const response = await capture(t.httpUrl);
        assert.equal(response.status, 200);
        names.push(((await json(response))['file_info'] as { filename: string }).filename);
        const status = await json(await fetch(`${t.httpUrl}/status`));
        const storage = status['storage'] as { used_mb: number; limit_mb: number };
        assert.ok(storage.used_mb <= storage.limit_mb, JSON.stringify(storage));
      }
      const listed = ((await (await fetch(`${t.httpUrl}/images`)).json()) as Array<{ filename: string }>).map((i) => i.filename);
      assert.ok(listed.length < names.length, 'some images were evicted');
      assert.deepEqual(listed, names.slice(names.length - listed.length).reverse(), 'the newest survive, the oldest went');
      assert.deepEqual((await filesIn(t.config.capture_dir)).sort(), [...listed].sort());
    } finally {
      await t.stop();
    }
    const tiny = await startTestNode({ storage_limit_mb: 0.01 });
    try {
      const response = await capture(tiny.httpUrl);
      assert.equal(response.status, 507);
      assert.equal((await json(response))['code'], 'storage_full');
    } finally {
      await tiny.stop();
    }
  });

  test('with HTTP_TOKEN every route but /health needs the bearer token', async () => {
    const t = await startTestNode({ http_token: 'tok-123456' });
    try {
      assert.equal((await fetch(`${t.httpUrl}/health`)).status, 200);
      for (const [method, path] of [
        ['GET', '/status'],
        ['GET', '/images'],
        ['POST', '/capture'],
        ['GET', '/logs'],
        ['DELETE', '/images/capture_20260101_000000.dng'],
      ] as const) {
        const none = await fetch(`${t.httpUrl}${path}`, { method });
        assert.equal(none.status, 401, `${method} ${path}`);
        assert.equal((await json(none))['detail'], 'Not authenticated');
        const wrong = await fetch(`${t.httpUrl}${path}`, { method, headers: { authorization: 'Bearer tok-654321' } });
        assert.equal(wrong.status, 401);
      }
      assert.deepEqual(await filesIn(t.config.capture_dir), [], 'an unauthenticated capture did nothing');
      const ok = await fetch(`${t.httpUrl}/status`, { headers: { authorization: 'Bearer tok-123456' } });
      assert.equal(ok.status, 200);
      assert.ok(!JSON.stringify(await ok.json()).includes('tok-123456'), 'the token never appears in the status');
    } finally {
      await t.stop();
    }
  });

  test('the per-client rate limit answers 429 with Retry-After', async () => {
    const t = await startTestNode({ http_rate_limit: 5 });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 7; i++) statuses.push((await fetch(`${t.httpUrl}/health`)).status);
      assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429]);
      const limited = await fetch(`${t.httpUrl}/status`);
      assert.equal(limited.status, 429);
      assert.ok(Number(limited.headers.get('retry-after')) > 0);
    } finally {
      await t.stop();
    }
  });
});
