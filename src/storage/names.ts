import { NodeError } from '../errors.js';

/**
 * Image file names: `capture_YYYYMMDD_HHMMSS.dng` in the local time of the capture (the seed's
 * names), with a zero-padded sequence for further captures in the same second:
 * `capture_20261125_101500.dng`, `capture_20261125_101500_001.dng`, `..._002.dng`.
 *
 * The padding keeps a plain byte-order sort of the names (`ls` in the C locale, `Array#sort`)
 * chronological: `.` (0x2E) sorts before `_` (0x5F), so the first capture of a second comes before
 * its `_001`, and equal widths sort numerically. Several captures in one second do not happen on
 * real hardware, but fast simulated cameras and clocks set back by NTP can get there.
 */

/** Highest sequence number within one second; a bound keeps names (and the validator) finite. */
export const MAX_SEQUENCE = 999;

/** Longer than any name the node produces (36 characters); checked before the regex runs. */
const MAX_NAME_LENGTH = 64;

/** Only names `imageName()` can produce: no separators, no dots but the extension, fixed shape. */
const IMAGE_NAME = /^capture_(\d{4})(\d{2})(\d{2})_(\d{2})(\d{2})(\d{2})(?:_(\d{3}))?\.dng$/;

/**
 * Not 1970: a Pi without a real-time clock can boot at the epoch, which is 1969 in local time west
 * of Greenwich, and an image named then must still be found, listed and evicted after a restart.
 */
const EARLIEST_YEAR = 1900;

export interface ParsedImageName {
  /** `capture_YYYYMMDD_HHMMSS`: the part shared by every capture of the same second. */
  stem: string;
  /** 0 for the first capture of its second, then 1, 2, ... */
  sequence: number;
  /** The capture's second as a local time; sub-second precision is not in the name. */
  takenAt: Date;
}

const pad = (value: number, width: number): string => String(value).padStart(width, '0');

/** The name part shared by every capture taken in the same local-time second as `date`. */
export function imageStem(date: Date): string {
  if (Number.isNaN(date.getTime()) || date.getFullYear() < EARLIEST_YEAR || date.getFullYear() > 9999) {
    throw new RangeError(`imageStem: date outside the years ${EARLIEST_YEAR} to 9999`);
  }
  const day = `${pad(date.getFullYear(), 4)}${pad(date.getMonth() + 1, 2)}${pad(date.getDate(), 2)}`;
  const time = `${pad(date.getHours(), 2)}${pad(date.getMinutes(), 2)}${pad(date.getSeconds(), 2)}`;
  return `capture_${day}_${time}`;
}

/** The file name for the `sequence`-th capture (0-based) of the second `stem` names. */
export function imageName(stem: string, sequence: number): string {
  if (!Number.isInteger(sequence) || sequence < 0 || sequence > MAX_SEQUENCE) {
    throw new RangeError(`imageName: sequence must be an integer from 0 to ${MAX_SEQUENCE}`);
  }
  return sequence === 0 ? `${stem}.dng` : `${stem}_${pad(sequence, 3)}.dng`;
}

const daysInMonth = (year: number, month: number): number => new Date(Date.UTC(year, month, 0)).getUTCDate();

/**
 * Parses a name the node could have produced; null for anything else. The date is checked as a
 * calendar date but not against the current time zone: a node whose zone changed must still
 * recognise (and so account for and evict) the images it stored before.
 */
export function parseImageName(name: unknown): ParsedImageName | null {
  if (typeof name !== 'string' || name.length > MAX_NAME_LENGTH) return null;
  const match = IMAGE_NAME.exec(name);
  if (!match) return null;
  const [, y, mo, d, h, mi, s, suffix] = match;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  if (year < EARLIEST_YEAR || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return null;
  if (hour > 23 || minute > 59 || second > 59) return null;
  const sequence = Number(suffix ?? 0);
  // `_000` is never produced: the first capture of a second has no suffix.
  if (suffix !== undefined && sequence === 0) return null;
  return {
    stem: name.slice(0, 'capture_YYYYMMDD_HHMMSS'.length),
    sequence,
    takenAt: new Date(year, month - 1, day, hour, minute, second),
  };
}

/**
 * The seed's `timestamp` of an image, `YYYYMMDD_HHMMSS`: the capture's second in the node's local
 * time, exactly as the name carries it (the seed built both from one local-time strftime).
 */
export function imageTimestamp(filename: string): string {
  const parsed = parseImageName(filename);
  if (!parsed) throw new RangeError(`imageTimestamp: not an image name: ${filename.slice(0, 80)}`);
  return parsed.stem.slice('capture_'.length);
}

export function isValidImageName(name: unknown): name is string {
  return parseImageName(name) !== null;
}

/** Returns the name when valid; otherwise throws invalid_filename (and nothing has touched a file). */
export function assertValidImageName(name: unknown): string {
  if (isValidImageName(name)) return name;
  // The rejected input goes into details, shortened: it is client input, possibly large or binary.
  const shown = typeof name === 'string' ? JSON.stringify(name.slice(0, 80)) : typeof name;
  throw new NodeError('invalid_filename', 'not an image filename this node produces (capture_YYYYMMDD_HHMMSS[_NNN].dng)', {
    details: { filename: shown },
  });
}
