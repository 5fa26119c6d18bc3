import { readFile, statfs } from 'node:fs/promises';
import os from 'node:os';
import si from 'systeminformation';
import type { DiskReading, MemoryReading, TelemetryProbes } from './types.js';

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

export async function readMemory(): Promise<MemoryReading> {
  const mem = await si.mem();
  return { totalBytes: mem.total, availableBytes: mem.available };
}

/**
 * The temperature probe. With an explicit path only that file counts (a test's fake zone, or another
 * zone on a board that numbers them differently). Without one, the Pi's zone is read, and only where it
 * does not exist is systeminformation asked; once it has answered "no sensor" it is not asked again,
 * since a machine does not grow one and the fallback can spawn helper programs.
 */
export function temperatureProbe(thermalZonePath: string | undefined): () => Promise<number | null> {
  if (thermalZonePath !== undefined) return () => readThermalZone(thermalZonePath);
  let fallbackHasSensor = true;
  return async () => {
    const zone = await readThermalZone(DEFAULT_THERMAL_ZONE);
    if (zone !== null || !fallbackHasSensor) return zone;
    const { main } = await si.cpuTemperature();
    if (typeof main === 'number' && Number.isFinite(main) && main > -273) return round1(main);
    fallbackHasSensor = false;
    return null;
  };
}

export function systemProbes(thermalZonePath: string | undefined): TelemetryProbes {
  return { memory: readMemory, disk: readDisk, temperature: temperatureProbe(thermalZonePath) };
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
