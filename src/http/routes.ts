import { open, type FileHandle } from 'node:fs/promises';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { CaptureParams, Commands } from '../commands/types.js';
import { NodeError } from '../errors.js';
import { readSchema } from '../schemas.js';
import { clientGone } from './abort.js';

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
  const { size } = await handle.stat();
  return reply
    .type(DNG_TYPE)
    .header('content-length', size)
    .header('content-disposition', `attachment; filename="${filename}"`)
    .send(handle.createReadStream());
}

export function registerRoutes(app: FastifyInstance, commands: Commands, limits: { maxLogLines: number }): void {
  const captureSettings = readSchema('capture-settings.schema.json').properties ?? {};
  const filenameParams = {
    type: 'object',
    required: ['filename'],
    properties: { filename: { type: 'string', minLength: 1, maxLength: 255 } },
  } as const;

  app.get('/health', async () => ({ status: 'ok' }));

  app.get('/status', async () => commands.status());

  app.post<{ Querystring: CaptureParams & { return_file: boolean } }>(
    '/capture',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { ...captureSettings, return_file: { type: 'boolean', default: false } },
        },
      },
    },
    async (request, reply) => {
      const { return_file: returnFile, ...settings } = request.query;
      if (returnFile && (settings.count ?? 1) > 1)
        throw new NodeError('bad_request', 'return_file cannot be used with a burst (count > 1): fetch the files from GET /images');
      const result = await commands.capture(settings, { source: 'http', requestId: request.id, signal: clientGone(reply) });
      if (!returnFile) return result;
      return sendImage(reply, result.file_info.filepath, result.file_info.filename);
    },
  );

  app.get('/images', async () => commands.list());

  app.get<{ Params: { filename: string } }>('/images/:filename', { schema: { params: filenameParams } }, async (request, reply) => {
    const { info, path } = commands.image(request.params.filename);
    return sendImage(reply, path, info.filename);
  });

  app.delete<{ Params: { filename: string } }>('/images/:filename', { schema: { params: filenameParams } }, async (request) =>
    commands.delete(request.params.filename, { source: 'http', requestId: request.id }),
  );

  app.get<{ Querystring: { lines: number } }>(
    '/logs',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { lines: { type: 'integer', minimum: 1, maximum: limits.maxLogLines, default: 100 } },
        },
      },
    },
    async (request) => commands.logs(request.query.lines),
  );
}
