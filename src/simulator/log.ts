/**
 * What the app prints on stderr: libcamera's log lines (always, whatever `-v`), the app's own
 * messages (by verbosity), and `ERROR: *** … ***` for the error that ends a run.
 */
export interface Log {
  libcamera(level: 'INFO' | 'WARN' | 'ERROR', category: string, where: string, message: string): void;
  app(message: string, minVerbose?: number): void;
  error(message: string): void;
}

/** libcamera's timestamp: time since boot as `h:mm:ss.nnnnnnnnn`. */
function uptimeStamp(): string {
  const ns = process.hrtime.bigint();
  const seconds = ns / 1_000_000_000n;
  const fraction = String(ns % 1_000_000_000n).padStart(9, '0');
  const h = seconds / 3600n;
  const m = String((seconds / 60n) % 60n).padStart(2, '0');
  const s = String(seconds % 60n).padStart(2, '0');
  return `${h}:${m}:${s}.${fraction}`;
}

export function createLog(verbose: number, write: (text: string) => void = (text) => process.stderr.write(text)): Log {
  return {
    libcamera(level, category, where, message) {
      write(`[${uptimeStamp()}] [${process.pid}] ${level.padStart(5)} ${category} ${where} ${message}\n`);
    },
    app(message, minVerbose = 1) {
      if (verbose >= minVerbose) write(`${message}\n`);
    },
    error(message) {
      write(`ERROR: *** ${message} ***\n`);
    },
  };
}
