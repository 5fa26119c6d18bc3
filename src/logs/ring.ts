import type { LogEntry } from './types.js';

/**
 * The last lines pino wrote, kept in memory for `GET /logs` when no log file is written (the lines
 * go to the journal). Lines are kept as the JSON text pino produced, parsed only when read: a string
 * costs a fraction of the object it would parse into.
 */
export interface LogRing {
  write(line: string): void;
  /** The last `lines` entries, oldest first. */
  tail(lines: number): LogEntry[];
}

export function createLogRing(capacity: number): LogRing {
  if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`capacity must be an integer of at least 1, got ${capacity}`);
  const lines: string[] = [];
  let next = 0; // where the next line goes once the ring is full
  return {
    write(line) {
      if (lines.length < capacity) lines.push(line);
      else {
        lines[next] = line;
        next = (next + 1) % capacity;
      }
    },
    tail(wanted) {
      const count = Math.min(Math.max(0, wanted), lines.length);
      const entries: LogEntry[] = [];
      for (let i = lines.length - count; i < lines.length; i += 1) {
        const text = lines[(next + i) % lines.length] ?? '';
        try {
          entries.push(JSON.parse(text) as LogEntry);
        } catch {
          // pino writes whole JSON lines; anything else is not an entry.
        }
      }
      return entries;
    },
  };
}
