import type { ValidateFunction } from 'ajv';
import type { Logger } from 'pino';
import type { CommandContext, Commands } from '../commands/types.js';
import { NodeError, REFUSALS, toNodeError, type ErrorCode } from '../errors.js';
import { describeSchemaError, type SchemaRegistry } from '../schemas.js';
import { isRequester } from '../client/request.js';
import { checkFreshness, type FreshnessOptions } from './freshness.js';
import { CommandJournal } from './journal.js';
import type { CommandLimits } from './limits.js';

export type CommandParams = Record<string, unknown>;
/** The action's result fields, merged into the reply beside id, node_id, action and status. */
export type ActionResult = Record<string, unknown>;

export interface ActionDefinition {
  /** Validates the parameters (the command without id and action); defaults apply. */
  validate: ValidateFunction;
  run(params: CommandParams, context: CommandContext): Promise<ActionResult>;
  /**
   * Only reads (list, logs, status): running it again is harmless, so a repeat after a restart runs
   * again and gets fresh data instead of a reply kept on disk. Everything else is journaled.
   */
  readOnly?: boolean;
}

export interface Reply {
  id: string | null;
  node_id: string;
  action: string | null;
  status: 'success' | 'error';
  error?: { code: ErrorCode; message: string };
  [field: string]: unknown;
}

/** Long enough for any broker's redelivery and a controller's retries; small enough for a Pi Zero's memory and SD card. */
export const DEDUPE_LIMITS = { windowMs: 10 * 60 * 1000, maxEntries: 1000, maxBytes: 1024 * 1024 };

/** The envelope of every command; the rest are the action's parameters. */
const ENVELOPE = ['id', 'action', 'sent_at', 'expires_at', 'reply_to'] as const;

/** The built-in actions: thin adapters over the same Commands as the HTTP routes. */
export function builtInActions(commands: Commands, schemas: SchemaRegistry): Map<string, ActionDefinition> {
  const params = (action: string): ValidateFunction => {
    const fn = schemas.ajv.getSchema(`command.schema.json#/definitions/${action}`);
    if (!fn) throw new Error(`command.schema.json has no definitions/${action}`);
    return fn;
  };
  return new Map<string, ActionDefinition>([
    ['capture', { validate: params('capture'), run: async (p, context) => ({ ...(await commands.capture(p, context)) }) }],
    ['list', { validate: params('list'), run: async () => ({ ...commands.list() }), readOnly: true }],
    ['delete', { validate: params('delete'), run: async (p, context) => ({ ...(await commands.delete(String(p['filename']), context)) }) }],
    ['logs', { validate: params('logs'), run: async (p) => ({ ...(await commands.logs(Number(p['lines']))) }), readOnly: true }],
    // The status object has a `status` key of its own, so it travels under node_status.
    ['status', { validate: params('status'), run: async () => ({ node_status: commands.status() }), readOnly: true }],
  ]);
}

export interface CommandHandlerOptions {
  nodeId: string;
  maxCommandBytes: number;
  actions: ReadonlyMap<string, ActionDefinition>;
  logger: Logger;
  /** Remembers what ran (default: in memory only, with DEDUPE_LIMITS). */
  journal?: CommandJournal<Reply>;
  /** Refuses stale commands (default: no freshness check). */
  freshness?: FreshnessOptions;
  /** Caps commands in flight and per sender (default: none). */
  limits?: CommandLimits;
}

/** Where a command came from, beyond its payload. */
export interface CommandMeta {
  /** The MQTT 5 Response Topic, if any: with reply_to, it names the sender for the rate limit. */
  responseTopic?: string;
  signal?: AbortSignal;
}

export interface HandledCommand {
  reply: Reply;
  /** The command's valid `reply_to`: the reply goes to `<prefix>/<node>/res/<reply_to>`. */
  replyTo: string | null;
}

/**
 * Turns one command payload into one reply. Never throws: malformed input, unknown actions and
 * failures all become error replies carrying the request's id (null when none could be read).
 *
 * A command id runs at most once within the dedupe window, restarts included (see journal.ts): a
 * repeat gets the first reply again, or waits for it while the first is still running. Only
 * commands that ran are remembered: a refusal (busy, rate_limited, expired, camera_unavailable...)
 * is answered and forgotten, so a retry with the same id runs.
 */
export function createCommandHandler(options: CommandHandlerOptions) {
  const { nodeId, logger } = options;
  const journal = options.journal ?? CommandJournal.inMemory<Reply>(DEDUPE_LIMITS, logger);

  const errorReply = (id: string | null, action: string | null, err: unknown): Reply => {
    const error = toNodeError(err);
    return { id, node_id: nodeId, action, status: 'error', error: { code: error.code, message: error.message } };
  };

  function definitionOf(action: string): ActionDefinition {
    const definition = options.actions.get(action);
    if (!definition)
      throw new NodeError('bad_request', `unknown action '${action}' (expected one of ${[...options.actions.keys()].join(', ')})`);
    return definition;
  }

  async function execute(
    id: string | null,
    action: string,
    definition: ActionDefinition,
    params: CommandParams,
    context: CommandContext,
  ): Promise<Reply> {
    const result = await definition.run(params, context);
    return { ...result, id, node_id: nodeId, action, status: 'success' };
  }

  function parse(payload: Buffer, topic: string): { fields: Record<string, unknown>; id: string | null; action: string } | Reply {
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
    return { fields, id, action };
  }

  async function handleMessage(payload: Buffer, topic: string, meta: CommandMeta = {}): Promise<HandledCommand> {
    const parsed = parse(payload, topic);
    if ('status' in parsed) return { reply: parsed, replyTo: null };
    const { fields, id, action } = parsed;
    const rawReplyTo = fields['reply_to'];
    const replyTo = isRequester(rawReplyTo) ? rawReplyTo : null;
    if (rawReplyTo !== undefined && replyTo === null) {
      logger.warn({ topic, id }, 'reply_to is not one topic level');
      return { reply: errorReply(id, action, new NodeError('bad_request', 'reply_to must match ^[A-Za-z0-9_.-]{1,64}$')), replyTo: null };
    }

    const earlier = id === null ? undefined : journal.get(id);
    if (earlier) {
      logger.info({ topic, id, action }, 'repeated command: sending the first reply again');
      return { reply: await earlier, replyTo };
    }

    let release = (): void => undefined;
    let definition: ActionDefinition;
    const params: CommandParams = { ...fields };
    for (const key of ENVELOPE) delete params[key];
    try {
      definition = definitionOf(action);
      if (!definition.validate(params))
        throw new NodeError('bad_request', `invalid ${action} command: ${describeSchemaError(definition.validate.errors)}`);
      if (options.freshness) checkFreshness(fields, options.freshness);
      if (options.limits) release = options.limits.admit(replyTo ?? meta.responseTopic ?? 'res');
    } catch (err) {
      const refusal = errorReply(id, action, err);
      logger.warn({ topic, id, action, code: refusal.error?.code, message: refusal.error?.message }, 'command refused');
      return { reply: refusal, replyTo };
    }

    const context: CommandContext = { source: 'mqtt', ...(id ? { requestId: id } : {}), ...(meta.signal ? { signal: meta.signal } : {}) };
    let started!: () => void;
    const mayStart = new Promise<void>((resolve) => {
      started = resolve;
    });
    const reply = mayStart
      .then(() => execute(id, action, definition, params, context))
      .catch((err: unknown): Reply => {
        const failure = errorReply(id, action, err);
        const level = failure.error && toNodeError(err).httpStatus < 500 ? 'warn' : 'error';
        logger[level]({ topic, id, action, code: failure.error?.code, err: level === 'error' ? err : undefined }, 'command failed');
        return failure;
      });
    try {
      // Recorded as started (on disk, for commands with effects) before it runs: see journal.ts.
      if (id !== null) await journal.begin(id, reply, !definition.readOnly);
      started();
      const settled = await reply;
      if (id !== null) {
        const code = settled.error?.code;
        if (code && REFUSALS.has(code)) journal.forget(id);
        else journal.finish(id, settled);
      }
      return { reply: settled, replyTo };
    } finally {
      release();
    }
  }

  return {
    handleMessage,
    /** The reply alone; `topic` is only for the log. */
    async handle(payload: Buffer, topic: string, signal?: AbortSignal): Promise<Reply> {
      return (await handleMessage(payload, topic, signal ? { signal } : {})).reply;
    },
  };
}
export type CommandHandler = ReturnType<typeof createCommandHandler>;
