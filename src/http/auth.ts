import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { NodeError } from '../errors.js';

const digest = (value: string): Buffer => createHash('sha256').update(value).digest();

/**
 * Bearer-token check. Both sides are hashed first so the comparison is constant-time whatever the
 * lengths; a wrong token and a missing one get the same answer. An open path ending in `/*` opens
 * everything under it.
 */
export function bearerAuth(token: string, openPaths: readonly string[]) {
  const expected = digest(token);
  const prefixes = openPaths.filter((p) => p.endsWith('/*')).map((p) => p.slice(0, -1));
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    // CORS preflights carry no credentials by design; the real request that follows does.
    if (request.method === 'OPTIONS') return;
    const path = request.url.split('?', 1)[0] ?? '';
    if (openPaths.includes(path) || prefixes.some((prefix) => path.startsWith(prefix))) return;
    const header = request.headers.authorization ?? '';
    const match = /^Bearer\s+(.+)$/i.exec(header);
    if (!match?.[1] || !timingSafeEqual(digest(match[1].trim()), expected)) {
      reply.header('www-authenticate', 'Bearer');
      throw new NodeError('unauthorized', 'Not authenticated');
    }
  };
}
