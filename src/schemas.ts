import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Ajv, ErrorObject, Options, ValidateFunction } from 'ajv';

/**
 * The JSON Schemas in `schemas/` are the protocol's single source of truth. They ship with the
 * package; from `dist/src/` they are two levels up. Every `*.schema.json` there is a schema: adding
 * a file is all it takes.
 */
const SCHEMA_DIR = new URL('../../schemas/', import.meta.url);

export const SCHEMA_FILES: readonly SchemaFile[] = readdirSync(SCHEMA_DIR)
  .filter((file): file is SchemaFile => file.endsWith('.schema.json'))
  .sort();
/** A schema file name, or a reference into one (`command.schema.json#/definitions/send`). */
export type SchemaFile = `${string}.schema.json`;
export type SchemaRef = SchemaFile | `${SchemaFile}#${string}`;

export type JsonSchema = Record<string, unknown> & { properties?: Record<string, Record<string, unknown>> };

export function readSchema(file: SchemaFile): JsonSchema {
  return JSON.parse(readFileSync(new URL(file, SCHEMA_DIR), 'utf8')) as JsonSchema;
}

export interface RegistryOptions {
  useDefaults?: boolean;
  coerceTypes?: boolean;
}

/** The variants `npm run build` compiles, by file name: the ones the node and its clients use. */
export const BUILT_VARIANTS: Readonly<Record<string, RegistryOptions>> = {
  'validators-plain.cjs': {},
  'validators-defaults.cjs': { useDefaults: true },
};

const variantFile = (options: RegistryOptions): string | undefined =>
  Object.entries(BUILT_VARIANTS).find(
    ([, variant]) =>
      (variant.useDefaults ?? false) === (options.useDefaults ?? false) &&
      (variant.coerceTypes ?? false) === (options.coerceTypes ?? false),
  )?.[0];

export function ajvOptions(options: RegistryOptions): Options {
  return {
    allErrors: false,
    strict: true,
    allowUnionTypes: true,
    useDefaults: options.useDefaults ?? false,
    coerceTypes: options.coerceTypes ?? false,
  };
}

/** One digest of every schema file's name and text: what build-time validators were made from. */
export function schemasDigest(): string {
  const hash = createHash('sha256');
  for (const file of SCHEMA_FILES)
    hash
      .update(`${file}\0`)
      .update(readFileSync(new URL(file, SCHEMA_DIR)))
      .update('\0');
  return hash.digest('hex');
}

// ajv is CommonJS: required on demand, so a node whose validators were built never loads it.
const require = createRequire(import.meta.url);

/** Every schema in one Ajv, so `$ref`s between them resolve; our annotation keywords declared for strict mode. */
export function createAjv(options: RegistryOptions, extra: Options = {}): Ajv {
  const { Ajv: AjvClass } = require('ajv') as typeof import('ajv');
  const ajv = new AjvClass({ ...ajvOptions(options), ...extra });
  ajv.addVocabulary(['x-secret', 'x-secret-userinfo']);
  for (const file of SCHEMA_FILES) ajv.addSchema(readSchema(file), file);
  return ajv;
}

/** Every reference the build compiles: each file, and each of its `definitions`. */
export function schemaRefs(): SchemaRef[] {
  return SCHEMA_FILES.flatMap((file) => {
    const definitions = Object.keys((readSchema(file)['definitions'] as Record<string, unknown> | undefined) ?? {});
    return [file, ...definitions.map((name): SchemaRef => `${file}#/definitions/${name}`)];
  });
}

type Built = { digest: string; refs: Record<string, string> } & Record<string, ValidateFunction>;
const built = new Map<string, Built | null>();
let digest: string | null = null;

/**
 * The build-time validators of one variant (ajv standalone code written by src/schemas-build.ts),
 * when they exist and were made from the schema files as they are now; else null, and validators
 * are compiled at run time (after a build by `tsc` alone, or a schema edited since the build).
 */
function loadBuilt(options: RegistryOptions): Built | null {
  const file = variantFile(options);
  if (!file) return null;
  if (!built.has(file)) {
    let module: Built | null = null;
    try {
      module = require(`./${file}`) as Built;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err;
    }
    digest ??= schemasDigest();
    built.set(file, module?.digest === digest ? module : null);
  }
  return built.get(file) ?? null;
}

/**
 * One registry per user (no shared instance): validators by schema file or reference. They come
 * from the build-time code when it is current; a full Ajv (`ajv`, for references the build did not
 * cover or ad-hoc schemas) is created only when something asks for it.
 */
export function createSchemaRegistry(options: RegistryOptions = {}) {
  const prebuilt = loadBuilt(options);
  let ajv: Ajv | null = null;
  const runtime = (): Ajv => {
    ajv ??= createAjv(options);
    return ajv;
  };
  return {
    get ajv(): Ajv {
      return runtime();
    },
    validator<T>(ref: SchemaRef): ValidateFunction<T> {
      const name = prebuilt?.refs[ref];
      const found = name ? prebuilt?.[name] : runtime().getSchema<T>(ref);
      if (!found) throw new Error(`schema ${ref} is not available`);
      return found as ValidateFunction<T>;
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
