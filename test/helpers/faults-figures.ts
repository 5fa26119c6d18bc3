import { appendFile, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** One fault's counts: what was done, what survived, and what was lost (which must be 0). */
export type Figures = Record<string, number | string | boolean | null>;

/**
 * Every test file of the reliability suite runs in its own process under one `node --test` runner,
 * so the runner's pid names the run: each file appends here and the last file prints the table.
 */
export const figuresFile = (runner: number = process.ppid): string => join(tmpdir(), `camera-node-faults-${runner}.jsonl`);

/** Prints the figures as one JSON line and keeps them for the run's table. */
export async function recordFigures(fault: string, figures: Figures): Promise<void> {
  const line = JSON.stringify({ fault, ...figures });
  console.log(`figures ${line}`);
  await appendFile(figuresFile(), `${line}\n`);
}

export interface FiguresRow {
  fault: string;
  figures: Figures;
}

/** The figures recorded so far in this run, in the order they were recorded. */
export async function readFigures(file: string = figuresFile()): Promise<FiguresRow[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const { fault, ...figures } = JSON.parse(line) as Figures & { fault: string };
      return { fault, figures };
    });
}

export const forgetFigures = (file: string = figuresFile()): Promise<void> => rm(file, { force: true });

/** Removes the figures of earlier runs whose runner is gone (a file run on its own leaves its figures). */
export async function forgetStaleFigures(): Promise<number> {
  let removed = 0;
  for (const name of await readdir(tmpdir())) {
    const runner = Number(/^camera-node-faults-(\d+)\.jsonl$/.exec(name)?.[1] ?? Number.NaN);
    if (!Number.isInteger(runner) || runner === process.ppid) continue;
    try {
      process.kill(runner, 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') continue;
      await rm(join(tmpdir(), name), { force: true });
      removed += 1;
    }
  }
  return removed;
}

/** A two-column table: the fault, then its figures as `key=value`, wrapped to a readable width. */
export function figuresTable(rows: readonly FiguresRow[], width = 110): string {
  const faultWidth = Math.max(5, ...rows.map((row) => row.fault.length));
  const room = Math.max(30, width - faultWidth - 3);
  const lines = [`${'fault'.padEnd(faultWidth)} | figures`, `${'-'.repeat(faultWidth)}-+-${'-'.repeat(room)}`];
  for (const row of rows) {
    const cells = Object.entries(row.figures).map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
    let current = '';
    let first = true;
    const flush = (): void => {
      lines.push(`${(first ? row.fault : '').padEnd(faultWidth)} | ${current}`);
      first = false;
      current = '';
    };
    for (const cell of cells) {
      if (current !== '' && current.length + cell.length + 2 > room) flush();
      current = current === '' ? cell : `${current}, ${cell}`;
    }
    if (current !== '' || first) flush();
  }
  return lines.join('\n');
}
