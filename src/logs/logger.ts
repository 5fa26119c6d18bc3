import { join } from 'node:path';
import pino from 'pino';
import { createLogRing } from './ring.js';
import { openRotatingFile, type RotatingFile } from './rotate.js';
import { tailLogs } from './tail.js';
import type { NodeLogger, NodeLoggerOptions } from './types.js';

/**
 * Field names whose values never reach a log line, at the top level and up to two levels down. Header
 * names keep their case in objects built for outgoing requests, hence both spellings of authorization.
 */
const SECRET_FIELDS = ['password', 'token', 'authorization', 'Authorization', 'secret', 'mqtt_password', 'http_token'];
export const REDACT_PATHS = SECRET_FIELDS.flatMap((field) => [field, `*.${field}`, `*.*.${field}`]);
export const REDACT_CENSOR = '[redacted]';

/**
 * A pino logger writing JSON lines once, where LOG_TARGET says: to `<dir>/<name>.<n>.log` (rotated by
 * size, `current.log` linking the file in use; src/logs/rotate.ts), to stdout (the journal under
 * systemd), or to both. Without a file, the last lines are kept in memory for tail().
 *
 * The streams live in this thread (pino.multistream over SonicBoom streams) rather than in a pino
 * transport: a transport is a worker thread with its own V8 heap (about 11 MB more resident memory per
 * logger than in-thread streams, measured on x86-64 Node 20), which a 512 MB Pi pays per node. The file stream writes synchronously: a node logs a few
 * lines per operation, a write(2) into the page cache is cheap, no line is lost when the process dies,
 * and tail() sees every line logged before it without a flush handshake.
 */
export async function createNodeLogger(options: NodeLoggerOptions): Promise<NodeLogger> {
  if (!(options.maxSizeMb > 0)) throw new Error(`maxSizeMb must be above 0, got ${options.maxSizeMb}`);
  if (!Number.isInteger(options.maxFiles) || options.maxFiles < 1)
    throw new Error(`maxFiles must be an integer of at least 1, got ${options.maxFiles}`);

  // Parts still winding down (a socket's close handler, a late timer) may log after close(); their lines
  // are dropped rather than thrown at the destroyed streams.
  let open = true;
  const streams: pino.StreamEntry[] = [];
  const file = options.target === 'stdout' ? null : await openLogFile(options);
  if (file) {
    streams.push({
      level: 'trace',
      stream: {
        write(line: string) {
          if (open) file.write(line);
        },
      },
    });
  }
  const ring = file ? null : createLogRing(options.ringLines);
  if (ring) streams.push({ level: 'trace', stream: ring });
  if (options.target !== 'file') {
    const stdout = pino.destination({ dest: 1, sync: true });
    // A closed stdout (EPIPE when the reader went away) must not take the node down.
    stdout.on('error', () => undefined);
    streams.push({ level: 'trace', stream: stdout });
  }

  const logger = pino(
    {
      level: options.level,
      serializers: { err: pino.stdSerializers.err, error: pino.stdSerializers.err },
      redact: { paths: REDACT_PATHS, censor: REDACT_CENSOR },
    },
    pino.multistream(streams),
  );

  let closing: Promise<void> | null = null;
  return {
    logger,
    tail: async (lines) => (ring ? ring.tail(lines) : tailLogs(options.dir, options.name, lines)),
    close() {
      open = false;
      closing ??= file ? file.close() : Promise.resolve();
      return closing;
    },
  };
}

/** The rotating file; an error it meets goes to stderr, once per distinct message. */
function openLogFile(options: NodeLoggerOptions): Promise<RotatingFile> {
  let lastError = '';
  return openRotatingFile({
    dir: options.dir,
    name: options.name,
    maxBytes: options.maxSizeMb * 1024 * 1024,
    keep: options.maxFiles,
    onError(err) {
      // The logger cannot log its own failure (disk full, a failed rotation), and an unhandled
      // 'error' would kill the process.
      if (err.message === lastError) return;
      lastError = err.message;
      process.stderr.write(`log file ${join(options.dir, options.name)}: ${err.message}\n`);
    },
  });
}
