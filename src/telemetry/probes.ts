import { readdir, readFile, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import os from 'node:os';
import type { DiskReading, MemoryReading, TelemetryProbes, WirelessReading } from './types.js';

/** Where a Raspberry Pi (and most Linux boards) exposes the SoC temperature, in millidegrees. */
export const DEFAULT_THERMAL_ZONE = '/sys/class/thermal/thermal_zone0/temp';

const round1 = (value: number): number => Math.round(value * 10) / 10;

/** Degrees Celsius from a thermal zone file; null when the file is missing or holds no number. */
export async function readThermalZone(path: string): Promise<number | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ENODATA' || code === 'EINVAL') return null;
    throw err;
  }
  const milli = Number(text.trim());
  return text.trim() !== '' && Number.isFinite(milli) ? round1(milli / 1000) : null;
}

/** statfs is one system call, where systeminformation's fsSize runs `df` for every mount. */
export async function readDisk(path: string): Promise<DiskReading> {
  const fs = await statfs(path);
  const totalBytes = fs.blocks * fs.bsize;
  const usedBytes = (fs.blocks - fs.bfree) * fs.bsize;
  const freeBytes = fs.bavail * fs.bsize;
  const usable = usedBytes + freeBytes;
  return { totalBytes, freeBytes, usedPercent: usable > 0 ? round1((usedBytes / usable) * 100) : 0 };
}

/**
 * MemTotal and MemAvailable from /proc/meminfo (what `free` shows as total and available); where
 * there is no such file (not Linux), Node's own figures.
 */
export async function readMemory(path = '/proc/meminfo'): Promise<MemoryReading> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    return { totalBytes: os.totalmem(), availableBytes: os.freemem() };
  }
  const kib = (field: string): number | null => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(text);
    return match ? Number(match[1]) * 1024 : null;
  };
  const total = kib('MemTotal');
  const available = kib('MemAvailable');
  if (total === null || available === null) throw new Error(`${path} has no MemTotal or MemAvailable`);
  return { totalBytes: total, availableBytes: available };
}

/** Where Linux lists wireless interfaces and their link statistics (Wireless Extensions). */
export const DEFAULT_WIRELESS = '/proc/net/wireless';
/** cfg80211 (the Pi's brcmfmac among others) reports link quality out of 70, as `iwconfig` shows it. */
const LINK_QUALITY_MAX = 70;

/**
 * The first wireless interface's link quality and signal level from /proc/net/wireless; null
 * without one (a wired or a headless-radio machine). The kernel writes one line per interface:
 *   ` wlan0: 0000   56.  -54.  -256        0      0      0      0      0        0`
 * (status, then link quality, signal level and noise; a trailing dot marks an updated value). A
 * level above 63 is an 8-bit unsigned dBm from an old driver; noise -256 (or 0) means unknown.
 */
export async function readWireless(path = DEFAULT_WIRELESS): Promise<WirelessReading | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw err;
  }
  for (const line of text.split('\n')) {
    const match = /^\s*([^\s:|]+):\s+[0-9a-f]+\s+(-?\d+)\.?\s+(-?\d+)\.?\s+(-?\d+)\.?/.exec(line);
    if (!match) continue;
    const [, name = '', link = '0', level = '0', noise = '0'] = match;
    const dbm = (value: number): number => (value > 63 ? value - 256 : value);
    const noiseDbm = Number(noise) === -256 || Number(noise) === 0 ? null : dbm(Number(noise));
    return {
      interface: name,
      link_quality: Number(link),
      link_quality_percent: Math.round((Math.min(Number(link), LINK_QUALITY_MAX) / LINK_QUALITY_MAX) * 100),
      signal_dbm: dbm(Number(level)),
      noise_dbm: noiseDbm,
    };
  }
  return null;
}

/**
 * The temperature probe. With an explicit path only that file counts (a test's fake zone, or another
 * zone on a board that numbers them differently). Without one, the Pi's zone is read; where it does
 * not exist (other machines), the first hardware monitor's temperature input, found once: a machine
 * does not grow a sensor, so one found missing is not looked for again.
 */
export function temperatureProbe(thermalZonePath: string | undefined, hwmonDir = '/sys/class/hwmon'): () => Promise<number | null> {
  if (thermalZonePath !== undefined) return () => readThermalZone(thermalZonePath);
  let fallback: Promise<string | null> | null = null;
  return async () => {
    const zone = await readThermalZone(DEFAULT_THERMAL_ZONE);
    if (zone !== null) return zone;
    fallback ??= findHwmonInput(hwmonDir);
    const input = await fallback;
    return input === null ? null : readThermalZone(input);
  };
}

/** The first `temp1_input` of /sys/class/hwmon/hwmon* (millidegrees, like a thermal zone); null when none. */
async function findHwmonInput(dir: string): Promise<string | null> {
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch {
    return null;
  }
  for (const name of names) {
    const input = join(dir, name, 'temp1_input');
    if ((await readThermalZone(input)) !== null) return input;
  }
  return null;
}

export function systemProbes(thermalZonePath: string | undefined, wirelessPath = DEFAULT_WIRELESS): TelemetryProbes {
  return {
    memory: () => readMemory(),
    disk: readDisk,
    temperature: temperatureProbe(thermalZonePath),
    wireless: () => readWireless(wirelessPath),
  };
}

/** Busy and total CPU time over all cores, from the kernel's counters. */
export interface CpuTimes {
  busy: number;
  total: number;
}

export function readCpuTimes(): CpuTimes {
  let busy = 0;
  let total = 0;
  for (const { times } of os.cpus()) {
    const sum = times.user + times.nice + times.sys + times.irq + times.idle;
    total += sum;
    busy += sum - times.idle;
  }
  return { busy, total };
}

/** CPU use between two readings, in percent of all cores (since boot when there is no earlier reading). */
export function cpuPercent(previous: CpuTimes | null, current: CpuTimes): number {
  const busy = current.busy - (previous?.busy ?? 0);
  const total = current.total - (previous?.total ?? 0);
  return total > 0 ? round1(Math.min(100, Math.max(0, (busy / total) * 100))) : 0;
}
