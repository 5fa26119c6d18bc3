import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { configProperties, envName } from '../src/config/config.js';
import { SCHEMA_FILES } from '../src/schemas.js';
import { replaceConfigTable } from '../src/config/docs.js';

const README = new URL('../../README.md', import.meta.url);

test('the README configuration table is the one made from the config schema (npm run docs)', async () => {
  const readme = await readFile(README, 'utf8');
  assert.equal(replaceConfigTable(readme), readme, 'README.md is out of date: run npm run docs');
  for (const name of Object.keys(configProperties()).map(envName)) assert.ok(readme.includes(`\`${name}\``), name);
});

test('the README links every protocol schema and shows the quick start on its first screen', async () => {
  const readme = await readFile(README, 'utf8');
  for (const file of SCHEMA_FILES) {
    if (file === 'config.schema.json' || file === 'capture-settings.schema.json' || readme.includes(file)) continue;
    assert.fail(`README does not link schemas/${file}`);
  }
  const firstScreen = readme.split('\n').slice(0, 40).join('\n');
  assert.match(firstScreen, /npm install && npm start/);
  assert.match(firstScreen, /npm test/);
});
