/**
 * The one catalogue of errors the node reports. Every failure that reaches a client is a
 * NodeError with a code from this table; the HTTP adapter maps the code to a status once
 * (`httpStatus`), the MQTT adapter puts the same code in the error reply.
 */
export const ERROR_CATALOGUE = {
  bad_request: 400,
  /** A request that does not fit the route's schema (HTTP only): FastAPI's status, detail an array. */
  validation_error: 422,
  invalid_filename: 400,
  unauthorized: 401,
  not_found: 404,
  payload_too_large: 413,
  rate_limited: 429,
  /** A command too old to run (`sent_at`, `expires_at`, a scheduled capture's `at`): nobody waits for it any more. */
  expired: 410,
  busy: 503,
  camera_unavailable: 503,
  camera_failed: 500,
  camera_timeout: 504,
  storage_full: 507,
  storage_failed: 500,
  delivery_failed: 502,
  shutting_down: 503,
  /** The node stopped (a crash, a power cut) while running the command: it may have had its effect, and is not run again. */
  interrupted: 500,
  internal: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export class NodeError extends Error {
  readonly code: ErrorCode;
  /** Extra machine-readable facts (e.g. the queue length) for logs and replies; never secrets. */
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'NodeError';
    this.code = code;
    this.details = options.details;
  }

  get httpStatus(): number {
    return ERROR_CATALOGUE[this.code];
  }
}

/** Anything thrown that is not a NodeError is an internal error: its message is not trusted to be safe. */
export function toNodeError(err: unknown): NodeError {
  if (err instanceof NodeError) return err;
  return new NodeError('internal', 'internal error', { cause: err });
}

/**
 * Codes that mean the command did not run: it was turned away before doing anything. A retry with
 * the same id must run, so these are answered but never remembered against the id.
 */
export const REFUSALS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'bad_request',
  'invalid_filename',
  'unauthorized',
  'payload_too_large',
  'rate_limited',
  'expired',
  'busy',
  'camera_unavailable',
  'shutting_down',
]);

export const isErrorCode = (value: unknown): value is ErrorCode => typeof value === 'string' && Object.hasOwn(ERROR_CATALOGUE, value);
