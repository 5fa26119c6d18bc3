import { renameSync, rmSync, symlinkSync } from 'node:fs';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import pino from 'pino';

/**
 * The node's log file, rotated by size: `<dir>/<name>.<n>.log`, the highest n being the one in use
 * (an earlier run's is continued), `current.log` linking it, and at most `keep` older files besides
 * it. Writes are synchronous (a write(2) into the page cache per line): nothing is lost when the
 * process dies, and a tail sees every line logged before it.
 *
 * It replaces pino-roll, whose date handling (date-fns) cost the node start-up CPU and resident
 * memory for a rotation that needs none: only sizes and numbers.
 */
export interface RotatingFile {
  write(line: string): void;
  /** Writes what is buffered and closes the descriptor; later writes are dropped. */
  close(): Promise<void>;
}

export interface RotatingFileOptions {
  dir: string;
  name: string;
  maxBytes: number;
  /** Rotated files kept besides the current one. */
  keep: number;
  /** A failure the logger cannot log about itself (disk full, a failed rotation). */
  onError(err: Error): void;
}

const fileNumber = (name: string, file: string): number | null => {
  const digits = file.startsWith(`${name}.`) && file.endsWith('.log') ? file.slice(name.length + 1, -'.log'.length) : '';
  return /^\d+$/.test(digits) ? Number(digits) : null;
};

async function numbersOnDisk(dir: string, name: string): Promise<number[]> {
  const numbers: number[] = [];
  for (const file of await readdir(dir)) {
    const n = fileNumber(name, file);
    if (n !== null) numbers.push(n);
  }
  return numbers.sort((a, b) => a - b);
}

export async function openRotatingFile(options: RotatingFileOptions): Promise<RotatingFile> {
  const { dir, name } = options;
  await mkdir(dir, { recursive: true });
  const path = (n: number): string => join(dir, `${name}.${n}.log`);
  let number = (await numbersOnDisk(dir, name)).at(-1) ?? 1;
  let size = await stat(path(number)).then(
    (info) => info.size,
    () => 0,
  );
  const stream = pino.destination({ dest: path(number), sync: true, append: true });
  const closed = new Promise<void>((resolve) => stream.once('close', () => resolve()));
  stream.on('error', (err: Error) => options.onError(err));

  // Rotations are rare. The link is replaced at once, in one rename (a reader never finds it missing
  // or stale); removing old files is left to the background, one clean-up at a time.
  let housekeeping: Promise<void> = Promise.resolve();
  const rotated = (current: number): void => {
    try {
      const temporary = join(dir, `.current.log.${process.pid}`);
      rmSync(temporary, { force: true });
      symlinkSync(basename(path(current)), temporary);
      renameSync(temporary, join(dir, 'current.log'));
    } catch (err) {
      options.onError(err as Error);
    }
    housekeeping = housekeeping.then(async () => {
      try {
        const numbers = await numbersOnDisk(dir, name);
        for (const old of numbers.slice(0, Math.max(0, numbers.length - (options.keep + 1)))) await rm(path(old), { force: true });
      } catch (err) {
        options.onError(err as Error);
      }
    });
  };
  rotated(number);

  let open = true;
  let closing: Promise<void> | null = null;
  return {
    write(line) {
      if (!open) return;
      stream.write(line);
      size += Buffer.byteLength(line);
      if (size < options.maxBytes) return;
      number += 1;
      size = 0;
      try {
        stream.reopen(path(number));
      } catch (err) {
        options.onError(err as Error);
      }
      rotated(number);
    },
    close() {
      open = false;
      closing ??= (async () => {
        await housekeeping;
        try {
          stream.end();
        } catch {
          // end() throws once the stream has destroyed itself: there is no descriptor left to close.
          return;
        }
        await closed;
      })();
      return closing;
    },
  };
}
