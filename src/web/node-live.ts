import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Commands } from '../commands/types.js';
import type { EventBus } from '../events.js';
import { createSseHub } from './sse.js';

const OWNER = 'web-live';
/** Several events in a row (a capture, its delivery) make one status message. */
const STATUS_DEBOUNCE_MS = 200;

export interface NodeLive {
  add(request: FastifyRequest, reply: FastifyReply): void;
  close(): void;
}

/**
 * The page's live stream, `GET /events`: `status` (the whole status object) when something changes
 * and every interval, `images` when the list changed (`{reason, filename}`), `preview` when a new
 * one is there. Listens on the event bus only while a page is open.
 */
export function createNodeLive(options: {
  events: EventBus;
  commands: Commands;
  statusIntervalMs: number;
  /** The capture whose preview `GET /preview.jpg` serves, if any: told on connect, so the page asks only when there is one. */
  latestPreview: () => string | null;
}): NodeLive {
  const { events, commands } = options;
  let ticker: NodeJS.Timeout | null = null;
  let debounce: NodeJS.Timeout | null = null;

  const sendStatus = (): void => hub.send('status', commands.status());
  const statusSoon = (): void => {
    debounce ??= setTimeout(() => {
      debounce = null;
      sendStatus();
    }, STATUS_DEBOUNCE_MS);
  };
  const listChanged = (reason: string, filename: string): void => {
    hub.send('images', { reason, filename });
    statusSoon();
  };

  const hub = createSseHub({
    onFirst() {
      events.on(OWNER, 'captured', ({ image, preview }) => {
        listChanged('captured', image.filename);
        if (preview) hub.send('preview', { filename: image.filename });
      });
      events.on(OWNER, 'deleted', ({ image }) => listChanged('deleted', image.filename));
      events.on(OWNER, 'evicted', ({ image }) => listChanged('evicted', image.filename));
      events.on(OWNER, 'delivered', ({ filename }) => listChanged('delivered', filename));
      for (const name of ['capture_failed', 'delivery_failed', 'camera_changed', 'status_changed'] as const)
        events.on(OWNER, name, statusSoon);
      ticker = setInterval(sendStatus, Math.max(1000, options.statusIntervalMs));
      ticker.unref();
    },
    onEmpty() {
      events.removeOwner(OWNER);
      if (ticker) clearInterval(ticker);
      if (debounce) clearTimeout(debounce);
      ticker = null;
      debounce = null;
    },
  });

  return {
    add(request, reply) {
      const preview = options.latestPreview();
      hub.add(request, reply, [
        ['status', commands.status()],
        ...(preview ? [['preview', { filename: preview }] as [string, unknown]] : []),
      ]);
    },
    close: () => hub.close(),
  };
}
