import type { FastifyReply, FastifyRequest } from 'fastify';
import { NodeError } from '../errors.js';

/**
 * A fixed one-minute window per client address. A node serves a handful of dashboards and scripts;
 * this only has to stop one runaway client from starving the camera and the SD card.
 */
export function createRateLimiter(options: { perMinute: number; maxClients?: number; now?: () => number }) {
  const now = options.now ?? Date.now;
  const maxClients = options.maxClients ?? 10_000;
  const windows = new Map<string, { start: number; count: number }>();
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const time = now();
    const key = request.ip;
    let window = windows.get(key);
    if (!window || time - window.start >= 60_000) {
      // Bounded memory: forget every expired window before tracking one more client.
      if (!window && windows.size >= maxClients) {
        for (const [client, w] of windows) if (time - w.start >= 60_000) windows.delete(client);
        if (windows.size >= maxClients) windows.clear();
      }
      window = { start: time, count: 0 };
      windows.set(key, window);
    }
    window.count++;
    if (window.count > options.perMinute) {
      reply.header('retry-after', String(Math.ceil((window.start + 60_000 - time) / 1000)));
      throw new NodeError('rate_limited', `Too many requests: at most ${options.perMinute} per minute`);
    }
  };
}
