import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { startTestNode, type TestNode } from './helpers/node.js';

/**
 * The Python node's README (test/fixtures/seed-readme.md, a verbatim copy) is a contract: its
 * examples run unchanged, with Debian's python3-requests and curl, against a real node on loopback.
 * The examples' host, `pi-zero:5003`, is mapped to the node by a sitecustomize for Python and a
 * .curlrc for curl; the example text itself is never edited.
 */

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/', import.meta.url));
const SEED_README = join(FIXTURES, 'seed-readme.md');
const SEED_HOST = 'pi-zero:5003';
/** Where the Python node's README lives beside a checkout, or SEED_README for another place. */
const ORIGINAL = process.env['SEED_README'] ?? fileURLToPath(new URL('../../../shared/seed/000_c7cdb48e12d4bf0f.txt', import.meta.url));

/** Fenced code blocks of one language, in order. */
function codeBlocks(markdown: string, language: string): string[] {
  const blocks: string[] = [];
  const fence = new RegExp(`^\`\`\`${language}\\n([\\s\\S]*?)^\`\`\``, 'gm');
  for (const match of markdown.matchAll(fence)) if (match[1] !== undefined) blocks.push(match[1]);
  return blocks;
}

/** Debian's python3 first (the PATH one may be a pyenv build without requests); null when none has requests. */
async function findPython(): Promise<string | null> {
  for (const python of ['/usr/bin/python3', 'python3']) {
    const probe = await execa(python, ['-c', 'import requests'], { reject: false });
    if (probe.exitCode === 0) return python;
  }
  return null;
}

const readme = await readFile(SEED_README, 'utf8');
const pythonExamples = codeBlocks(readme, 'python').filter((code) => code.includes(`http://${SEED_HOST}/`));
const curlExamples = codeBlocks(readme, 'bash')
  .flatMap((code) => code.split('\n'))
  .filter((line) => line.startsWith('curl ') && line.includes(SEED_HOST));
const python = await findPython();
const curl = (await execa('curl', ['--version'], { reject: false }).catch(() => ({ exitCode: 1 }))).exitCode === 0;

test('the copy of the Python node’s README matches the original, where the original is at hand', {
  skip: existsSync(ORIGINAL) ? false : `the original README is not at ${ORIGINAL} (set SEED_README to check it)`,
}, async () => {
  assert.equal(readme, await readFile(ORIGINAL, 'utf8'));
});

test('the README has the examples this contract runs', () => {
  assert.equal(pythonExamples.length, 2, 'capture-and-download, monitor status');
  assert.deepEqual(curlExamples, [`curl http://${SEED_HOST}/logs`, `curl http://${SEED_HOST}/status`]);
});

describe('the Python node’s README examples, verbatim, against this node', () => {
  let t: TestNode;
  let work: string;
  before(async () => {
    t = await startTestNode();
    work = await mkdtemp(join(tmpdir(), 'camera-node-seed-'));
    const target = new URL(t.httpUrl).host;
    // curl reads $CURL_HOME/.curlrc: the name the examples use connects to the node, no proxy in between.
    await writeFile(join(work, '.curlrc'), `connect-to = "${SEED_HOST}:${target}"\nnoproxy = "*"\n`);
  });
  after(async () => {
    await t?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** Runs one example as a file of its own in `work`; answers its output and its top-level variables. */
  async function runPython(code: string, index: number): Promise<{ stdout: string; vars: Record<string, unknown> }> {
    const file = join(work, `example_${index}.py`);
    const result = join(work, `example_${index}.json`);
    await writeFile(file, code);
    const run = await execa(python ?? 'python3', [file], {
      cwd: work,
      extendEnv: false,
      env: {
        PATH: process.env['PATH'] ?? '/usr/bin:/bin',
        PYTHONPATH: join(FIXTURES, 'seed-python'),
        PYTHONIOENCODING: 'utf-8',
        // No __pycache__ beside the fixture.
        PYTHONDONTWRITEBYTECODE: '1',
        SEED_HOST,
        SEED_TARGET: new URL(t.httpUrl).host,
        SEED_RESULT: result,
        NO_PROXY: '*',
      },
      reject: false,
    });
    assert.equal(run.exitCode, 0, `example ${index} failed:\n${code}\n${run.stderr}`);
    return { stdout: run.stdout, vars: JSON.parse(await readFile(result, 'utf8')) as Record<string, unknown> };
  }

  const noPython = python ? false : 'neither /usr/bin/python3 nor python3 can import requests (install python3-requests)';

  test('Capture and Download Image: file_info as documented, then the DNG itself', { skip: noPython }, async () => {
    const code = pythonExamples.find((c) => c.includes('/capture'));
    assert.ok(code);
    const { vars } = await runPython(code, 1);
    const info = vars['file_info'] as Record<string, unknown>;
    assert.deepEqual(Object.keys(info).slice(0, 4), ['filename', 'filepath', 'timestamp', 'size'], 'the seed’s fields, first');
    assert.match(String(info['filename']), /^capture_\d{8}_\d{6}(_\d{3})?\.dng$/);
    assert.match(String(info['timestamp']), /^\d{8}_\d{6}$/);
    assert.equal(typeof info['size'], 'number');
    // The second capture came back as the file: image.dng is one of the node's images, byte for byte.
    const downloaded = await readFile(join(work, 'image.dng'));
    const stored = (await readdir(t.config.capture_dir)).filter((name) => name.endsWith('.dng'));
    assert.equal(stored.length, 2, 'both captures stored');
    const copies = await Promise.all(stored.map((name) => readFile(join(t.config.capture_dir, name))));
    assert.ok(
      copies.some((copy) => copy.equals(downloaded)),
      'image.dng is a stored DNG',
    );
  });

  test('Monitor Node Status: the fields it reads are there', { skip: noPython }, async () => {
    const code = pythonExamples.find((c) => c.includes('/status'));
    assert.ok(code);
    const { stdout, vars } = await runPython(code, 2);
    assert.match(stdout, /^Storage used: \d+(\.\d+)?MB$/m);
    assert.match(stdout, /^CPU Temperature: .+°C$/m);
    const status = vars['status'] as { status: string; storage: Record<string, unknown>; system: Record<string, unknown>; node_id: string };
    assert.equal(status.node_id, t.config.node_id);
    for (const key of ['used_mb', 'limit_mb', 'available_mb']) assert.equal(typeof status.storage[key], 'number', key);
    for (const key of ['cpu_percent', 'memory_percent', 'disk_usage', 'uptime']) assert.equal(typeof status.system[key], 'number', key);
    // The seed README's form ("2025-01-30T12:26:01"): local time, no zone, which Python before 3.11
    // (Raspberry Pi OS Bullseye has 3.9) reads with datetime.fromisoformat; a trailing Z it refuses.
    const stamp = String((status as Record<string, unknown>)['timestamp']);
    assert.match(stamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/);
    assert.ok(Math.abs(new Date(stamp).getTime() - Date.now()) < 60_000, `${stamp} is the node's local time now`);
  });

  test('Troubleshooting: curl /logs is an array of readable lines, curl /status the status', {
    skip: curl ? false : 'curl is not installed',
  }, async () => {
    const answers: unknown[] = [];
    for (const line of curlExamples) {
      // Plain words only, so the line runs as written without a shell.
      assert.match(line, /^curl [\w:/.-]+$/);
      const [command, ...args] = line.split(' ');
      const run = await execa(command ?? 'curl', args, {
        cwd: work,
        extendEnv: false,
        env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', CURL_HOME: work },
        reject: false,
      });
      assert.equal(run.exitCode, 0, `${line}: ${run.stderr}`);
      answers.push(JSON.parse(run.stdout));
    }
    const [logs, status] = answers as [unknown, Record<string, unknown>];
    assert.ok(Array.isArray(logs) && logs.length > 0);
    for (const entry of logs) assert.match(String(entry), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - \S+ - [A-Z]+ - /);
    assert.equal(status['node_id'], t.config.node_id);
  });
});
