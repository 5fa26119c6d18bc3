import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { FastifyReply, FastifyRequest } from 'fastify';

/**
 * The pages' files, read from `src/web/assets/` on first request and kept (a few tens of KB): a
 * node nobody looks at never reads them. Only names in this table are served, so a request can never
 * reach another file.
 */
const TYPES: Record<string, string> = {
  'node.html': 'text/html; charset=utf-8',
  'fleet.html': 'text/html; charset=utf-8',
  'common.js': 'text/javascript; charset=utf-8',
  'node.js': 'text/javascript; charset=utf-8',
  'fleet.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
};

/** From `dist/src/web/` (compiled) back to the sources' asset folder, which the package ships. */
const DIR = new URL('../../../src/web/assets/', import.meta.url);

/**
 * Same-origin only, no inline script or style: the pages work offline on a LAN and a stored name
 * or log line can never run as code. `blob:` images are the previews fetched with the token.
 */
const CSP =
  "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

interface Asset {
  body: Buffer;
  etag: string;
}

const cache = new Map<string, Promise<Asset>>();

function load(name: string): Promise<Asset> {
  let found = cache.get(name);
  if (!found) {
    found = readFile(new URL(name, DIR)).then((body) => ({ body, etag: `"${createHash('sha1').update(body).digest('base64url')}"` }));
    // A failed read is not cached: the next request tries again.
    found.catch(() => cache.delete(name));
    cache.set(name, found);
  }
  return found;
}

/** Sends one asset; revalidated on every load (no-cache + ETag), so an upgraded node serves its new page at once. */
export async function sendAsset(request: FastifyRequest, reply: FastifyReply, name: string): Promise<FastifyReply> {
  const type = TYPES[name];
  if (!type) return reply.code(404).send({ detail: 'Not Found', code: 'not_found' });
  const asset = await load(name);
  reply.header('cache-control', 'no-cache').header('etag', asset.etag).header('x-content-type-options', 'nosniff');
  if (type.startsWith('text/html')) reply.header('content-security-policy', CSP).header('referrer-policy', 'no-referrer');
  if (request.headers['if-none-match'] === asset.etag) return reply.code(304).send();
  return reply.type(type).send(asset.body);
}
