import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';

/**
 * The JSON Schemas in `schemas/` are the protocol's single source of truth. They ship with the
 * package; from `dist/src/` they are two levels up.
 */
const SCHEMA_DIR = new URL('../../schemas/', import.meta.url);

export const SCHEMA_FILES = [
  'capture-settings.schema.json',
  'config.schema.json',
  'command.schema.json',
  'response.schema.json',
  'status.schema.json',
  'telemetry.schema.json',
  'manifest.schema.json',
  'shot.schema.json',
] as const;
export type SchemaFile = (typeof SCHEMA_FILES)[number];

export type JsonSchema = Record<string, unknown> & { properties?: Record<string, Record<string, unknown>> };

export function readSchema(file: SchemaFile): JsonSchema {
  return JSON.parse(readFileSync(new URL(file, SCHEMA_DIR), 'utf8')) as JsonSchema;
}

/**
 * One Ajv per user (no module-level instance), holding every schema that exists so `$ref`s between
 * them resolve. Annotation keywords of our own (`x-secret`) are declared so strict mode accepts them.
 */
export function createSchemaRegistry(options: { useDefaults?: boolean; coerceTypes?: boolean } = {}) {
  const ajv = new Ajv({
    allErrors: false,
    strict: true,
    allowUnionTypes: true,
    useDefaults: options.useDefaults ?? false,
    coerceTypes: options.coerceTypes ?? false,
  });
  ajv.addVocabulary(['x-secret', 'x-secret-userinfo']);
  for (const file of SCHEMA_FILES) {
    try {
      ajv.addSchema(readSchema(file), file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return {
    ajv,
    validator<T>(file: SchemaFile): ValidateFunction<T> {
      const fn = ajv.getSchema<T>(file);
      if (!fn) throw new Error(`schema ${file} is not available`);
      return fn;
    },
  };
}
export type SchemaRegistry = ReturnType<typeof createSchemaRegistry>;

/** One readable line for the first validation error, e.g. `/port must be <= 65535`. */
export function describeSchemaError(errors: ErrorObject[] | null | undefined): string {
  const first = errors?.[0];
  if (!first) return 'invalid';
  const where = first.instancePath || '(root)';
  if (first.keyword === 'additionalProperties') {
    return `${where} has unknown property '${String(first.params['additionalProperty'])}'`;
  }
  if (first.keyword === 'enum') {
    return `${where} must be one of ${JSON.stringify(first.params['allowedValues'])}`;
  }
  return `${where} ${first.message ?? 'is invalid'}`;
}
