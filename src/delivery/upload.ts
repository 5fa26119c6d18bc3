import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { nodeHttp, nodeHttps } from '../http/node-http.js';
import { DNG_CONTENT_TYPE } from './manifest.js';

export interface UploadRequest {
  url: string;
  method: 'POST' | 'PUT';
  headers: Record<string, string>;
  path: string;
  fields: { node_id: string; filename: string; sha256: string; captured_at: string };
  /** Abandon an upload that makes no progress for this long. */
  idleTimeoutMs: number;
  signal?: AbortSignal;
}

export interface UploadResponse {
  status: number;
  /** Seconds from a Retry-After header (delta or HTTP date), when the server sent one. */
  retryAfterS: number | null;
}

/** Text-only multipart parts before the file, and the closing boundary after it. */
function multipartFrame(boundary: string, fields: UploadRequest['fields']): { head: Buffer; tail: Buffer } {
  const quote = (value: string): string => value.replace(/["\r\n\\]/g, '_');
  let head = '';
  for (const [name, value] of Object.entries(fields)) {
    head += `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
  }
  head += `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${quote(fields.filename)}"\r\nContent-Type: ${DNG_CONTENT_TYPE}\r\n\r\n`;
  return { head: Buffer.from(head), tail: Buffer.from(`\r\n--${boundary}--\r\n`) };
}

export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | null {
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) return null;
  if (/^\d+$/.test(text.trim())) return Number(text.trim());
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, (at - now) / 1000);
}

/**
 * One upload, streamed from disk (a 24 MB DNG is never in memory): PUT sends the raw file, POST a
 * multipart/form-data body whose length is known up front, so no chunked encoding is needed and
 * object stores that insist on Content-Length accept it. Resolves with the status; rejects on a
 * connection error, a stall longer than the idle timeout, or an abort.
 */
export async function uploadFile(upload: UploadRequest): Promise<UploadResponse> {
  const { size } = await stat(upload.path);
  const url = new URL(upload.url);
  const boundary = `camera-node-${randomUUID()}`;
  const frame = upload.method === 'POST' ? multipartFrame(boundary, upload.fields) : null;
  const length = frame ? frame.head.length + size + frame.tail.length : size;
  const headers: Record<string, string | number> = {
    ...upload.headers,
    'content-length': length,
    'content-type': frame ? `multipart/form-data; boundary=${boundary}` : DNG_CONTENT_TYPE,
  };
  const send = url.protocol === 'https:' ? nodeHttps.request : nodeHttp.request;
  const req = send(url, {
    method: upload.method,
    headers,
    timeout: upload.idleTimeoutMs,
    ...(upload.signal ? { signal: upload.signal } : {}),
  });
  req.on('timeout', () => req.destroy(new Error(`no progress for ${upload.idleTimeoutMs} ms`)));
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    req.once('response', resolve);
    req.once('error', reject);
  });
  async function* body(): AsyncGenerator<Buffer> {
    if (frame) yield frame.head;
    yield* createReadStream(upload.path, { highWaterMark: 256 * 1024 }) as AsyncIterable<Buffer>;
    if (frame) yield frame.tail;
  }
  // A server may answer (e.g. 403) before the body is sent: the response decides, not the pipe.
  const sent = pipeline(Readable.from(body()), req).catch(() => undefined);
  const res = await response;
  res.resume();
  await new Promise<void>((resolve) => {
    res.once('end', resolve);
    res.once('error', () => resolve());
    res.once('close', resolve);
  });
  await sent;
  return { status: res.statusCode ?? 0, retryAfterS: parseRetryAfter(res.headers['retry-after']) };
}

/** Whether a failed upload is worth another try: connection problems, timeouts, 408, 429 and 5xx. */
export const isRetryable = (status: number): boolean => status === 408 || status === 429 || status >= 500;
