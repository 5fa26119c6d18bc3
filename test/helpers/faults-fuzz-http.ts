import fc from 'fast-check';
import { CAPTURE_SETTING_KEYS, deepJson, PROTOTYPE_KEYS, stringArb, type HostileTargets } from './fuzz.js';

/** One generated HTTP request. */
export interface HttpCase {
  kind: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer | null;
}

const KNOWN_PATHS = ['/capture', '/images', '/status', '/logs', '/health', '/metrics', '/'];
const QUERY_KEYS = ['lines', 'return_file', ...CAPTURE_SETTING_KEYS, ...PROTOTYPE_KEYS, 'x'];

/** Percent-encodes what cannot go on a request line as is (controls, spaces, non-ASCII), and nothing else. */
export function requestTarget(text: string): string {
  return Array.from(text)
    .map((ch) =>
      /^[\x21-\x7e]$/.test(ch) ? ch : [...Buffer.from(ch, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0').toUpperCase()}`).join(''),
    )
    .join('');
}

/** Generated HTTP requests: hostile paths, query strings, methods, headers and bodies for the node's API. */
export function httpCases(t: HostileTargets): fc.Arbitrary<HttpCase> {
  const hostile = stringArb(t);
  const segment = fc.oneof(
    hostile,
    fc.webSegment(),
    fc.constantFrom(
      '..',
      '%2e%2e',
      '%2E%2E%2F',
      '%00',
      '..%00',
      '%ZZ',
      '%',
      '%%',
      '%c0%ae%c0%ae',
      t.sentinelImage,
      `capture_20200101_000000.dng`,
    ),
  );
  const path = fc.oneof(
    {
      weight: 4,
      arbitrary: fc
        .tuple(fc.constantFrom('/images/', '/images/../', '/images//', '/images/%2e%2e/', '//images/'), segment)
        .map(([base, s]) => `${base}${encodeURIComponent(s)}`),
    },
    { weight: 3, arbitrary: fc.tuple(fc.constantFrom('/images/', '/'), segment).map(([base, s]) => `${base}${s}`) },
    { weight: 2, arbitrary: fc.array(segment, { minLength: 1, maxLength: 6 }).map((parts) => `/${parts.join('/')}`) },
    { weight: 2, arbitrary: fc.webPath() },
    { weight: 3, arbitrary: fc.constantFrom(...KNOWN_PATHS) },
    { weight: 1, arbitrary: fc.integer({ min: 2000, max: 60_000 }).map((n) => `/images/${'a'.repeat(n)}`) },
  );
  const value = fc.oneof(
    hostile.map(encodeURIComponent),
    fc.constantFrom('', '0', '-1', '1.5', '1e999', 'true', 'maybe', '10001', '401', '%ZZ', '%00', 'NaN', '[]', '{}'),
  );
  const query = fc.oneof(
    fc.constant(''),
    fc
      .array(fc.tuple(fc.oneof(fc.constantFrom(...QUERY_KEYS), fc.webSegment()), value), { minLength: 1, maxLength: 5 })
      .map((pairs) => `?${pairs.map(([k, v]) => `${k}=${v}`).join('&')}`),
    fc.webQueryParameters().map((q) => `?${q}`),
    fc.constantFrom('?', '??', '?&&', '?=', '?lines', '?lines=1&lines=2', '?return_file=true&count=2', '?deliver=http', '?at=%2B2s'),
  );
  const body = fc.oneof(
    { weight: 4, arbitrary: fc.constant(null) },
    { weight: 2, arbitrary: fc.uint8Array({ maxLength: 2048 }).map((b) => Buffer.from(b)) },
    { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => Buffer.from(JSON.stringify(v) ?? 'null')) },
    { weight: 1, arbitrary: fc.integer({ min: 65 * 1024, max: 200 * 1024 }).map((n) => Buffer.alloc(n, 0x41)) },
    { weight: 1, arbitrary: fc.integer({ min: 100, max: 3000 }).map((n) => Buffer.from(deepJson(n, false))) },
  );
  const contentType = fc.constantFrom(
    'application/json',
    'text/plain',
    'application/octet-stream',
    'multipart/form-data; boundary=x',
    'application/x-www-form-urlencoded',
    'application/json; charset=utf-16',
    '*/*',
    '',
  );
  const method = fc.constantFrom(
    'GET',
    'GET',
    'GET',
    'POST',
    'POST',
    'DELETE',
    'DELETE',
    'PUT',
    'PATCH',
    'OPTIONS',
    'HEAD',
    'PROPFIND',
    'TRACE',
    'SEARCH',
  );
  return fc.tuple(method, path, query, body, contentType).map(([m, p, q, b, ct]) => {
    const headers: Record<string, string> = {};
    if (b !== null && ct !== '') headers['content-type'] = ct;
    // POST /capture with no bad parameter would take a picture: keep those rare by giving it one.
    const target = m === 'POST' && p === '/capture' && q === '' ? `${p}?shutter_us=0` : `${p}${q}`;
    return { kind: `${m} ${p.split('/')[1] ?? ''}`, method: m, path: requestTarget(target), headers, body: b };
  });
}
