import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OUTBOX_DIR } from '../src/delivery/outbox.js';
import { freePort } from './helpers/mosquitto.js';
import { startTestNode } from './helpers/node.js';

interface Upload {
  method: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

/** A receiving server whose answer to each request is decided by `respond` (in order of arrival). */
async function uploadServer(respond: (n: number, upload: Upload, res: ServerResponse) => void, port = 0) {
  const uploads: Upload[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const upload = { method: req.method ?? '', headers: req.headers, body: Buffer.concat(chunks) };
      uploads.push(upload);
      respond(uploads.length, upload, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/upload`,
    uploads,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The parts of a multipart/form-data body, by name. */
function parseMultipart(upload: Upload): Map<string, { filename?: string; data: Buffer }> {
  const boundary = /boundary=(.+)$/.exec(String(upload.headers['content-type']))?.[1];
  assert.ok(boundary, 'multipart boundary');
  const parts = new Map<string, { filename?: string; data: Buffer }>();
  const delimiter = Buffer.from(`--${boundary}`);
  let at = upload.body.indexOf(delimiter);
  while (at >= 0) {
    const start = at + delimiter.length;
    if (upload.body.subarray(start, start + 2).toString() === '--') break;
    const next = upload.body.indexOf(delimiter, start);
    const part = upload.body.subarray(start + 2, next - 2);
    const headerEnd = part.indexOf('\r\n\r\n');
    const head = part.subarray(0, headerEnd).toString();
    const name = /name="([^"]+)"/.exec(head)?.[1] ?? '';
    const filename = /filename="([^"]+)"/.exec(head)?.[1];
    parts.set(name, { ...(filename ? { filename } : {}), data: part.subarray(headerEnd + 4) });
    at = next;
  }
  return parts;
}

const fast = { upload_retry_max_s: 1, upload_timeout_s: 0.5 };

async function waitFor<T>(what: string, read: () => Promise<T | null> | T | null, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('HTTP upload with a durable outbox', () => {
  const cleanup: Array<() => Promise<void>> = [];
  after(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  test('POST sends multipart/form-data with the file and its fields; the image is marked delivered', async () => {
    const server = await uploadServer((_n, _u, res) => res.writeHead(201).end());
    cleanup.push(server.close);
    const node = await startTestNode({ ...fast, upload_url: server.url, upload_headers: { authorization: 'Bearer upload-secret-77' } });
    cleanup.push(() => node.stop());
    const captured = (await (await fetch(`${node.httpUrl}/capture?deliver=http`, { method: 'POST' })).json()) as {
      file_info: { filename: string };
    };
    const upload = await waitFor('the upload', () => server.uploads[0] ?? null);
    const parts = parseMultipart(upload);
    const stored = await readFile(join(node.config.capture_dir, captured.file_info.filename));
    assert.equal(upload.method, 'POST');
    assert.equal(upload.headers['authorization'], 'Bearer upload-secret-77');
    assert.equal(parts.get('file')?.filename, captured.file_info.filename);
    assert.ok(parts.get('file')?.data.equals(stored), 'the file part is the stored image');
    assert.equal(parts.get('sha256')?.data.toString(), createHash('sha256').update(stored).digest('hex'));
    assert.equal(parts.get('node_id')?.data.toString(), node.config.node_id);
    assert.equal(parts.get('filename')?.data.toString(), captured.file_info.filename);
    const image = await waitFor('delivered mark', async () => {
      const list = (await (await fetch(`${node.httpUrl}/images`)).json()) as Array<{ delivered: string[] }>;
      return list[0]?.delivered.includes('http') ? list[0] : null;
    });
    assert.deepEqual(image.delivered, ['http']);
    const logs = await (await fetch(`${node.httpUrl}/logs?lines=500&format=json`)).text();
    assert.ok(!logs.includes('upload-secret-77'), 'upload headers are never logged');
  });

  test('PUT sends the raw file', async () => {
    const server = await uploadServer((_n, _u, res) => res.writeHead(200).end());
    cleanup.push(server.close);
    const node = await startTestNode({ ...fast, upload_url: server.url, upload_method: 'PUT', deliver: 'http' });
    cleanup.push(() => node.stop());
    const captured = (await (await fetch(`${node.httpUrl}/capture`, { method: 'POST' })).json()) as { file_info: { filename: string } };
    const upload = await waitFor('the upload', () => server.uploads[0] ?? null);
    assert.equal(upload.method, 'PUT');
    assert.equal(upload.headers['content-type'], 'image/x-adobe-dng');
    assert.ok(upload.body.equals(await readFile(join(node.config.capture_dir, captured.file_info.filename))));
  });

  test('refused, 500, a stall and 429 are retried; the image arrives exactly once', async () => {
    const port = await freePort();
    // Nothing listens on the port at first: connection refused.
    const node = await startTestNode({ ...fast, upload_url: `http://127.0.0.1:${port}/upload`, upload_method: 'PUT' });
    cleanup.push(() => node.stop());
    await fetch(`${node.httpUrl}/capture?deliver=http`, { method: 'POST' });
    await waitFor('a refused attempt', async () => {
      const status = (await (await fetch(`${node.httpUrl}/status`)).json()) as { delivery: { http: { last_error: string | null } } };
      return status.delivery.http.last_error;
    });
    const server = await uploadServer((n, _u, res) => {
      if (n === 1) res.writeHead(500).end();
      else if (n === 2)
        return; // stall: never answer (the node gives up after upload_timeout_s)
      else if (n === 3) res.writeHead(429, { 'retry-after': '1' }).end();
      else res.writeHead(204).end();
    }, port);
    cleanup.push(server.close);
    await waitFor('a successful upload', () => (server.uploads.length >= 4 ? true : null));
    const status = await waitFor('the delivered count', async () => {
      const s = (await (await fetch(`${node.httpUrl}/status`)).json()) as { delivery: { http: { delivered: number; pending: number } } };
      return s.delivery.http.delivered === 1 ? s.delivery.http : null;
    });
    assert.equal(status.pending, 0);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(server.uploads.length, 4, 'nothing is sent again after the success');
  });

  test('a 403 is given up and reported, not retried', async () => {
    const server = await uploadServer((_n, _u, res) => res.writeHead(403).end());
    cleanup.push(server.close);
    const node = await startTestNode({ ...fast, upload_url: server.url });
    cleanup.push(() => node.stop());
    await fetch(`${node.httpUrl}/capture?deliver=http`, { method: 'POST' });
    const http = await waitFor('the failure', async () => {
      const s = (await (await fetch(`${node.httpUrl}/status`)).json()) as {
        delivery: { http: { failed: number; pending: number; last_error: string } };
      };
      return s.delivery.http.failed === 1 ? s.delivery.http : null;
    });
    assert.match(http.last_error, /403/);
    assert.equal(http.pending, 0);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(server.uploads.length, 1);
  });

  test('the outbox survives a restart and the upload happens at the next start', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'camera-node-outbox-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const port = await freePort();
    const first = await startTestNode({ ...fast, upload_url: `http://127.0.0.1:${port}/u`, upload_method: 'PUT' }, { keepDir: dir });
    await fetch(`${first.httpUrl}/capture?deliver=http`, { method: 'POST' });
    await waitFor('the outbox entry', async () =>
      (await readdir(join(dir, 'images', OUTBOX_DIR))).some((f) => f.endsWith('.json')) ? true : null,
    );
    await first.stop();
    const server = await uploadServer((_n, _u, res) => res.writeHead(200).end(), port);
    cleanup.push(server.close);
    const second = await startTestNode({ ...fast, upload_url: `http://127.0.0.1:${port}/u`, upload_method: 'PUT' }, { keepDir: dir });
    cleanup.push(() => second.stop());
    await waitFor('the upload after restart', () => server.uploads[0] ?? null);
    await waitFor('an empty outbox', async () => ((await readdir(join(dir, 'images', OUTBOX_DIR))).length === 0 ? true : null));
    assert.equal(server.uploads.length, 1);
  });

  test('deliver=http without UPLOAD_URL is refused before capturing', async () => {
    const node = await startTestNode();
    cleanup.push(() => node.stop());
    const response = await fetch(`${node.httpUrl}/capture?deliver=http`, { method: 'POST' });
    assert.equal(response.status, 400);
    assert.match(((await response.json()) as { detail: string }).detail, /UPLOAD_URL/);
    assert.deepEqual(await (await fetch(`${node.httpUrl}/images`)).json(), []);
  });
});
