import type { ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** A client further behind than this is cut off; its page reconnects and starts from a fresh snapshot. */
const MAX_BUFFERED_BYTES = 256 * 1024;
/** A comment line this often keeps proxies and the browser from timing an idle stream out. */
const HEARTBEAT_MS = 20_000;

export interface SseHub {
  /** Takes over the reply and keeps the stream open until the client goes or the hub closes. */
  add(request: FastifyRequest, reply: FastifyReply, greeting?: Array<[event: string, data: unknown]>): void;
  /** One event to every client. */
  send(event: string, data: unknown): void;
  size(): number;
  /** Ends every stream (the server is closing). */
  close(): void;
}

export interface SseHubOptions {
  /** The first client arrived: start producing events. */
  onFirst?: () => void;
  /** The last client left: stop producing them, so an unwatched process does no work. */
  onEmpty?: () => void;
}

const frame = (event: string, data: unknown): string => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

/** Server-sent events to many clients, over fastify replies taken out of its hands. */
export function createSseHub(options: SseHubOptions = {}): SseHub {
  const clients = new Set<ServerResponse>();
  let heartbeat: NodeJS.Timeout | null = null;

  const write = (res: ServerResponse, text: string): void => {
    if (res.writableLength > MAX_BUFFERED_BYTES) {
      res.destroy();
      return;
    }
    res.write(text);
  };
  const drop = (res: ServerResponse): void => {
    if (!clients.delete(res)) return;
    if (clients.size === 0) {
      if (heartbeat) clearInterval(heartbeat);
      heartbeat = null;
      options.onEmpty?.();
    }
  };

  return {
    add(request, reply, greeting = []) {
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        connection: 'keep-alive',
        'x-content-type-options': 'nosniff',
      });
      // Reconnect after 2 s when the stream breaks (the page's own reader honours it as well).
      res.write('retry: 2000\n\n');
      const first = clients.size === 0;
      clients.add(res);
      request.raw.once('close', () => drop(res));
      res.once('close', () => drop(res));
      if (first) {
        heartbeat = setInterval(() => {
          for (const client of clients) write(client, ': keep-alive\n\n');
        }, HEARTBEAT_MS);
        heartbeat.unref();
        options.onFirst?.();
      }
      for (const [event, data] of greeting) write(res, frame(event, data));
    },
    send(event, data) {
      if (clients.size === 0) return;
      const text = frame(event, data);
      for (const client of clients) write(client, text);
    },
    size: () => clients.size,
    close() {
      for (const client of [...clients]) {
        client.end();
        drop(client);
      }
    },
  };
}
