import type { StillSettings } from './settings.js';

/**
 * File names as rpicam-still makes them (`generate_filename`): `-o` is a printf format given the
 * frame counter, or with `--datetime`/`--timestamp` a prefix for a time-based name; the result is
 * formatted into a 128-byte buffer, so anything past 127 bytes is silently cut off.
 */

const NAME_BUFFER_BYTES = 128;

/** The integer conversions the apps' names use (`%d`, `%04d`, `%6d`, `%u`…) and `%%`; anything else stays as written. */
export function formatCounter(format: string, counter: number): string {
  return format.replace(/%(%|(0?)(\d*)[diu])/g, (_whole, body: string, zero: string, width: string) => {
    if (body === '%') return '%';
    const text = String(counter);
    const size = width === '' ? 0 : Number(width);
    return text.padStart(size, zero === '0' ? '0' : ' ');
  });
}

function truncateBytes(text: string, bytes: number): string {
  const buf = Buffer.from(text);
  return buf.length <= bytes ? text : buf.subarray(0, bytes).toString();
}

const pad2 = (n: number): string => String(n).padStart(2, '0');

export function outputName(settings: StillSettings, counter: number, now: Date): string | null {
  if (settings.output === undefined || settings.output === '') return null;
  let name: string;
  if (settings.datetime) {
    const stamp = `${pad2(now.getMonth() + 1)}${pad2(now.getDate())}${pad2(now.getHours())}${pad2(now.getMinutes())}${pad2(now.getSeconds())}`;
    name = `${settings.output}${stamp}.${settings.encoding}`;
  } else if (settings.timestamp) {
    name = `${settings.output}${Math.floor(now.getTime() / 1000)}.${settings.encoding}`;
  } else {
    name = formatCounter(settings.output, counter);
  }
  return truncateBytes(name, NAME_BUFFER_BYTES - 1);
}

/** The DNG's name: everything from the last `.` replaced by `.dng` (appended when there is none). */
export function dngName(output: string): string {
  const dot = output.lastIndexOf('.');
  return `${dot === -1 ? output : output.slice(0, dot)}.dng`;
}
