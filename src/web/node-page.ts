import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Commands } from '../commands/types.js';
import type { EventBus } from '../events.js';
import { NodeError } from '../errors.js';
import type { NodeLive } from './node-live.js';

/** What a browser may load without the token: the page itself holds nothing secret, its API calls do. */
export const NODE_PAGE_OPEN_PATHS: readonly string[] = ['/', '/ui/node.js', '/ui/common.js', '/ui/style.css'];

const NODE_ASSETS = new Set(['node.js', 'common.js', 'style.css']);
const OWNER = 'web';

export interface NodePageOptions {
  events: EventBus;
  commands: Commands;
  /** How often an open page gets the status while nothing happens (the telemetry's sampling interval). */
  statusIntervalMs: number;
}

export interface NodePage {
  /** Registers `/`, `/ui/*`, `/preview.jpg` and `/events` on the node's HTTP server. */
  plugin(app: FastifyInstance): void;
  stop(): void;
}

/**
 * The node's web page. Idle, it costs one listener and the latest preview (the EXIF thumbnail, at
 * most 64 KiB, after the first capture): the files and the live stream's module are loaded on the
 * first request for them.
 */
export function createNodePage(options: NodePageOptions): NodePage {
  const { events } = options;
  let preview: { data: Buffer; filename: string } | null = null;
  events.on(OWNER, 'captured', (event) => {
    if (event.preview) preview = { data: event.preview, filename: event.image.filename };
  });
  // A deleted image takes its preview with it; an evicted one's preview is still the latest capture.
  events.on(OWNER, 'deleted', ({ image }) => {
    if (preview?.filename === image.filename) preview = null;
  });

  let live: Promise<NodeLive> | null = null;
  const assets = () => import('./assets.js');
  const page = (name: string) => async (request: FastifyRequest, reply: FastifyReply) => (await assets()).sendAsset(request, reply, name);

  return {
    plugin(app) {
      // The page is not part of the API: left out of /openapi.json.
      app.get('/', { schema: { hide: true } }, page('node.html'));
      app.get<{ Params: { name: string } }>('/ui/:name', { schema: { hide: true } }, async (request, reply) => {
        if (!NODE_ASSETS.has(request.params.name)) throw new NodeError('not_found', 'Not Found');
        return (await assets()).sendAsset(request, reply, request.params.name);
      });
      const jpeg = { description: 'The JPEG thumbnail', content: { 'image/jpeg': { schema: { type: 'string', format: 'binary' } } } };
      const previewSchema = {
        summary: 'The latest capture’s preview',
        response: { 200: jpeg, 304: { description: 'Not modified', type: 'null' } },
      };
      app.get('/preview.jpg', { schema: previewSchema }, async (request, reply) => {
        const latest = preview;
        if (!latest) throw new NodeError('not_found', 'no preview yet: the node has not captured since it started');
        const etag = `"${latest.filename}"`;
        reply.header('cache-control', 'no-cache').header('etag', etag).header('x-capture', latest.filename);
        if (request.headers['if-none-match'] === etag) return reply.code(304).send();
        return reply.type('image/jpeg').send(latest.data);
      });
      const eventsSchema = {
        summary: 'Live updates for the web page (server-sent events)',
        description:
          'text/event-stream: `status` (the status object) on each change and every interval, `images` ({reason, filename}) when the list changed, `preview` ({filename}) when a new preview is there.',
      };
      app.get('/events', { schema: eventsSchema, exposeHeadRoute: false }, async (request, reply) => {
        live ??= import('./node-live.js')
          .then((m) => m.createNodeLive({ ...options, latestPreview: () => preview?.filename ?? null }))
          .catch((err: unknown) => {
            // Not kept: the next request tries again.
            live = null;
            throw err;
          });
        (await live).add(request, reply);
      });
      // Open streams are not idle connections: end them first, or closing the server would wait on them.
      app.addHook('preClose', async () => {
        (await live?.catch(() => null))?.close();
      });
    },
    stop() {
      events.removeOwner(OWNER);
      preview = null;
    },
  };
}
