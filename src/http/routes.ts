import { open, type FileHandle } from 'node:fs/promises';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { CaptureParams, Commands } from '../commands/types.js';
import { NodeError } from '../errors.js';
import { formatLogLine } from '../logs/format.js';
import { readSchema, type JsonSchema } from '../schemas.js';

const DNG_TYPE = 'image/x-adobe-dng';

/**
 * Streams a stored image from an open handle: once opened, an eviction or delete racing with the
 * download cannot cut it short, and the file is never read into memory.
 */
async function sendImage(reply: FastifyReply, path: string, filename: string): Promise<FastifyReply> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NodeError('not_found', `Image not found: ${filename}`);
    throw new NodeError('storage_failed', `cannot read ${filename}`, { cause: err });
  }
  let size: number;
  try {
    ({ size } = await handle.stat());
  } catch (err) {
    // Nothing will read from the handle: close it here, or every failed stat leaks a descriptor.
    await handle.close().catch(() => undefined);
    throw new NodeError('storage_failed', `cannot read ${filename}`, { cause: err });
  }
  return reply
    .type(DNG_TYPE)
    .header('content-length', size)
    .header('content-disposition', `attachment; filename="${filename}"`)
    .send(handle.createReadStream());
}

/**
 * The seed answered 404 "Image not found" for any file it did not have. A name this node could never
 * produce (traversal, another extension) is refused before any file is touched, and answers the same.
 */
function asMissing(err: unknown): never {
  if (err instanceof NodeError && err.code === 'invalid_filename') throw new NodeError('not_found', 'Image not found', { cause: err });
  throw err;
}

/** Pieces of the reply schema, so the API docs describe the HTTP bodies with the same words as MQTT's. */
function responseDocs() {
  const reply = readSchema('response.schema.json').properties ?? {};
  const pick = (...keys: string[]): Record<string, unknown> => Object.fromEntries(keys.map((key) => [key, reply[key] ?? {}]));
  const { $schema: _schema, $id: _id, ...status } = readSchema('status.schema.json');
  const image = (reply['images'] as { items: JsonSchema }).items;
  const binary = { description: 'The DNG file', content: { [DNG_TYPE]: { schema: { type: 'string', format: 'binary' } } } };
  return {
    status,
    capture: {
      description: 'The capture (or, with return_file, the DNG itself)',
      content: {
        'application/json': {
          schema: {
            type: 'object',
            required: ['status', 'file_info', 'node_id'],
            properties: {
              status: { const: 'success' },
              node_id: { type: 'string' },
              duration_ms: { type: 'integer' },
              evicted: { type: 'array', items: { type: 'string' } },
              ...pick('file_info', 'triggered_at', 'scheduled_at', 'late_ms', 'count', 'interval_ms', 'failed', 'files', 'frames'),
            },
          },
        },
        [DNG_TYPE]: { schema: { type: 'string', format: 'binary' } },
      },
    },
    images: {
      description: 'Stored images, newest first (with envelope=true: {images, count}, the MQTT list reply)',
      anyOf: [
        { type: 'array', items: image },
        { type: 'object', properties: { images: { type: 'array', items: image }, count: { type: 'integer' } } },
      ],
    },
    image: binary,
    deleted: {
      type: 'object',
      properties: { status: { const: 'success' }, message: { type: 'string' }, filename: { type: 'string' } },
    },
    logs: {
      description: 'Recent log entries, oldest first: readable lines, or pino objects with format=json (envelope=true: {logs, lines})',
      anyOf: [
        { type: 'array', items: { type: 'string' } },
        { type: 'array', items: { type: 'object' } },
        { type: 'object', properties: { logs: { type: 'array' }, lines: { type: 'integer' } } },
      ],
    },
  };
}

/**
 * The seed's routes. Each declares its schema beside its handler: fastify validates the input with it
 * and the API docs are generated from it. Response schemas only document (see createHttpServer).
 */
export function registerRoutes(app: FastifyInstance, commands: Commands, limits: { maxLogLines: number }): void {
  const captureSettings = readSchema('capture-settings.schema.json').properties ?? {};
  const docs = responseDocs();
  const filenameParams = { type: 'object', required: ['filename'], properties: { filename: { type: 'string' } } } as const;
  const envelope = {
    type: 'boolean',
    default: false,
    description: 'Answer with the object the MQTT reply carries instead of the bare array',
  } as const;

  app.get(
    '/health',
    { schema: { summary: 'Liveness', response: { 200: { type: 'object', properties: { status: { const: 'ok' } } } } } },
    async () => ({
      status: 'ok',
    }),
  );

  app.get('/status', { schema: { summary: 'Node status and system information', response: { 200: docs.status } } }, async () =>
    commands.status(),
  );

  app.post<{ Querystring: CaptureParams & { return_file: boolean } }>(
    '/capture',
    {
      schema: {
        summary: 'Capture a RAW (DNG) image',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            ...captureSettings,
            return_file: { type: 'boolean', default: false, description: 'Answer with the DNG itself instead of its file_info' },
          },
        },
        response: { 200: docs.capture },
      },
    },
    async (request, reply) => {
      const { return_file: returnFile, ...settings } = request.query;
      if (returnFile && (settings.count ?? 1) > 1)
        throw new NodeError('bad_request', 'return_file cannot be used with a burst (count > 1): fetch the files from GET /images');
      const result = await commands.capture(settings, { source: 'http', requestId: request.id });
      if (!returnFile) return result;
      return sendImage(reply, result.file_info.filepath, result.file_info.filename);
    },
  );

  app.get<{ Querystring: { envelope: boolean } }>(
    '/images',
    {
      schema: {
        summary: 'List stored images',
        querystring: { type: 'object', additionalProperties: false, properties: { envelope } },
        response: { 200: docs.images },
      },
    },
    async (request) => {
      const listed = commands.list();
      return request.query.envelope ? listed : listed.images;
    },
  );

  app.get<{ Params: { filename: string } }>(
    '/images/:filename',
    { schema: { summary: 'Download an image', params: filenameParams, response: { 200: docs.image } } },
    async (request, reply) => {
      let found: ReturnType<Commands['image']>;
      try {
        found = commands.image(request.params.filename);
      } catch (err) {
        asMissing(err);
      }
      return sendImage(reply, found.path, found.info.filename);
    },
  );

  app.delete<{ Params: { filename: string } }>(
    '/images/:filename',
    { schema: { summary: 'Delete an image', params: filenameParams, response: { 200: docs.deleted } } },
    async (request) => commands.delete(request.params.filename, { source: 'http', requestId: request.id }).catch(asMissing),
  );

  app.get<{ Querystring: { lines: number; format: 'text' | 'json'; envelope: boolean } }>(
    '/logs',
    {
      schema: {
        summary: 'Recent log entries',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            lines: { type: 'integer', minimum: 1, maximum: limits.maxLogLines, default: 100 },
            format: {
              enum: ['text', 'json'],
              default: 'text',
              description: 'text: `timestamp - name - level - message` lines; json: the entries as logged',
            },
            envelope,
          },
        },
        response: { 200: docs.logs },
      },
    },
    async (request) => {
      const { lines, format } = request.query;
      const result = await commands.logs(lines);
      const logs = format === 'json' ? result.logs : result.logs.map(formatLogLine);
      return request.query.envelope ? { logs, lines: result.lines } : logs;
    },
  );
}
