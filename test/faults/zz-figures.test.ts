import { test } from 'node:test';
import assert from 'node:assert/strict';
import { figuresTable, forgetFigures, forgetStaleFigures, readFigures } from '../helpers/faults-figures.js';

// Runs last (files run in name order, one at a time): the table of what every fault test counted.
const rows = await readFigures();
await forgetStaleFigures();

test('figures of the reliability suite', {
  skip: rows.length === 0 ? 'no figures were recorded in this run (run it with the other files: npm run test:faults)' : false,
}, async () => {
  console.log(`\n${figuresTable(rows)}\n`);
  await forgetFigures();
  for (const row of rows) {
    for (const key of [
      'lost',
      'crashes',
      'leaks',
      'damaged',
      'partial_listed',
      'files_touched_outside',
      'internal_errors',
      'not_delivered',
      'replies_missing',
    ]) {
      const value = row.figures[key];
      if (value !== undefined) assert.equal(value, 0, `${row.fault}: ${key}`);
    }
  }
});
