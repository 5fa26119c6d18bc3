import type { Level, Logger } from 'pino';

/** One parsed line of the log file: pino's JSON as written (level, time, msg, and any bound fields). */
export interface LogEntry {
  level: number;
  time: number;
  msg?: string;
  [field: string]: unknown;
}

export interface NodeLoggerOptions {
  /** Folder holding the rotating files; created when missing. One folder per node. */
  dir: string;
  /** Base name of the files: `<name>.<n>.log`, the highest n being the current file. */
  name: string;
  /** Size at which the current file rotates (fractions allowed). */
  maxSizeMb: number;
  /** Rotated files kept besides the current one. */
  maxFiles: number;
  level: Level;
  /** Where lines go, once each (LOG_TARGET). */
  target: LogTarget;
  /** With target 'stdout', how many recent lines tail() can return (kept in memory). */
  ringLines: number;
}

/** The rotating files, stdout (the journal under systemd), or both. */
export type LogTarget = 'file' | 'stdout' | 'both';

export interface NodeLogger {
  logger: Logger;
  /** The last `lines` entries, oldest first, reaching into rotated files when the current one is short. */
  tail(lines: number): Promise<LogEntry[]>;
  /** Flushes and closes the file (when there is one); the logger must not be used afterwards. */
  close(): Promise<void>;
}
