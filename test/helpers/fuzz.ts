import fc from 'fast-check';
import { readSchema } from '../../src/schemas.js';

/**
 * Generators of hostile input for the node: MQTT command payloads and HTTP requests. Strings aimed
 * at the file system or a shell point into `targetDir` (a test's own temp dir), so that a snapshot
 * of it before and after tells whether any of them reached a file or a shell.
 */
export interface HostileTargets {
  /** Absolute dir holding sentinel files; its snapshot must not change. */
  targetDir: string;
  /** A valid image name that exists in targetDir (and its `sentinel/` subdir), never in the capture dir. */
  sentinelImage: string;
}

export const ACTIONS = ['capture', 'list', 'delete', 'logs', 'status', 'send'] as const;

/** Traversal, absolute paths, encodings, NUL, and shell metacharacters that would touch a file. */
export function hostileStrings(t: HostileTargets): string[] {
  const victim = `${t.targetDir}/pwned`;
  return [
    `../${t.sentinelImage}`,
    `../../${t.sentinelImage}`,
    `../sentinel/${t.sentinelImage}`,
    `${t.targetDir}/${t.sentinelImage}`,
    `${t.targetDir}/sentinel/victim.dng`,
    '/etc/passwd',
    '..',
    '.',
    '.tmp',
    '.camera-node-state.json',
    '.camera-node-commands.jsonl',
    '.outbox/x.json',
    `%2e%2e%2f${t.sentinelImage}`,
    `..%2F..%2F${t.sentinelImage}`,
    `%252e%252e%252f${t.sentinelImage}`,
    `....//....//${t.sentinelImage}`,
    `..\\..\\${t.sentinelImage}`,
    `${t.sentinelImage}\u0000.txt`,
    `capture_20200101_000000.dng\u0000`,
    `capture_20200101_000000.dng/../../${t.sentinelImage}`,
    `$(touch ${victim}-dollar)`,
    `\`touch ${victim}-backtick\``,
    `; touch ${victim}-semicolon`,
    `| touch ${victim}-pipe`,
    `&& touch ${victim}-and`,
    `\ntouch ${victim}-newline`,
    `x' ; touch ${victim}-quote ; '`,
    `--output=${victim}-option`,
    `-o ${victim}-dash`,
    `capture_20260101_120000.dng; rm -rf ${t.targetDir}`,
    '%00',
    '\u202e\u0000\uffff',
  ];
}

/** The capture settings the schema defines: the fuzzer follows the contract as it grows. */
export const CAPTURE_SETTING_KEYS: readonly string[] = Object.keys(readSchema('capture-settings.schema.json').properties ?? {});

/** Keys a prototype-pollution attempt would use. */
export const PROTOTYPE_KEYS = ['__proto__', 'constructor', 'prototype'] as const;

const fieldNames = ['id', 'action', 'filename', 'lines', 'chunks', ...CAPTURE_SETTING_KEYS, ...PROTOTYPE_KEYS];

/** A string a field might carry: hostile, random (any code point), or long. */
export function stringArb(t: HostileTargets): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...hostileStrings(t)) },
    { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 64 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 32 }) },
    { weight: 1, arbitrary: fc.integer({ min: 200, max: 4000 }).map((n) => 'A'.repeat(n)) },
  );
}

/** Any value of the wrong kind for a field. */
const wrongValue = (t: HostileTargets): fc.Arbitrary<unknown> =>
  fc.oneof(
    stringArb(t),
    fc.constantFrom(null, true, false, 0, -1, 1.5, 1e308, -1e308, [], {}, [null], { $ref: '#' }, 'NaN', 'Infinity', '1e999'),
    fc.jsonValue({ maxDepth: 3 }),
  );

/** Nested arrays/objects `depth` deep, built as text (a generator would recurse as deep). */
export function deepJson(depth: number, objects: boolean): string {
  return objects ? `${'{"a":'.repeat(depth)}0${'}'.repeat(depth)}` : `${'['.repeat(depth)}${']'.repeat(depth)}`;
}

/** One generated command: its kind, and either raw bytes or an object to send (the id is added at send time). */
export interface CommandCase {
  kind: string;
  /** The command is wrong by construction: an error reply is due. */
  malformed: boolean;
  /** How the id is set: a fresh unique one, none, or a bad one (wrong type, empty, too long). */
  id: { mode: 'unique'; suffix: string } | { mode: 'none' } | { mode: 'bad'; value: unknown };
  body: { type: 'object'; fields: Record<string, unknown> } | { type: 'raw'; bytes: Uint8Array } | { type: 'text'; text: string };
}

const badIds = (t: HostileTargets): fc.Arbitrary<CommandCase['id']> =>
  fc.oneof(
    fc.constant({ mode: 'none' as const }),
    fc.constantFrom<unknown>('', 'x'.repeat(129), 42, null, true, [], {}, ['a']).map((value) => ({ mode: 'bad' as const, value })),
    wrongValue(t)
      .filter((value) => !(typeof value === 'string' && value.length >= 1 && value.length <= 128))
      .map((value) => ({ mode: 'bad' as const, value })),
  );

const uniqueId = (t: HostileTargets): fc.Arbitrary<CommandCase['id']> =>
  fc
    .oneof(
      { weight: 3, arbitrary: fc.constant('') },
      { weight: 1, arbitrary: fc.constantFrom(...hostileStrings(t)).map((s) => s.slice(0, 80)) },
    )
    .map((suffix) => ({ mode: 'unique' as const, suffix }));

/** Capture settings that are each out of range or of the wrong type. */
const badCaptureParam = (t: HostileTargets): fc.Arbitrary<Record<string, unknown>> =>
  fc.oneof(
    fc.record({ shutter_us: fc.constantFrom<unknown>(0, -1, 240000001, 1.5, '100', 1e20, null) }),
    fc.record({ gain: fc.constantFrom<unknown>(0, 0.5, 65, '2', -1, [1]) }),
    fc.record({ ev: fc.constantFrom<unknown>(-11, 11, '1', {}) }),
    fc.record({ awb: stringArb(t) }),
    fc.record({ denoise: stringArb(t) }),
    fc.record({ hflip: fc.constantFrom<unknown>('true', 1, 0, null) }),
    fc.record({ count: fc.constantFrom<unknown>(0, 101, 1.5, -3, '2', 1e9) }),
    fc.record({ count: fc.constant(2), interval_ms: fc.constantFrom<unknown>(-1, 3600001, 'soon', 1.5) }),
    fc.record({ count: fc.constant(100), interval_ms: fc.constant(1_000_000) }), // ends past MAX_SCHEDULE_AHEAD_S
    fc.record({
      at: fc.oneof(
        stringArb(t),
        fc.constantFrom<unknown>(
          0,
          -5,
          1.5,
          1_600_000_000,
          1e15,
          '+2s',
          '2026-01-01T00:00:00',
          '2000-01-01T00:00:00Z',
          'yesterday',
          '9999-99-99T99:99:99Z',
        ),
      ),
    }),
    fc.record({ deliver: fc.oneof(stringArb(t), fc.constantFrom<unknown>('http', 'ftp', 1, null)) }), // no upload URL: http is refused too
    fc.dictionary(
      fc.string({ minLength: 1, maxLength: 12 }).filter((k) => !fieldNames.includes(k)),
      wrongValue(t),
      { minKeys: 1, maxKeys: 3 },
    ),
  );

/** Every kind of bad command, and a few good ones. */
export function commandCases(t: HostileTargets): fc.Arbitrary<CommandCase> {
  const withId = <T extends Omit<CommandCase, 'id'>>(arb: fc.Arbitrary<T>): fc.Arbitrary<CommandCase> =>
    fc.tuple(arb, fc.oneof({ weight: 6, arbitrary: uniqueId(t) }, { weight: 1, arbitrary: badIds(t) })).map(([c, id]) => ({ ...c, id }));
  const bad = (kind: string, body: fc.Arbitrary<Record<string, unknown>>) =>
    withId(body.map((fields) => ({ kind, malformed: true, body: { type: 'object' as const, fields } })));
  const good = (kind: string, body: fc.Arbitrary<Record<string, unknown>>) =>
    fc.tuple(body, uniqueId(t)).map(([fields, id]): CommandCase => ({ kind, malformed: false, id, body: { type: 'object', fields } }));
  const noId = { mode: 'none' as const };
  return fc.oneof(
    {
      weight: 6,
      arbitrary: fc
        .uint8Array({ maxLength: 512 })
        .map((raw): CommandCase => ({ kind: 'random bytes', malformed: true, id: noId, body: { type: 'raw', bytes: raw } })),
    },
    {
      weight: 4,
      arbitrary: fc
        .string({ unit: 'binary', maxLength: 300 })
        .map((text): CommandCase => ({ kind: 'random text', malformed: true, id: noId, body: { type: 'text', text } })),
    },
    {
      weight: 4,
      arbitrary: fc
        .jsonValue({ maxDepth: 4 })
        .filter((v) => v === null || typeof v !== 'object' || Array.isArray(v))
        .map(
          (v): CommandCase => ({
            kind: 'JSON, not an object',
            malformed: true,
            id: noId,
            body: { type: 'text', text: JSON.stringify(v) ?? 'null' },
          }),
        ),
    },
    {
      weight: 3,
      arbitrary: fc.tuple(fc.integer({ min: 50, max: 5000 }), fc.boolean(), fc.boolean()).map(
        ([depth, objects, whole]): CommandCase =>
          whole
            ? { kind: 'deep JSON', malformed: true, id: noId, body: { type: 'text', text: deepJson(depth, objects) } }
            : {
                kind: 'deep JSON',
                malformed: true,
                id: { mode: 'unique', suffix: '' },
                body: { type: 'text', text: `{"action":"capture","gain":${deepJson(depth, objects)},"id":` },
              },
      ),
    },
    {
      weight: 2,
      arbitrary: fc
        .constantFrom('{', '{"action":', '{"id":"x","action":"status"', '\u0000', '', ' ', '{"id":"a","id":5}', '{"action":"status"}\u0000')
        .map((text): CommandCase => ({ kind: 'broken JSON', malformed: true, id: noId, body: { type: 'text', text } })),
    },
    {
      weight: 3,
      arbitrary: bad(
        'huge string',
        fc
          .tuple(fc.constantFrom(...ACTIONS), fc.constantFrom('filename', 'at', 'x', 'action'), fc.integer({ min: 17_000, max: 300_000 }))
          .map(([action, field, n]) => ({ action, [field]: 'B'.repeat(n) })),
      ),
    },
    {
      weight: 3,
      arbitrary: bad(
        'unknown action',
        fc
          .oneof(
            stringArb(t),
            fc.constantFrom(
              'Capture',
              'capture ',
              'CAPTURE',
              '__proto__',
              'constructor',
              'toString',
              'hasOwnProperty',
              'valueOf',
              'exec',
              'shell',
              'rm',
            ),
          )
          .map((action) => ({ action })),
      ),
    },
    {
      weight: 3,
      arbitrary: bad(
        'action of the wrong type',
        wrongValue(t)
          .filter((v) => typeof v !== 'string')
          .map((action) => ({ action })),
      ),
    },
    { weight: 2, arbitrary: bad('no action', fc.dictionary(fc.constantFrom('filename', 'lines', 'x'), wrongValue(t), { maxKeys: 2 })) },
    {
      weight: 8,
      arbitrary: bad(
        'delete: hostile filename',
        stringArb(t).map((filename) => ({ action: 'delete', filename })),
      ),
    },
    {
      weight: 3,
      arbitrary: bad(
        'delete: wrong type',
        wrongValue(t)
          .filter((v) => typeof v !== 'string')
          .map((filename) => ({ action: 'delete', filename })),
      ),
    },
    {
      weight: 2,
      arbitrary: bad(
        'delete: valid name, no such image',
        fc
          .integer({ min: 0, max: 999 })
          .map((n) => ({ action: 'delete', filename: `capture_20200101_000000_${String(n).padStart(3, '0')}.dng` })),
      ),
    },
    {
      weight: 6,
      arbitrary: bad(
        'send: hostile filename',
        stringArb(t).map((filename) => ({ action: 'send', filename })),
      ),
    },
    {
      weight: 2,
      arbitrary: bad(
        'send: bad chunks',
        fc
          .constantFrom<unknown>([-1], [1e12], [], 'all', [1.5], [null], {})
          .map((chunks) => ({ action: 'send', filename: t.sentinelImage, chunks })),
      ),
    },
    {
      weight: 4,
      arbitrary: bad(
        'logs: bad lines',
        fc.constantFrom<unknown>(0, -1, 1.5, 10001, 100000, '10', null, [], 1e300).map((lines) => ({ action: 'logs', lines })),
      ),
    },
    {
      weight: 3,
      arbitrary: bad(
        'extra field',
        fc.tuple(fc.constantFrom('list', 'status', 'logs'), stringArb(t)).map(([action, value]) => ({ action, path: value })),
      ),
    },
    {
      weight: 10,
      arbitrary: bad(
        'capture: bad value',
        badCaptureParam(t).map((params) => ({ action: 'capture', ...params })),
      ),
    },
    { weight: 3, arbitrary: good('status', fc.constant({ action: 'status' })) },
    { weight: 2, arbitrary: good('list', fc.constant({ action: 'list' })) },
    {
      weight: 2,
      arbitrary: good(
        'logs',
        fc.integer({ min: 1, max: 50 }).map((lines) => ({ action: 'logs', lines })),
      ),
    },
    // Rare and cheap: most captures are refused as busy, the rest take a tiny simulated frame.
    {
      weight: 1,
      arbitrary: good(
        'capture',
        fc
          .record({ gain: fc.double({ min: 1, max: 16, noNaN: true }), hflip: fc.boolean() }, { requiredKeys: [] })
          .map((p) => ({ action: 'capture', ...p })),
      ),
    },
  );
}

/** The bytes to publish for a case, given the unique id it gets (when it carries one). */
export function commandPayload(c: CommandCase, uniqueId: string): Buffer {
  if (c.body.type === 'raw') return Buffer.from(c.body.bytes);
  if (c.body.type === 'text') {
    // The deep-JSON-in-a-field case ends with `"id":`: the id closes it.
    return Buffer.from(c.body.text.endsWith('"id":') ? `${c.body.text}${JSON.stringify(uniqueId)}}` : c.body.text);
  }
  const command: Record<string, unknown> = {};
  if (c.id.mode === 'unique') command['id'] = `${uniqueId}${c.id.suffix}`;
  else if (c.id.mode === 'bad') command['id'] = c.id.value;
  for (const [key, value] of Object.entries(c.body.fields)) {
    if (key === '__proto__') Object.defineProperty(command, key, { value, enumerable: true, configurable: true, writable: true });
    else command[key] = value;
  }
  return Buffer.from(JSON.stringify(command));
}

/**
 * The id a reply must carry, by the documented contract (command.schema.json): a payload within the
 * size limit that is a JSON object whose `id` is a string of 1 to 128 characters is answered under
 * that id; every other payload under a null id.
 */
export function expectedReplyId(payload: Buffer, maxBytes: number): string | null {
  if (payload.length > maxBytes) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload.toString('utf8'));
  } catch {
    return null;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return null;
  const id = (parsed as Record<string, unknown>)['id'];
  return typeof id === 'string' && id.length >= 1 && id.length <= 128 ? id : null;
}
