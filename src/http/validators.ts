import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';

/**
 * Route validators for fastify without compiling them at start-up: `npm run build` writes the ajv
 * standalone code of every route schema of the API (src/schemas-build.ts); here fastify's
 * `buildValidator` factory serves a route from that code when its schema and options are exactly
 * the ones built, and compiles with fastify's own ajv compiler (loaded only then) otherwise: a route
 * added or changed since the build, a limit taken from the config (MAX_LOG_LINES) that differs from
 * its default.
 */
export interface RouteSchema {
  schema: unknown;
  method: string;
  url: string;
  httpPart: string;
}
type Validate = (data: unknown) => boolean;
type Compile = (route: RouteSchema) => Validate;
export type ValidatorFactory = (externalSchemas: unknown, options?: { customOptions?: unknown }) => Compile;

export const BUILT_HTTP_VALIDATORS = 'http-validators.cjs';

/** What makes two compiled validators the same: the route, its schema and ajv's options. */
export function routeKey(route: RouteSchema, customOptions: unknown): string {
  return createHash('sha256')
    .update(JSON.stringify([route.method, route.url, route.httpPart, route.schema, customOptions ?? null]))
    .digest('hex');
}

const require = createRequire(import.meta.url);

function loadBuilt(): Record<string, Validate> {
  try {
    return require(`../${BUILT_HTTP_VALIDATORS}`) as Record<string, Validate>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND') return {};
    throw err;
  }
}

export function prebuiltValidators(): ValidatorFactory {
  const built = loadBuilt();
  return (externalSchemas, options) => {
    let fallback: Compile | null = null;
    return (route) => {
      const found = built[routeKey(route, options?.customOptions)];
      if (found) return found;
      fallback ??= (require('@fastify/ajv-compiler') as () => ValidatorFactory)()(externalSchemas, options);
      return fallback(route);
    };
  };
}

/**
 * fastify's `buildSerializer` factory, loading its default (fast-json-stringify, which brings a
 * whole ajv) only when a route declares a response schema: fastify requires the default at
 * construction otherwise, whether any route needs it or not.
 */
export function lazySerializers(): ValidatorFactory {
  return (externalSchemas, options) => {
    let compile: Compile | null = null;
    return (route) => {
      compile ??= (require('@fastify/fast-json-stringify-compiler') as { SerializerSelector: () => ValidatorFactory }).SerializerSelector()(
        externalSchemas,
        options,
      );
      return compile(route);
    };
  };
}
