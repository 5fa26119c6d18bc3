import { readdir, readFile } from 'node:fs/promises';
import type { WarmCameraOptions } from '../../src/camera/warm.js';

/** The warm camera on the simulator, starting at once and never probing: the options the warm tests share. */
export const SIMULATED_WARM = {
  backend: 'simulated',
  captureTimeoutMs: 15_000,
  immediate: true,
  cameraIndex: 0,
  probeIntervalMs: 0,
} as const satisfies Partial<WarmCameraOptions>;

/** Pids of live processes with an argument containing `text` (the warm dir names its app). */
export async function processesWithArgument(text: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if ((await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0').some((arg) => arg.includes(text))) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}
