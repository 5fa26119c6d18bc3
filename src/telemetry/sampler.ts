import os from 'node:os';
import type { Logger } from 'pino';
import { cpuPercent, type CpuTimes, readCpuTimes, systemProbes } from './probes.js';
import type { DiskReading, MemoryReading, SystemSnapshot, Telemetry, TelemetryOptions, WirelessReading } from './types.js';

const MIB = 1024 * 1024;
const DEFAULT_PROBE_TIMEOUT_MS = 5000;
const round1 = (value: number): number => Math.round(value * 10) / 10;

/** What a guarded probe yields when it failed, timed out, or is still busy with an earlier call. */
const NO_READING = Symbol('no reading');
type Guarded<T> = () => Promise<T | typeof NO_READING>;

/**
 * Wraps a probe so a sample never waits on it longer than `timeoutMs` and never calls it again while an
 * earlier call still hangs (a stuck statfs on a dead mount must not pile up calls every interval).
 * Failures are logged once per distinct message, then at debug, so a missing sensor does not flood.
 */
function guard<T>(name: string, run: () => Promise<T>, timeoutMs: number, logger: Logger): Guarded<T> {
  let inFlight = false;
  let lastProblem = '';
  const report = (problem: string, err?: unknown): void => {
    if (problem === lastProblem) logger.debug({ probe: name, err }, problem);
    else logger.warn({ probe: name, err }, problem);
    lastProblem = problem;
  };
  return async () => {
    if (inFlight) {
      report(`telemetry probe ${name} still busy: keeping its last reading`);
      return NO_READING;
    }
    inFlight = true;
    const call = Promise.resolve()
      .then(run)
      .finally(() => {
        inFlight = false;
      });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<typeof NO_READING>((resolve) => {
      timer = setTimeout(() => resolve(NO_READING), timeoutMs);
      timer.unref();
    });
    try {
      const result = await Promise.race([call, timeout]);
      if (result === NO_READING) report(`telemetry probe ${name} timed out after ${timeoutMs} ms`);
      else if (lastProblem !== '') {
        logger.info({ probe: name }, `telemetry probe ${name} recovered`);
        lastProblem = '';
      }
      return result;
    } catch (err) {
      report(`telemetry probe ${name} failed`, err);
      return NO_READING;
    } finally {
      clearTimeout(timer);
      // A call that outlives its timeout may still reject; it has been reported as a timeout already.
      call.catch(() => undefined);
    }
  };
}

/**
 * Samples the machine in the background so status requests never wait on the system. Each sample
 * starts only after the previous one has finished (a chained timer, not an interval), so samples
 * never overlap; a probe that fails or hangs keeps its last reading.
 *
 * CPU use is computed here from os.cpus() rather than with systeminformation's currentLoad, which keeps
 * its previous reading in module state shared by every caller in the process: two nodes in one
 * process would each see the other's window.
 */
export function createTelemetry(options: TelemetryOptions, parentLogger: Logger): Telemetry {
  const logger = parentLogger.child({ part: 'telemetry' });
  const timeoutMs = options.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
  const probes = { ...systemProbes(options.thermalZonePath, options.wirelessPath), ...options.probes };
  const memoryProbe = guard('memory', () => probes.memory(), timeoutMs, logger);
  const diskProbe = guard('disk', () => probes.disk(options.diskPath), timeoutMs, logger);
  const temperatureProbe = guard('temperature', () => probes.temperature(), timeoutMs, logger);
  const wirelessProbe = guard('wireless', () => probes.wireless(), timeoutMs, logger);

  let cpuTimes: CpuTimes | null = null;
  let cpu = 0;
  let memory: MemoryReading | null = null;
  let disk: DiskReading | null = null;
  let temperature: number | null = null;
  let wifi: WirelessReading | null = null;
  let sampledAt: string | null = null;

  let running = false;
  let timer: NodeJS.Timeout | null = null;
  let sampling: Promise<void> | null = null;

  async function sampleOnce(): Promise<void> {
    try {
      const times = readCpuTimes();
      cpu = cpuPercent(cpuTimes, times);
      cpuTimes = times;
    } catch (err) {
      logger.debug({ err }, 'CPU times unreadable');
    }
    const [memoryReading, diskReading, temperatureReading, wirelessReading] = await Promise.all([
      memoryProbe(),
      diskProbe(),
      temperatureProbe(),
      wirelessProbe(),
    ]);
    if (memoryReading !== NO_READING) memory = memoryReading;
    if (diskReading !== NO_READING) disk = diskReading;
    if (temperatureReading !== NO_READING) temperature = temperatureReading;
    if (wirelessReading !== NO_READING) wifi = wirelessReading;
    sampledAt = new Date().toISOString();
  }

  function runSample(): Promise<void> {
    sampling = sampleOnce().finally(() => {
      sampling = null;
      schedule();
    });
    return sampling;
  }

  function schedule(): void {
    if (!running) return;
    timer = setTimeout(() => {
      timer = null;
      void runSample();
    }, options.sampleIntervalMs);
    // Sampling alone must not keep the process alive.
    timer.unref();
  }

  function snapshot(): SystemSnapshot {
    return {
      cpu_percent: cpu,
      memory_percent: memory && memory.totalBytes > 0 ? round1(((memory.totalBytes - memory.availableBytes) / memory.totalBytes) * 100) : 0,
      disk_usage: disk?.usedPercent ?? 0,
      cpu_temperature: temperature,
      uptime: Math.round(os.uptime()),
    };
  }

  return {
    async start() {
      if (running) return;
      running = true;
      await runSample();
    },
    async stop() {
      running = false;
      if (timer) clearTimeout(timer);
      timer = null;
      // Probes are bounded by their timeout, so this wait is too.
      await sampling;
    },
    snapshot,
    details() {
      const [one = 0, five = 0, fifteen = 0] = os.loadavg().map((load) => Math.round(load * 100) / 100);
      return {
        ...snapshot(),
        load_average: [one, five, fifteen],
        memory_used_mb: memory ? round1((memory.totalBytes - memory.availableBytes) / MIB) : 0,
        memory_total_mb: memory ? round1(memory.totalBytes / MIB) : 0,
        disk_free_mb: disk ? round1(disk.freeBytes / MIB) : 0,
        disk_total_mb: disk ? round1(disk.totalBytes / MIB) : 0,
        process_rss_mb: round1(process.memoryUsage.rss() / MIB),
        sampled_at: sampledAt,
        wifi,
      };
    },
  };
}
