import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestNode, type TestNode } from './helpers/node.js';

type Issue = { type: string; loc: string[]; msg: string; input?: unknown };

describe('query parameters are read as FastAPI reads them', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode();
  });
  after(async () => {
    await t.stop();
  });

  const get = async (path: string): Promise<{ status: number; body: unknown }> => {
    const response = await fetch(`${t.httpUrl}${path}`);
    return { status: response.status, body: await response.json() };
  };

  test('booleans: true/false, 1/0, yes/no, on/off, t/f, y/n in any case', async () => {
    for (const word of ['true', 'True', 'TRUE', '1', 'yes', 'Yes', 'on', 'ON', 't', 'y']) {
      const { status, body } = await get(`/images?envelope=${word}`);
      assert.equal(status, 200, word);
      assert.ok(!Array.isArray(body), `${word} is true`);
    }
    for (const word of ['false', 'False', '0', 'no', 'NO', 'off', 'Off', 'f', 'n']) {
      const { status, body } = await get(`/images?envelope=${word}`);
      assert.equal(status, 200, word);
      assert.ok(Array.isArray(body), `${word} is false`);
    }
    for (const word of ['maybe', '', '2', 'truee', 'null']) {
      const { status, body } = await get(`/images?envelope=${word}`);
      assert.equal(status, 422, word);
      assert.deepEqual(body, {
        detail: [
          {
            type: 'bool_parsing',
            loc: ['query', 'envelope'],
            msg: 'Input should be a valid boolean, unable to interpret input',
            input: word,
          },
        ],
        code: 'validation_error',
      });
    }
  });

  test('the seed’s own example: return_file=True (what requests sends for True) and return_file=1 return the DNG', async () => {
    for (const value of ['True', '1']) {
      const response = await fetch(`${t.httpUrl}/capture?return_file=${value}`, { method: 'POST' });
      assert.equal(response.status, 200, value);
      assert.equal(response.headers.get('content-type'), 'image/x-adobe-dng');
      await response.arrayBuffer();
    }
  });

  test('integers: spaces, a sign and a zero fraction are accepted; anything else is int_parsing', async () => {
    for (const [value, lines] of [
      ['3', 3],
      ['%203%20', 3],
      ['+3', 3],
      ['3.0', 3],
      ['003', 3],
    ] as const) {
      const { status, body } = await get(`/logs?lines=${value}`);
      assert.equal(status, 200, value);
      assert.equal((body as unknown[]).length, lines, value);
    }
    for (const value of ['3.5', '1e1', '0x3', 'three', '']) {
      const { status, body } = await get(`/logs?lines=${value}`);
      assert.equal(status, 422, value);
      const [issue] = (body as { detail: Issue[] }).detail;
      assert.equal(issue?.type, 'int_parsing', value);
      assert.deepEqual(issue?.loc, ['query', 'lines']);
    }
  });

  test('a repeated parameter counts once, with its last value, as in Starlette', async () => {
    const { status, body } = await get('/logs?lines=1&lines=2');
    assert.equal(status, 200);
    assert.equal((body as unknown[]).length, 2);
    assert.ok(Array.isArray((await get('/images?envelope=true&envelope=no')).body), 'the last value, no, wins');
  });

  test('every bad parameter of a request is listed', async () => {
    const { status, body } = await get('/logs?lines=many&envelope=perhaps');
    assert.equal(status, 422);
    assert.deepEqual(
      (body as { detail: Issue[] }).detail.map((issue) => [issue.loc.join('.'), issue.type]),
      [
        ['query.lines', 'int_parsing'],
        ['query.envelope', 'bool_parsing'],
      ],
    );
  });

  test('a union (at: epoch ms or a string) lists what each of its forms wanted', async () => {
    const response = await fetch(`${t.httpUrl}/capture?at=`, { method: 'POST' });
    assert.equal(response.status, 422);
    const { detail } = (await response.json()) as { detail: Issue[] };
    assert.deepEqual(
      detail.map((issue) => [issue.loc.join('.'), issue.type]),
      [
        ['query.at', 'int_parsing'],
        ['query.at', 'string_too_short'],
      ],
    );
  });

  test('ranges, choices and unknown names in pydantic’s words', async () => {
    const cases: Array<[string, Issue]> = [
      [
        '/logs?lines=0',
        { type: 'greater_than_equal', loc: ['query', 'lines'], msg: 'Input should be greater than or equal to 1', input: 0 },
      ],
      ['/logs?format=xml', { type: 'enum', loc: ['query', 'format'], msg: "Input should be 'text' or 'json'", input: 'xml' }],
      ['/images?verbose=1', { type: 'extra_forbidden', loc: ['query', 'verbose'], msg: 'Extra inputs are not permitted', input: '1' }],
    ];
    for (const [path, issue] of cases) {
      const { status, body } = await get(path);
      assert.equal(status, 422, path);
      assert.deepEqual(body, { detail: [issue], code: 'validation_error' }, path);
    }
  });
});
