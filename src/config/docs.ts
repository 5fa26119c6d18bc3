import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { configProperties, envName } from './config.js';

/** Defaults the schema cannot state because the node works them out at start. */
const COMPUTED_DEFAULTS: Readonly<Record<string, string>> = {
  node_id: 'the hostname',
  public_url: '`http://<hostname>.local:<port>`',
};

export const TABLE_START = '<!-- config-table:start -->';
export const TABLE_END = '<!-- config-table:end -->';

function shownDefault(key: string, value: unknown): string {
  if (key in COMPUTED_DEFAULTS) return COMPUTED_DEFAULTS[key] ?? '';
  if (value === undefined) return 'unset';
  if (Array.isArray(value)) return value.length === 0 ? 'none' : `\`${value.join(',')}\``;
  if (typeof value === 'object' && value !== null) return Object.keys(value).length === 0 ? 'none' : `\`${JSON.stringify(value)}\``;
  return `\`${String(value)}\``;
}

/**
 * The README's configuration table, made from schemas/config.schema.json so the two cannot drift:
 * `npm run docs` writes it, and a test fails when the README's copy is out of date.
 */
export function configTable(): string {
  const rows = Object.entries(configProperties()).map(([key, property]) => {
    const description = String(property['description'] ?? '')
      .replaceAll('|', '\\|')
      .replaceAll('\n', ' ');
    return `| \`${envName(key)}\` | ${shownDefault(key, property['default'])} | ${description} |`;
  });
  return [TABLE_START, '| variable | default | meaning |', '| --- | --- | --- |', ...rows, TABLE_END].join('\n');
}

export function replaceConfigTable(readme: string): string {
  const start = readme.indexOf(TABLE_START);
  const end = readme.indexOf(TABLE_END);
  if (start < 0 || end < start) throw new Error('README.md has no config-table markers');
  return `${readme.slice(0, start)}${configTable()}${readme.slice(end + TABLE_END.length)}`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const path = new URL('../../../README.md', import.meta.url);
  await writeFile(path, replaceConfigTable(await readFile(path, 'utf8')));
  process.stdout.write('README.md: configuration table updated from schemas/config.schema.json\n');
}
