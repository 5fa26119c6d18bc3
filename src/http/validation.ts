import type { FastifyRequest } from 'fastify';
import { NodeError } from '../errors.js';

/**
 * Request validation as FastAPI (pydantic v2) does it, so scripts written for the Python node keep
 * working: the same spellings of booleans and integers in a query string, and the same 422 answer
 * with `detail` an array of `{type, loc, msg, input}`.
 */

/** One entry of FastAPI's validation `detail`. */
export interface ValidationIssue {
  type: string;
  loc: Array<string | number>;
  msg: string;
  input?: unknown;
}

// pydantic's lax bool parsing of strings, compared in lower case.
const TRUE = new Set(['1', 'on', 't', 'true', 'y', 'yes']);
const FALSE = new Set(['0', 'off', 'f', 'false', 'n', 'no']);
// pydantic's lax int parsing: surrounding spaces, a sign, digits, and a zero fraction ("3.0") allowed.
const INTEGER = /^\s*([+-]?\d+)(?:\.0*)?\s*$/;

type PropertySchema = { type?: unknown };

/**
 * preValidation hook: turns query values of `boolean` and `integer` properties into values (or answers
 * 422 for those pydantic would refuse), and keeps the last of a repeated scalar parameter, as
 * Starlette does. Ranges, enums and unknown names are then checked by the route's schema.
 */
export async function parseQueryLikeFastApi(request: FastifyRequest): Promise<void> {
  const schema = request.routeOptions.schema?.querystring as { properties?: Record<string, PropertySchema> } | undefined;
  const properties = schema?.properties;
  const query = request.query as Record<string, unknown> | undefined;
  if (!properties || !query || typeof query !== 'object') return;
  const issues: ValidationIssue[] = [];
  for (const [name, raw] of Object.entries(query)) {
    if (!Object.hasOwn(properties, name)) continue;
    const value = Array.isArray(raw) ? raw.at(-1) : raw;
    const type = properties[name]?.type;
    if (typeof value !== 'string' || (type !== 'boolean' && type !== 'integer')) {
      query[name] = value;
      continue;
    }
    if (type === 'boolean') {
      const word = value.trim().toLowerCase();
      if (TRUE.has(word)) query[name] = true;
      else if (FALSE.has(word)) query[name] = false;
      else
        issues.push({
          type: 'bool_parsing',
          loc: ['query', name],
          msg: 'Input should be a valid boolean, unable to interpret input',
          input: value,
        });
    } else {
      const digits = INTEGER.exec(value)?.[1];
      const number = digits === undefined ? Number.NaN : Number(digits);
      if (Number.isSafeInteger(number)) query[name] = number;
      else
        issues.push({
          type: 'int_parsing',
          loc: ['query', name],
          msg: 'Input should be a valid integer, unable to parse string as an integer',
          input: value,
        });
    }
  }
  if (issues.length > 0) throw validationError(issues);
}

export function validationError(issues: ValidationIssue[]): NodeError {
  return new NodeError('validation_error', issues.map((i) => `${i.loc.join('.')}: ${i.msg}`).join('; '), { details: { issues } });
}

/** The part of the request FastAPI names in `loc`, from fastify's validation context. */
const LOCATION: Record<string, string> = { querystring: 'query', params: 'path', headers: 'header', body: 'body' };

interface AjvIssue {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message?: string;
}

/** Fastify's (ajv's) validation errors in FastAPI's words. */
export function fromSchemaErrors(errors: readonly AjvIssue[], context: string | undefined, input: unknown): ValidationIssue[] {
  const where = LOCATION[context ?? ''] ?? context ?? 'request';
  // A union's summary ("must match a schema in anyOf") adds nothing to its members' errors, which
  // pydantic lists one by one.
  const summary = (error: AjvIssue) => error.keyword === 'anyOf' || error.keyword === 'oneOf';
  const shown = errors.some((error) => !summary(error)) ? errors.filter((error) => !summary(error)) : errors;
  return shown.map((error) => {
    const path = error.instancePath.split('/').slice(1);
    const extra = error.params['additionalProperty'] ?? error.params['missingProperty'];
    if (typeof extra === 'string') path.push(extra);
    const loc = [where, ...path];
    const value = path.reduce<unknown>(
      (at, key) => (at && typeof at === 'object' ? (at as Record<string, unknown>)[key] : undefined),
      input,
    );
    const { type, msg } = describe(error);
    return { type, loc, msg, ...(value === undefined ? {} : { input: value }) };
  });
}

function describe(error: AjvIssue): { type: string; msg: string } {
  const limit = error.params['limit'];
  switch (error.keyword) {
    case 'additionalProperties':
      return { type: 'extra_forbidden', msg: 'Extra inputs are not permitted' };
    case 'required':
      return { type: 'missing', msg: 'Field required' };
    case 'minimum':
      return { type: 'greater_than_equal', msg: `Input should be greater than or equal to ${limit}` };
    case 'maximum':
      return { type: 'less_than_equal', msg: `Input should be less than or equal to ${limit}` };
    case 'exclusiveMinimum':
      return { type: 'greater_than', msg: `Input should be greater than ${limit}` };
    case 'exclusiveMaximum':
      return { type: 'less_than', msg: `Input should be less than ${limit}` };
    case 'enum': {
      const allowed = (error.params['allowedValues'] as unknown[] | undefined) ?? [];
      const words = allowed.map((v) => `'${String(v)}'`);
      const list = words.length > 1 ? `${words.slice(0, -1).join(', ')} or ${words.at(-1)}` : (words[0] ?? '');
      return { type: 'enum', msg: `Input should be ${list}` };
    }
    case 'minLength':
      return { type: 'string_too_short', msg: `String should have at least ${limit} characters` };
    case 'maxLength':
      return { type: 'string_too_long', msg: `String should have at most ${limit} characters` };
    case 'type': {
      const type = String(error.params['type']);
      if (type === 'integer') return { type: 'int_parsing', msg: 'Input should be a valid integer, unable to parse string as an integer' };
      if (type === 'number') return { type: 'float_parsing', msg: 'Input should be a valid number, unable to parse string as a number' };
      if (type === 'boolean') return { type: 'bool_parsing', msg: 'Input should be a valid boolean, unable to interpret input' };
      return { type: `${type}_type`, msg: `Input should be a valid ${type}` };
    }
    default:
      return { type: error.keyword, msg: error.message ?? 'Input is invalid' };
  }
}
