import type { ValidateFunction } from 'ajv';
import type { Logger } from 'pino';
import type { CommandContext, Commands } from '../commands/types.js';
import { NodeError, toNodeError, type ErrorCode } from '../errors.js';
import { describeSchemaError, type SchemaRegistry } from '../schemas.js';
import { ReplyCache } from './dedupe.js';

export type CommandParams = Record<string, unknown>;
/** The action's result fields, merged into the reply beside id, node_id, action and status. */
export type ActionResult = Record<string, unknown>;

export interface ActionDefinition {
  /** Validates the parameters (the command without id and action); defaults apply. */
  validate: ValidateFunction;
  run(params: CommandParams, context: CommandContext): Promise<ActionResult>;
}

export interface Reply {
  id: string | null;
  node_id: string;
  action: string | null;
  status: 'success' | 'error';
  error?: { code: ErrorCode; message: string };
  [field: string]: unknown;
}

/** Long enough for any broker's redelivery; small enough for a Pi Zero's memory. */
const DEDUPE_LIMITS = { windowMs: 10 * 60 * 1000, maxEntries: 1000, maxBytes: 2 * 1024 * 1024 };

/** The built-in actions: thin adapters over the same Commands as the HTTP routes. */
export function builtInActions(commands: Commands, schemas: SchemaRegistry): Map<string, ActionDefinition> {
  const params = (action: string): ValidateFunction => {
    const fn = schemas.ajv.getSchema(`command.schema.json#/definitions/${action}`);
    if (!fn) throw new Error(`command.schema.json has no definitions/${action}`);
    return fn;
  };
  return new Map<string, ActionDefinition>([
    ['capture', { validate: params('capture'), run: async (p, context) => ({ ...(await commands.capture(p, context)) }) }],
    ['list', { validate: params('list'), run: async () => ({ ...commands.list() }) }],
    ['delete', { validate: params('delete'), run: async (p, context) => ({ ...(await commands.delete(String(p['filename']), context)) }) }],
    ['logs', { validate: params('logs'), run: async (p) => ({ ...(await commands.logs(Number(p['lines']))) }) }],
    // The status object has a `status` key of its own, so it travels under node_status.
    ['status', { validate: params('status'), run: async () => ({ node_status: commands.status() }) }],
  ]);
}

export interface CommandHandlerOptions {
  nodeId: string;
  maxCommandBytes: number;
  actions: ReadonlyMap<string, ActionDefinition>;
  logger: Logger;
}

/**
 * Turns one command payload into one reply. Never throws: malformed input, unknown actions and
 * failures all become error replies carrying the request's id (null when none could be read).
 */
export function createCommandHandler(options: CommandHandlerOptions) {
  const { nodeId, logger } = options;
  const replies = new ReplyCache<Reply>(DEDUPE_LIMITS, (reply) => Buffer.byteLength(JSON.stringify(reply)));

  const errorReply = (id: string | null, action: string | null, err: unknown): Reply => {
    const error = toNodeError(err);
    return { id, node_id: nodeId, action, status: 'error', error: { code: error.code, message: error.message } };
  };

  async function execute(id: string | null, action: string, command: Record<string, unknown>, context: CommandContext): Promise<Reply> {
    const definition = options.actions.get(action);
    if (!definition)
      throw new NodeError('bad_request', `unknown action '${action}' (expected one of ${[...options.actions.keys()].join(', ')})`);
    // The envelope a controller adds (reply route, freshness) is not an action parameter.
    const { id: _id, action: _action, sent_at: _sentAt, reply_to: _replyTo, expires_at: _expiresAt, ...params } = command;
    if (!definition.validate(params))
      throw new NodeError('bad_request', `invalid ${action} command: ${describeSchemaError(definition.validate.errors)}`);
    const result = await definition.run(params, context);
    return { ...result, id, node_id: nodeId, action, status: 'success' };
  }

  return {
    /** `topic` is only for the log. */
    async handle(payload: Buffer, topic: string, signal?: AbortSignal): Promise<Reply> {
      if (payload.length > options.maxCommandBytes) {
        logger.warn({ topic, bytes: payload.length }, 'command too large');
        return errorReply(
          null,
          null,
          new NodeError('payload_too_large', `command is ${payload.length} bytes; the limit is ${options.maxCommandBytes}`),
        );
      }
      let command: unknown;
      try {
        command = JSON.parse(payload.toString('utf8'));
      } catch {
        logger.warn({ topic }, 'command is not valid JSON');
        return errorReply(null, null, new NodeError('bad_request', 'command is not valid JSON'));
      }
      if (command === null || typeof command !== 'object' || Array.isArray(command)) {
        logger.warn({ topic }, 'command is not a JSON object');
        return errorReply(null, null, new NodeError('bad_request', 'command must be a JSON object'));
      }
      const fields = command as Record<string, unknown>;
      const rawId = fields['id'];
      const id = typeof rawId === 'string' && rawId.length > 0 && rawId.length <= 128 ? rawId : null;
      const action = typeof fields['action'] === 'string' ? fields['action'] : null;
      if (rawId !== undefined && id === null) {
        logger.warn({ topic }, 'command id is not a string of 1 to 128 characters');
        return errorReply(null, action, new NodeError('bad_request', 'id must be a string of 1 to 128 characters'));
      }
      if (action === null) {
        logger.warn({ topic, id }, 'command has no action');
        return errorReply(id, null, new NodeError('bad_request', 'action is required (a string)'));
      }

      const earlier = id === null ? undefined : replies.get(id);
      if (earlier) {
        logger.info({ topic, id, action }, 'repeated command: sending the first reply again');
        return earlier;
      }
      const context: CommandContext = { source: 'mqtt', ...(id ? { requestId: id } : {}), ...(signal ? { signal } : {}) };
      const reply = execute(id, action, fields, context).catch((err: unknown) => {
        const failure = errorReply(id, action, err);
        const level = failure.error && toNodeError(err).httpStatus < 500 ? 'warn' : 'error';
        logger[level]({ topic, id, action, code: failure.error?.code, err: level === 'error' ? err : undefined }, 'command failed');
        return failure;
      });
      if (id !== null) replies.set(id, reply);
      return reply;
    },
  };
}
export type CommandHandler = ReturnType<typeof createCommandHandler>;
