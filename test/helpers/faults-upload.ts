import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/**
 * How the upload target treats one request:
 * ok (2xx), error500, retry429 (with Retry-After), stall (reads the body, never answers),
 * stall-mid (stops reading halfway, never answers), reset (cuts the connection mid-body).
 */
export type Behaviour = 'ok' | 'error500' | 'retry429' | 'stall' | 'stall-mid' | 'reset';

export interface UploadRecord {
  n: number;
  behaviour: Behaviour;
  /** Body bytes received. */
  bytes: number;
  /** SHA-256 of the whole body, once it was received completely; null otherwise. */
  sha256: string | null;
  /** The status answered (null: none, the request stalled or was cut). */
  status: number | null;
  at: number;
  headers: IncomingHttpHeaders;
  /** The request target: path and query. */
  url: string;
}

export interface FlakyServerOptions {
  port: number;
  decide: (n: number) => Behaviour;
  retryAfterS?: number;
  /** stall-mid and reset act once this many body bytes arrived (default 64 KiB). */
  cutAfterBytes?: number;
}

/**
 * An upload target on a fixed loopback port that misbehaves on demand and can be taken down (its port
 * then refuses connections) and brought back. Every request is recorded.
 */
export function flakyUploadServer(options: FlakyServerOptions) {
  const records: UploadRecord[] = [];
  const sockets = new Set<Socket>();
  const cutAfter = options.cutAfterBytes ?? 64 * 1024;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const record: UploadRecord = {
      n: records.length + 1,
      behaviour: options.decide(records.length + 1),
      bytes: 0,
      sha256: null,
      status: null,
      at: Date.now(),
      headers: req.headers,
      url: req.url ?? '',
    };
    records.push(record);
    const hash = createHash('sha256');
    const answer = (status: number, headers: Record<string, string> = {}): void => {
      record.status = status;
      res.writeHead(status, headers).end();
    };
    if (record.behaviour === 'retry429') {
      // Answered before the body is read, as a rate limiter in front of the real service would.
      req.resume();
      answer(429, { 'retry-after': String(options.retryAfterS ?? 1) });
      return;
    }
    req.on('data', (chunk: Buffer) => {
      record.bytes += chunk.length;
      hash.update(chunk);
      if (record.bytes < cutAfter) return;
      if (record.behaviour === 'stall-mid') req.pause();
      else if (record.behaviour === 'reset') req.socket.destroy();
    });
    req.on('end', () => {
      record.sha256 = hash.digest('hex');
      if (record.behaviour === 'ok') answer(200);
      else if (record.behaviour === 'error500') answer(500);
      // stall: the body is in, the answer never comes
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  let listening = false;

  return {
    url: `http://127.0.0.1:${options.port}/upload`,
    records,
    /** Whole bodies acknowledged with a 2xx, by SHA-256. */
    acknowledged(): Map<string, number> {
      const acks = new Map<string, number>();
      for (const record of records) {
        if (record.sha256 && record.status !== null && record.status < 300) acks.set(record.sha256, (acks.get(record.sha256) ?? 0) + 1);
      }
      return acks;
    },
    async up(): Promise<void> {
      if (listening) return;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(options.port, '127.0.0.1', () => {
          server.off('error', reject);
          resolve();
        });
      });
      listening = true;
    },
    /** Stops listening and cuts every open connection: the port refuses until up(). */
    async down(): Promise<void> {
      if (!listening) return;
      listening = false;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
export type FlakyUploadServer = ReturnType<typeof flakyUploadServer>;
