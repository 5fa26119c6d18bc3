import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestNode, type TestNode } from './helpers/node.js';
import { openSse } from './helpers/sse.js';

const PAGE_FILES = ['/', '/ui/node.js', '/ui/common.js', '/ui/style.css'];

describe('node web page', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode();
  });
  after(async () => {
    await t.stop();
  });

  test('GET / serves the page and its files: small, same-origin only, revalidated by ETag', async () => {
    let total = 0;
    for (const path of PAGE_FILES) {
      const response = await fetch(`${t.httpUrl}${path}`);
      assert.equal(response.status, 200, path);
      const body = await response.text();
      total += Buffer.byteLength(body);
      assert.doesNotMatch(body, /https?:\/\//, `${path} loads nothing from elsewhere`);
      const etag = response.headers.get('etag') ?? '';
      assert.ok(etag, path);
      const again = await fetch(`${t.httpUrl}${path}`, { headers: { 'if-none-match': etag } });
      assert.equal(again.status, 304, path);
    }
    assert.ok(total < 100 * 1024, `the page is ${total} bytes`);
    const page = await fetch(`${t.httpUrl}/`);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'/);
  });

  test('only the page’s own files are served under /ui/', async () => {
    for (const path of [
      '/ui/nope.js',
      '/ui/..%2Fassets.ts',
      '/ui/..%2F..%2Fpackage.json',
      '/ui/node.html.bak',
      '/ui/fleet.js',
      '/ui/node.html',
    ]) {
      const response = await fetch(`${t.httpUrl}${path}`);
      assert.equal(response.status, 404, path);
    }
  });

  test('the live stream sends the status, then images and preview events for a capture, and /preview.jpg serves it', async () => {
    const none = await fetch(`${t.httpUrl}/preview.jpg`);
    assert.equal(none.status, 404);
    const stream = await openSse(`${t.httpUrl}/events`);
    try {
      assert.match(stream.response.headers.get('content-type') ?? '', /^text\/event-stream/);
      const status = await stream.next<{ node_id: string }>('status');
      assert.equal(status.node_id, t.config.node_id);
      const captured = (await (await fetch(`${t.httpUrl}/capture`, { method: 'POST' })).json()) as { file_info: { filename: string } };
      const filename = captured.file_info.filename;
      assert.deepEqual(await stream.next('images'), { reason: 'captured', filename });
      assert.deepEqual(await stream.next('preview'), { filename });
      await stream.next<{ storage: { image_count: number } }>('status', (s) => s.storage.image_count === 1);
      const preview = await fetch(`${t.httpUrl}/preview.jpg`);
      assert.equal(preview.status, 200);
      assert.equal(preview.headers.get('content-type'), 'image/jpeg');
      assert.equal(preview.headers.get('x-capture'), filename);
      const jpeg = Buffer.from(await preview.arrayBuffer());
      assert.deepEqual([...jpeg.subarray(0, 2)], [0xff, 0xd8], 'a JPEG');
      const etag = preview.headers.get('etag') ?? '';
      assert.equal((await fetch(`${t.httpUrl}/preview.jpg`, { headers: { 'if-none-match': etag } })).status, 304);

      await fetch(`${t.httpUrl}/images/${filename}`, { method: 'DELETE' });
      assert.deepEqual(await stream.next('images'), { reason: 'deleted', filename });
      assert.equal((await fetch(`${t.httpUrl}/preview.jpg`)).status, 404, 'a deleted image takes its preview along');
    } finally {
      stream.close();
    }
  });

  test('a stream open while the node stops is ended, and the node stops', async () => {
    const other = await startTestNode();
    const stream = await openSse(`${other.httpUrl}/events`);
    await stream.next('status');
    await Promise.all([other.stop(), stream.ended()]);
  });
});

describe('node web page with HTTP_TOKEN', () => {
  let t: TestNode;
  const token = 'page-token-1234';
  before(async () => {
    t = await startTestNode({ http_token: token });
  });
  after(async () => {
    await t.stop();
  });

  test('the page loads without the token; its API calls, stream and preview need it', async () => {
    for (const path of PAGE_FILES) assert.equal((await fetch(`${t.httpUrl}${path}`)).status, 200, path);
    for (const path of ['/events', '/preview.jpg', '/status', '/ui/../status']) {
      assert.equal((await fetch(`${t.httpUrl}${path}`)).status, 401, path);
    }
    const stream = await openSse(`${t.httpUrl}/events`, { authorization: `Bearer ${token}` });
    try {
      assert.equal((await stream.next<{ node_id: string }>('status')).node_id, t.config.node_id);
    } finally {
      stream.close();
    }
  });
});
