import type { LogEntry } from './types.js';

/**
 * One log entry as the seed's Python logging wrote it, `timestamp - name - level - message`
 * (`%(asctime)s - %(name)s - %(levelname)s - %(message)s`), for people reading `GET /logs`:
 *
 *   2026-11-25 10:15:00,123 - camera-node.commands - INFO - captured filename=capture_20261125_101500.dng size=52340
 *
 * asctime is local time, like the image names. The name is the logger's, dotted with the part that
 * logged; the entry's own fields follow the message as `key=value`, so nothing pino recorded is lost.
 */

const LOGGER_NAME = 'camera-node';

/** pino's numeric levels under Python's names (pino's `fatal` is Python's `CRITICAL`). */
const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARNING', 50: 'ERROR', 60: 'CRITICAL' };

/** Fields shown in the line's first columns, the same on every line (node_id), or pino's bookkeeping. */
const SHOWN = new Set(['time', 'level', 'msg', 'part', 'node_id', 'pid', 'hostname', 'v']);

const pad = (value: number, width = 2): string => String(value).padStart(width, '0');

function asctime(time: number): string {
  const d = new Date(time);
  if (Number.isNaN(d.getTime())) return '-';
  const date = `${pad(d.getFullYear(), 4)}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  return `${date} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())},${pad(d.getMilliseconds(), 3)}`;
}

function fieldValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (value !== null && typeof value === 'object' && typeof (value as { message?: unknown }).message === 'string') {
    // A serialized error: its type and message read better than the whole object (the stack stays in ?format=json).
    const { type, message } = value as { type?: unknown; message: string };
    return JSON.stringify(typeof type === 'string' ? `${type}: ${message}` : message);
  }
  return JSON.stringify(value) ?? String(value);
}

export function formatLogLine(entry: LogEntry): string {
  const name = typeof entry['part'] === 'string' ? `${LOGGER_NAME}.${entry['part']}` : LOGGER_NAME;
  const level = LEVEL_NAMES[entry.level] ?? `LEVEL ${entry.level}`;
  const fields = Object.entries(entry)
    .filter(([key, value]) => !SHOWN.has(key) && value !== undefined)
    .map(([key, value]) => `${key}=${fieldValue(value)}`);
  const message = [entry.msg ?? '', ...fields].filter((part) => part !== '').join(' ');
  return `${asctime(entry.time)} - ${name} - ${level} - ${message}`;
}
