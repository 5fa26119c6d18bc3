/**
 * Runs every benchmark, one process each (so one's heap and timers cannot skew the next):
 *   npm run bench            all of them
 *   npm run bench -- mqtt    only those whose name contains "mqtt"
 * Each prints its own tables, ending with its ratios.
 */
import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

const here = fileURLToPath(new URL('.', import.meta.url));
const filter = process.argv[2] ?? '';
const skip = new Set(['run.js', 'stats.js']);
const benches = (await readdir(here)).filter((name) => name.endsWith('.js') && !skip.has(name) && name.includes(filter)).sort();
let failed = 0;
for (const bench of benches) {
  process.stdout.write(`\n=== ${bench}\n`);
  const result = await execa(process.execPath, [`${here}${bench}`], { stdio: 'inherit', reject: false });
  if (result.exitCode !== 0) failed += 1;
}
process.exitCode = failed === 0 ? 0 : 1;
