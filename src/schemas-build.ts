/**
 * `npm run build` runs this after tsc: it compiles every schema in `schemas/` (each file and each of
 * its `definitions`) into ajv standalone code, one CommonJS module per registry variant, next to
 * this file in dist/. At run time src/schemas.ts uses them instead of compiling (ajv's compile was
 * most of a node's start-up CPU), and only while their digest matches the schema files. The HTTP
 * API's route schemas are compiled the same way, from the routes themselves (src/http/validators.ts).
 *
 *   node dist/src/schemas-build.js
 */
import { writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import standaloneCode from 'ajv/dist/standalone/index.js';
import pino from 'pino';
import type { Commands } from './commands/types.js';
import { configProperties } from './config/config.js';
import { createHttpServer } from './http/server.js';
import { BUILT_HTTP_VALIDATORS, routeKey, type RouteSchema, type ValidatorFactory } from './http/validators.js';
import { BUILT_VARIANTS, createAjv, schemaRefs, schemasDigest } from './schemas.js';

/**
 * The code with every non-ASCII character escaped: one such character (a "≥" in a description)
 * makes V8 keep the whole module's source as two bytes a character, 300 KB more of heap.
 */
const asciiOnly = (code: string): string =>
  code.replace(/[^\x00-\x7f]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);

export async function buildValidators(outDir: URL = new URL('./', import.meta.url)): Promise<string[]> {
  const refs = schemaRefs();
  // Export names are identifiers; the `refs` table maps each schema reference to its export.
  const exports = Object.fromEntries(refs.map((ref, index) => [`v${index}`, ref]));
  const table = Object.fromEntries(refs.map((ref, index) => [ref, `v${index}`]));
  const written: string[] = [];
  for (const [file, options] of Object.entries(BUILT_VARIANTS)) {
    const ajv = createAjv(options, { code: { source: true, optimize: true } });
    const code = asciiOnly(standaloneCode.default(ajv, exports));
    const out = new URL(file, outDir);
    await writeFile(out, `${code}\nexports.digest = ${JSON.stringify(schemasDigest())};\nexports.refs = ${JSON.stringify(table)};\n`);
    written.push(fileURLToPath(out));
  }
  return written;
}

/**
 * Builds the HTTP API as a node would (default limits, no request served) with a compiler that
 * keeps each route validator's standalone code, and writes them keyed by route, schema and options.
 */
export async function buildHttpValidators(outDir: URL = new URL('./', import.meta.url)): Promise<string> {
  const StandaloneValidator = createRequire(import.meta.url)('@fastify/ajv-compiler/standalone') as (options: {
    readMode: false;
    storeFunction: (route: RouteSchema, code: string) => void;
  }) => ValidatorFactory;
  const modules: string[] = [];
  const recording: ValidatorFactory = (externalSchemas, options) => {
    // Read before the standalone compiler adds its `code` option to them.
    const customOptions = structuredClone(options?.customOptions);
    return StandaloneValidator({
      readMode: false,
      storeFunction: (route, code) => {
        // Each standalone module assigns module.exports; a function scope of its own keeps them apart.
        const key = JSON.stringify(routeKey(route, customOptions));
        modules.push(`exports[${key}] = (() => {\nconst module = { exports: {} };\n${code}\nreturn module.exports;\n})();`);
      },
    })(externalSchemas, options);
  };
  const notServing = (): never => {
    throw new Error('the build serves no request');
  };
  const commands: Commands = {
    capture: notServing,
    list: notServing,
    image: notServing,
    delete: notServing,
    logs: notServing,
    status: notServing,
  };
  const app = await createHttpServer({
    commands,
    logger: pino({ level: 'silent' }),
    corsOrigins: ['*'],
    rateLimit: 0,
    maxLogLines: Number(configProperties()['max_log_lines']?.['default']),
    buildValidator: recording,
  });
  await app.ready();
  await app.close();
  const out = new URL(BUILT_HTTP_VALIDATORS, outDir);
  await writeFile(out, asciiOnly(`'use strict';\n${modules.join('\n')}\n`));
  return fileURLToPath(out);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await buildValidators();
  await buildHttpValidators();
}
