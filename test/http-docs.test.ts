import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { FastifyInstance } from 'fastify';
import { Validator } from '@seriousme/openapi-schema-validator';
import { createHttpServer } from '../src/http/server.js';
import { CHROMIUM, launchBrowser } from './helpers/browser.js';
import { startTestNode, type TestNode } from './helpers/node.js';

const require = createRequire(import.meta.url);
const docsModulesLoaded = (): string[] => Object.keys(require.cache).filter((file) => /@fastify[\\/]swagger/.test(file));

type Spec = { openapi: string; paths: Record<string, Record<string, { parameters?: Array<{ name: string; in: string }> }>> };

/**
 * Every route with its methods, from fastify's own table: a tree, one level per four columns
 * (`/images` then `└── /:filename`), read back into paths written as OpenAPI writes them.
 */
function declaredRoutes(app: FastifyInstance): string[] {
  const routes: string[] = [];
  const parents: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^(.*?)── (\S+) \(([A-Z, ]+)\)$/.exec(line);
    if (!match?.[2] || !match[3]) continue;
    const depth = Math.floor((match[1]?.length ?? 0) / 4);
    parents.length = depth;
    const path = `${parents.join('')}${match[2]}`;
    parents.push(match[2]);
    for (const method of match[3].split(', '))
      if (method !== 'HEAD' && method !== 'OPTIONS') routes.push(`${method} ${path.replace(/:(\w+)/g, '{$1}')}`);
  }
  return routes.filter((route) => !/ \/(docs|openapi\.json)/.test(route)).sort();
}

describe('API docs', () => {
  let t: TestNode;
  let app: FastifyInstance;
  before(async () => {
    t = await startTestNode({ http_token: 'docs-token-1234' });
    // The node's own server with a route of a later plugin, to see that routes added after the seed's are documented too.
    app = await createHttpServer({
      commands: t.node.commands,
      logger: t.node.logger,
      corsOrigins: ['*'],
      rateLimit: 0,
      maxLogLines: 100,
      plugins: [
        (a) => a.get('/extra/:id', { schema: { params: { type: 'object', properties: { id: { type: 'integer' } } } } }, async () => ({})),
      ],
    });
    await app.ready();
  });
  after(async () => {
    await app?.close();
    await t?.stop();
  });

  test('nothing of the docs is loaded until they are asked for', async () => {
    assert.deepEqual(docsModulesLoaded(), [], 'an idle server has not loaded @fastify/swagger');
    const response = await app.inject({ method: 'GET', url: '/openapi.json' });
    assert.equal(response.statusCode, 200);
    assert.ok(docsModulesLoaded().length > 0, 'the first request loaded them');
  });

  test('/openapi.json is a valid OpenAPI document listing every route, with its parameters', async () => {
    const spec = (await app.inject({ method: 'GET', url: '/openapi.json' })).json() as Spec;
    const result = await new Validator().validate(spec as never);
    assert.deepEqual(result, { valid: true });
    const documented = Object.entries(spec.paths)
      .flatMap(([path, methods]) => Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`))
      .sort();
    assert.deepEqual(documented, declaredRoutes(app));
    for (const route of ['GET /status', 'POST /capture', 'GET /images', 'GET /images/{filename}', 'DELETE /images/{filename}', 'GET /logs'])
      assert.ok(documented.includes(route), route);
    const names = (path: string, method: string) => (spec.paths[path]?.[method]?.parameters ?? []).map((p) => `${p.in}:${p.name}`);
    assert.ok(names('/capture', 'post').includes('query:return_file'));
    assert.ok(names('/capture', 'post').includes('query:shutter_us'));
    assert.deepEqual(names('/logs', 'get').sort(), ['query:envelope', 'query:format', 'query:lines']);
    assert.deepEqual(names('/images/{filename}', 'get'), ['path:filename']);
    assert.deepEqual(names('/extra/{id}', 'get'), ['path:id']);
  });

  test('the docs are open with HTTP_TOKEN set, and the document asks for the bearer token', async () => {
    const spec = (await (await fetch(`${t.httpUrl}/openapi.json`)).json()) as Spec & { security?: unknown };
    assert.deepEqual(spec.security, [{ bearer: [] }]);
    // Bodies are read to the end: an unread one keeps its connection busy, and the node's stop waiting.
    const page = await fetch(`${t.httpUrl}/docs`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    assert.match(await page.text(), /swagger-ui-bundle\.js/);
    const bundle = await fetch(`${t.httpUrl}/docs/static/swagger-ui-bundle.js`);
    assert.equal(bundle.status, 200);
    assert.ok((await bundle.arrayBuffer()).byteLength > 100_000);
    const missing = await fetch(`${t.httpUrl}/docs/static/nope.js`);
    assert.equal(missing.status, 404);
    assert.deepEqual(await missing.json(), { detail: 'Not Found', code: 'not_found' });
    const outside = await fetch(`${t.httpUrl}/docs/static/..%2F..%2Fpackage.json`);
    assert.equal(outside.status, 404, 'nothing outside the UI folder is served');
    await outside.arrayBuffer();
    const refused = await fetch(`${t.httpUrl}/status`);
    assert.equal(refused.status, 401, 'the API itself still needs the token');
    await refused.arrayBuffer();
  });

  test('/docs loads in headless Chromium without console errors', {
    skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed`,
  }, async () => {
    const browser = await launchBrowser();
    try {
      const page = await browser.browser.newPage();
      const problems: string[] = [];
      page.on('console', (message) => {
        if (message.type() === 'error' || message.type() === 'warn') problems.push(`console.${message.type()}: ${message.text()}`);
      });
      page.on('pageerror', (err) => problems.push(`page error: ${String(err)}`));
      page.on('requestfailed', (request) => problems.push(`request failed: ${request.url()}`));
      page.on('response', (response) => {
        if (response.status() >= 400) problems.push(`${response.status()} ${response.url()}`);
        if (!response.url().startsWith(t.httpUrl) && !response.url().startsWith('data:')) problems.push(`left the node: ${response.url()}`);
      });
      await page.goto(`${t.httpUrl}/docs`, { waitUntil: 'networkidle0' });
      await page.waitForSelector('.swagger-ui .opblock');
      const title = await page.$eval('.swagger-ui .info .title', (node) => node.textContent ?? '');
      const operations = await page.$$eval('.swagger-ui .opblock', (nodes) => nodes.length);
      assert.match(title, /camera-node/);
      assert.ok(operations >= 7, `${operations} operations shown`);
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
    }
  });
});
