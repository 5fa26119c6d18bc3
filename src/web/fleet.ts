import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import type { MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { parseAt } from '../commands/schedule.js';
import { NodeError } from '../errors.js';
import { bearerAuth } from '../http/auth.js';
import { isTopicLevel } from '../mqtt/topics.js';
import { sendAsset } from './assets.js';
import { createFleetState } from './fleet-state.js';
import type { ShotReport } from '../client/shot.js';
import { listShots, openShotFile, shotView } from './shots.js';
import { createSseHub } from './sse.js';

/** What the page asks for: a target and the capture's timing. */
export interface ShotRequest {
  /** `all`, `group:<name>`, or a list of node ids. */
  target: 'all' | `group:${string}` | string[];
  /** Epoch ms (the page's `+2s` is resolved on arrival, so every node gets the same instant). */
  at?: number;
  count?: number;
  interval_ms?: number;
  timeoutMs: number;
}

/** Runs one fleet shot to its report (which it also writes as `DIR/<shot id>/shot.json`). */
export type RunShot = (request: ShotRequest) => Promise<ShotReport>;

export interface FleetDashboardOptions {
  client: MqttClient;
  prefix: string;
  /** Where shots are collected: `DIR/<shot id>/<node>/<file>` and `DIR/<shot id>/shot.json`. */
  outDir: string;
  host: string;
  port: number;
  /** Asked of every API call when set (the page asks for it once, as the node page does). */
  token?: string;
  /** Fleet capture; null when this build has none (the page then says so). */
  runShot: RunShot | null;
  logger: Logger;
}

export interface FleetDashboard {
  /** Listens; resolves with the page's URL. */
  start(): Promise<string>;
  stop(): Promise<void>;
  /** A report changed after its shot ended (an image came late): open pages show the new one. */
  shotUpdated(report: ShotReport): void;
  readonly app: FastifyInstance;
}

const OPEN_PATHS = ['/', '/ui/fleet.js', '/ui/common.js', '/ui/style.css'];
const FLEET_ASSETS = new Set(['fleet.js', 'common.js', 'style.css']);
/** Card updates within this window go out as one message per node. */
const FLUSH_MS = 250;

const shotBody = {
  type: 'object',
  additionalProperties: false,
  required: ['target'],
  properties: {
    target: {
      anyOf: [
        { const: 'all' },
        { type: 'string', pattern: '^group:[^/+#]{1,64}$' },
        { type: 'array', minItems: 1, maxItems: 500, uniqueItems: true, items: { type: 'string', minLength: 1, maxLength: 128 } },
      ],
    },
    at: { type: 'string', minLength: 1, maxLength: 64 },
    count: { type: 'integer', minimum: 1, maximum: 100 },
    interval_ms: { type: 'integer', minimum: 0, maximum: 3_600_000 },
    timeout_s: { type: 'number', exclusiveMinimum: 0, maximum: 3600 },
  },
} as const;

interface ShotBody {
  target: ShotRequest['target'];
  at?: string;
  count?: number;
  interval_ms?: number;
  timeout_s?: number;
}

/**
 * The fleet page: one HTTP server on the operator's machine, fed by the controller's MQTT
 * connection. The nodes' retained availability, status, telemetry and preview build the grid; changes
 * go to every open page over server-sent events, as do the shots run from it.
 */
export function createFleetDashboard(options: FleetDashboardOptions): FleetDashboard {
  const { client, prefix, logger } = options;
  const state = createFleetState(prefix);
  const dirty = new Set<string>();
  let flushTimer: NodeJS.Timeout | null = null;
  const running = new Map<string, { ref: string; started_at: string; request: ShotBody }>();
  const shotsInFlight = new Set<Promise<unknown>>();
  const hub = createSseHub();

  const flush = (): void => {
    flushTimer = null;
    for (const id of dirty) {
      const node = state.node(id);
      if (node) hub.send('node', node);
    }
    dirty.clear();
  };
  const onMessage = (topic: string, payload: Buffer): void => {
    const node = state.apply(topic, payload);
    if (!node) return;
    dirty.add(node.node_id);
    flushTimer ??= setTimeout(flush, FLUSH_MS);
  };
  const filters = ['availability', 'status', 'telemetry', 'preview'].map((kind) => `${prefix}/+/${kind}`);
  // While the broker is away the cards show the last known state: the page says that it is stale.
  const onConnect = (): void => hub.send('broker', { connected: true });
  const onClose = (): void => hub.send('broker', { connected: false });

  // No coercion, nothing dropped: a target `"cam1"` must not quietly become `["cam1"]`, a misspelt field is an error.
  const app = Fastify({
    logger: false,
    bodyLimit: 16 * 1024,
    forceCloseConnections: 'idle',
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
  });
  app.setErrorHandler((error: FastifyError | NodeError, _request, reply) => {
    if (error instanceof NodeError) return reply.code(error.httpStatus).send({ detail: error.message, code: error.code });
    if (error.validation) return reply.code(422).send({ detail: error.message, code: 'bad_request' });
    const status = error.statusCode && error.statusCode < 500 ? error.statusCode : 500;
    if (status === 500) logger.error({ err: error }, 'dashboard request failed');
    return reply
      .code(status)
      .send({ detail: status === 500 ? 'Internal server error' : error.message, code: status === 500 ? 'internal' : 'bad_request' });
  });
  app.setNotFoundHandler((_request, reply) => reply.code(404).send({ detail: 'Not Found', code: 'not_found' }));
  if (options.token) app.addHook('onRequest', bearerAuth(options.token, OPEN_PATHS));

  app.get('/', (request, reply) => sendAsset(request, reply, 'fleet.html'));
  app.get<{ Params: { name: string } }>('/ui/:name', async (request, reply) => {
    if (!FLEET_ASSETS.has(request.params.name)) throw new NodeError('not_found', 'Not Found');
    return sendAsset(request, reply, request.params.name);
  });
  app.get('/api/nodes', async () => state.nodes());
  app.get<{ Params: { id: string } }>('/api/nodes/:id/preview.jpg', async (request, reply) => {
    const preview = state.preview(request.params.id);
    if (!preview) throw new NodeError('not_found', `no preview from ${request.params.id}`);
    return reply.type('image/jpeg').header('cache-control', 'no-store').send(preview);
  });
  app.get('/api/shots', async () => ({ running: [...running.values()], reports: await listShots(options.outDir) }));
  app.get<{ Params: { shot: string; node: string; file: string } }>('/files/:shot/:node/:file', async (request, reply) => {
    const { handle, size, filename } = await openShotFile(options.outDir, [request.params.shot, request.params.node, request.params.file]);
    return reply
      .type('application/octet-stream')
      .header('content-length', size)
      .header('content-disposition', `attachment; filename="${filename}"`)
      .send(handle.createReadStream());
  });
  app.post<{ Body: ShotBody }>('/api/shots', { schema: { body: shotBody } }, async (request, reply) => {
    const runShot = options.runShot;
    if (!runShot) throw new NodeError('bad_request', 'this dashboard cannot run shots: fleet capture is not available in this build');
    const body = request.body;
    if (Array.isArray(body.target) && !body.target.every(isTopicLevel))
      throw new NodeError('bad_request', 'a node id cannot contain /, + or #');
    let at: number | undefined;
    if (body.at !== undefined) {
      try {
        at = parseAt(body.at, Date.now());
      } catch (err) {
        throw new NodeError('bad_request', `at: ${(err as Error).message}`);
      }
    }
    const ref = randomUUID();
    const entry = { ref, started_at: new Date().toISOString(), request: body };
    running.set(ref, entry);
    hub.send('shot', { ref, state: 'running', started_at: entry.started_at, request: body });
    const run = runShot({
      target: body.target,
      ...(at === undefined ? {} : { at }),
      ...(body.count === undefined ? {} : { count: body.count }),
      ...(body.interval_ms === undefined ? {} : { interval_ms: body.interval_ms }),
      timeoutMs: (body.timeout_s ?? 60) * 1000,
    }).then(
      (report) => hub.send('shot', { ref, state: 'done', report: shotView(report) }),
      (err: unknown) => {
        logger.warn({ err }, 'fleet shot failed');
        hub.send('shot', { ref, state: 'failed', error: err instanceof Error ? err.message : String(err) });
      },
    );
    const tracked = run.finally(() => {
      running.delete(ref);
      shotsInFlight.delete(tracked);
    });
    shotsInFlight.add(tracked);
    return reply.code(202).send({ ref });
  });
  app.get('/events', { exposeHeadRoute: false }, async (request, reply) => {
    hub.add(request, reply, [
      ['nodes', state.nodes()],
      ['capabilities', { shots: options.runShot !== null }],
      ['broker', { connected: client.connected }],
    ]);
  });
  app.addHook('preClose', async () => hub.close());

  return {
    app,
    async start() {
      client.on('message', onMessage);
      client.on('connect', onConnect);
      client.on('close', onClose);
      await client.subscribeAsync(filters, { qos: 1 });
      await app.listen({ host: options.host, port: options.port });
      const { port } = app.server.address() as AddressInfo;
      const host = options.host.includes(':') ? `[${options.host}]` : options.host;
      return `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${port}`;
    },
    shotUpdated(report) {
      hub.send('shot', { state: 'updated', report: shotView(report) });
    },
    async stop() {
      client.off('message', onMessage);
      client.off('connect', onConnect);
      client.off('close', onClose);
      if (flushTimer) clearTimeout(flushTimer);
      flushTimer = null;
      await app.close();
      // A shot under way finishes (its report is written) before the connection it runs on goes.
      await Promise.allSettled([...shotsInFlight]);
      if (client.connected) await client.unsubscribeAsync(filters).catch(() => undefined);
    },
  };
}
