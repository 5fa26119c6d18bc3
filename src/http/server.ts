import type { Duplex } from 'node:stream';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyServerOptions,
} from 'fastify';
import cors from '@fastify/cors';
import type { Logger } from 'pino';
import type { Commands } from '../commands/types.js';
import { NodeError } from '../errors.js';
import { bearerAuth } from './auth.js';
import { registerDocs } from './docs.js';
import { createRateLimiter } from './rate-limit.js';
import { nodeHttp } from './node-http.js';
import { registerRoutes } from './routes.js';
import { fromSchemaErrors, parseQueryLikeFastApi } from './validation.js';
import { lazySerializers, prebuiltValidators, type ValidatorFactory } from './validators.js';

type CompilersFactory = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>;
type BuildValidator = NonNullable<CompilersFactory['buildValidator']>;
type BuildSerializer = NonNullable<CompilersFactory['buildSerializer']>;

export interface HttpServerOptions {
  commands: Commands;
  logger: Logger;
  corsOrigins: string[];
  httpToken?: string;
  /** Requests per minute per client address; 0 = unlimited. */
  rateLimit: number;
  maxLogLines: number;
  /** Extra routes from optional parts (e.g. /metrics), registered on the same instance. */
  plugins?: Array<(app: FastifyInstance) => void>;
  /** fastify's route validator factory; default: the build-time validators (src/http/validators.ts). */
  buildValidator?: ValidatorFactory;
  /** Paths served without the token besides /health (the web page's files: its API calls carry it). */
  openPaths?: readonly string[];
}

/**
 * Requests Node's HTTP parser rejects (a malformed request line, headers too large) never reach
 * fastify: they are answered here, on the socket, in the API's error shape.
 */
function clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, detail] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'request headers too large']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'request timed out']
        : [400, 'malformed HTTP request'];
  const body = JSON.stringify({ detail, code: 'bad_request' });
  // A response to HEAD has no body, even an error (the client's parser would choke on one).
  const head = (err as { rawPacket?: Buffer }).rawPacket?.subarray(0, 5).toString('latin1') === 'HEAD ';
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${nodeHttp.STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${head ? '' : body}`,
    );
  }
  socket.destroy(err);
}

/**
 * Builds the HTTP API without listening, so tests can `listen({ port: 0 })` and the node decides
 * where. Errors leave in FastAPI's shape, `{"detail": "..."}` (a list of issues for a 422), with the
 * code from the catalogue.
 */
export async function createHttpServer(options: HttpServerOptions): Promise<FastifyInstance> {
  const logger = options.logger.child({ part: 'http' });
  const app = Fastify({
    // Typed as fastify's base logger so routes and plugins see the default instance type.
    loggerInstance: logger as FastifyBaseLogger,
    // One line per request is written by the onResponse hook below, with the fields we want.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 64 * 1024,
    // Unknown query parameters are an error, not silently dropped: `?shuter=100` must not "work".
    ajv: { customOptions: { removeAdditional: false, coerceTypes: true, useDefaults: true, allErrors: false } },
    // fastify calls the compiler with the route ({ schema, method, url, httpPart }); its typings
    // describe ajv-compiler's pool instead, hence the cast.
    schemaController: {
      compilersFactory: {
        buildValidator: (options.buildValidator ?? prebuiltValidators()) as unknown as BuildValidator,
        buildSerializer: lazySerializers() as unknown as BuildSerializer,
      },
    },
    forceCloseConnections: 'idle',
    // Requests fastify refuses before routing get the same `{"detail": ...}` shape as every other error.
    frameworkErrors: (error, request, reply) => {
      request.log.warn({ code: error.code }, 'invalid request');
      // No image has a name that long: like any other missing image, it is not found (as in the seed).
      if (error.code === 'FST_ERR_MAX_PARAM_LENGTH' && request.url.startsWith('/images/'))
        return (reply as FastifyReply).code(404).send({ detail: 'Image not found', code: 'not_found' });
      const detail =
        error.code === 'FST_ERR_MAX_PARAM_LENGTH'
          ? 'path segment too long'
          : error.code === 'FST_ERR_BAD_URL'
            ? 'malformed URL (bad percent-encoding)'
            : 'bad request';
      const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 400;
      return (reply as FastifyReply).code(status).send({ detail, code: 'bad_request' });
    },
    clientErrorHandler: clientError,
  });

  app.setErrorHandler((error: FastifyError | NodeError, request, reply) => {
    if (error instanceof NodeError) {
      const level = error.httpStatus >= 500 ? 'error' : 'warn';
      request.log[level]({ code: error.code, url: request.url }, error.message);
      // A validation error's detail is FastAPI's list of issues; every other error's is its message.
      const detail = error.code === 'validation_error' ? (error.details?.['issues'] ?? error.message) : error.message;
      return reply.code(error.httpStatus).send({ detail, code: error.code });
    }
    if (error.validation) {
      const context = error.validationContext;
      const input = context === 'params' ? request.params : context === 'body' ? request.body : request.query;
      const detail = fromSchemaErrors(error.validation, context, input);
      request.log.warn({ url: request.url, detail }, 'invalid request');
      return reply.code(422).send({ detail, code: 'validation_error' });
    }
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    if (status >= 500) {
      request.log.error({ err: error, url: request.url }, 'request failed');
      return reply.code(500).send({ detail: 'Internal server error', code: 'internal' });
    }
    return reply.code(status).send({ detail: error.message, code: status === 413 ? 'payload_too_large' : 'bad_request' });
  });
  app.setNotFoundHandler((_request, reply) => reply.code(404).send({ detail: 'Not Found', code: 'not_found' }));

  app.addHook('onResponse', async (request, reply) => {
    const quiet = request.method === 'GET' && (request.url === '/health' || request.url === '/status' || request.url === '/metrics');
    request.log[quiet ? 'debug' : 'info'](
      { method: request.method, url: request.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) },
      'http request',
    );
  });

  const origins = options.corsOrigins;
  // Not strict: an OPTIONS request without the CORS headers is answered, not refused with a text body.
  await app.register(cors, { origin: origins.includes('*') ? '*' : origins, methods: ['GET', 'POST', 'DELETE'], strictPreflight: false });
  if (options.rateLimit > 0) app.addHook('onRequest', createRateLimiter({ perMinute: options.rateLimit }));
  // The API docs are open, as FastAPI's are: they describe the routes, and the UI asks for the token.
  if (options.httpToken) {
    app.addHook('onRequest', bearerAuth(options.httpToken, ['/health', '/openapi.json', '/docs', '/docs/*', ...(options.openPaths ?? [])]));
  }

  app.addHook('preValidation', parseQueryLikeFastApi);
  // Response schemas document the API (/openapi.json); bodies are serialised whole, as before, so a
  // field a schema does not list is never dropped silently.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  registerDocs(app, { title: 'camera-node', version: () => options.commands.status().version, bearer: Boolean(options.httpToken) });
  registerRoutes(app, options.commands, { maxLogLines: options.maxLogLines });
  for (const plugin of options.plugins ?? []) plugin(app);
  return app;
}
