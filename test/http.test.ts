import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, stat } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { createSchemaRegistry } from '../src/schemas.js';
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
    const info = body['file_info'] as { filename: string; filepath: string; timestamp: string; size: number };
    assert.match(info.filename, IMAGE_NAME);
    assert.ok(!Number.isNaN(Date.parse(info.timestamp)));
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

  test('capture settings are validated; a bad one is a 400 and changes nothing', async () => {
    const before = (await filesIn(t.config.capture_dir)).length;
    for (const query of ['?shutter_us=abc', '?gain=100', '?awb=purple', '?shuter=100', '?return_file=maybe']) {
      const response = await capture(t.httpUrl, query);
      assert.equal(response.status, 400, query);
      const body = await json(response);
      assert.equal(typeof body['detail'], 'string', query);
    }
    assert.equal((await filesIn(t.config.capture_dir)).length, before);
    const ok = await capture(t.httpUrl, '?shutter_us=20000&gain=2.5&ev=-1&awb=daylight&hflip=true');
    assert.equal(ok.status, 200, await ok.clone().text());
  });

  test('GET /images lists newest first; GET /images/{name} streams the file', async () => {
    await capture(t.httpUrl);
    const body = await json(await fetch(`${t.httpUrl}/images`));
    const images = body['images'] as Array<{ filename: string; size: number; created: string }>;
    assert.ok(images.length >= 2);
    assert.equal(body['count'], images.length);
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

  test('traversal and foreign names are 400, unknown images 404, and touch no file', async () => {
    for (const path of [
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
        assert.equal(response.status, 400, `${method} ${path}`);
        assert.equal(typeof (JSON.parse(response.body) as Record<string, unknown>)['detail'], 'string');
      }
    }
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
    const listed = (await json(await fetch(`${t.httpUrl}/images`)))['images'] as Array<{ filename: string }>;
    assert.ok(!listed.some((i) => i.filename === made.filename));
    assert.equal((await fetch(`${t.httpUrl}/images/${made.filename}`, { method: 'DELETE' })).status, 404);
  });

  test('GET /logs returns the last N entries and bounds N', async () => {
    const body = await json(await fetch(`${t.httpUrl}/logs?lines=5`));
    const logs = body['logs'] as Array<Record<string, unknown>>;
    assert.equal(logs.length, 5);
    assert.ok(logs.every((entry) => typeof entry['msg'] === 'string'));
    const defaults = await json(await fetch(`${t.httpUrl}/logs`));
    assert.ok((defaults['logs'] as unknown[]).length > 5);
    for (const query of ['?lines=0', '?lines=-1', '?lines=abc', `?lines=${t.config.max_log_lines + 1}`]) {
      assert.equal((await fetch(`${t.httpUrl}/logs${query}`)).status, 400, query);
    }
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
      assert.deepEqual((await json(await fetch(`${t.httpUrl}/images`)))['images'], []);
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
      const listed = ((await json(await fetch(`${t.httpUrl}/images`)))['images'] as Array<{ filename: string }>).map((i) => i.filename);
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
