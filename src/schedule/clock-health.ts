import { execa } from 'execa';
import type { Logger } from 'pino';
import { findOnPath } from '../camera/backend.js';

/**
 * Whether this machine's clock is synchronised, for telemetry and the status: a fleet fires
 * scheduled captures on each node's own clock, so a node whose clock drifts fires at the wrong
 * instant, and only the node can tell. Read from chrony (`chronyc -c tracking`: sync state,
 * reference, offset) where it runs, else from systemd (`timedatectl show`: sync state only), else
 * unknown (nulls).
 */
export interface ClockHealth {
  /** null when nothing on the machine can tell. */
  synchronized: boolean | null;
  /** What answered: `chrony` or `timedatectl`; null when nothing did. */
  source: 'chrony' | 'timedatectl' | null;
  /** The reference chrony follows (address or name); null when unknown. */
  server: string | null;
  /** This clock minus the reference in ms (positive: ahead); chrony only. */
  offset_ms: number | null;
  /** When this was read (ISO 8601); null before the first reading. */
  checked_at: string | null;
}

export interface ClockMonitorOptions {
  intervalMs: number;
  logger: Logger;
  /** PATH to look for chronyc and timedatectl in (default: process PATH plus the sbin dirs). */
  searchPath?: string;
}

export interface ClockMonitor {
  /** Takes a first reading, then reads again every interval in the background. */
  start(): Promise<void>;
  stop(): Promise<void>;
  snapshot(): ClockHealth;
}

/** Sync state changes slowly; once a minute costs one short process run. */
export const CLOCK_CHECK_INTERVAL_MS = 60_000;

/** A chronyc or timedatectl that does not answer in this long is taken as not answering. */
const TOOL_TIMEOUT_MS = 3000;
const UNKNOWN: Omit<ClockHealth, 'checked_at'> = { synchronized: null, source: null, server: null, offset_ms: null };
/** chrony's reference id while it follows no source (or only its own `local` clock). */
const UNSYNCED_REF_IDS = new Set(['00000000', '7F7F0101']);

/**
 * One line of `chronyc -n -c tracking`: reference id, reference address, stratum, reference time,
 * current correction (s, positive = the system clock is slow), …, leap status last.
 */
export function parseChronyTracking(csv: string): Omit<ClockHealth, 'checked_at'> | null {
  const fields = csv.trim().split('\n')[0]?.split(',') ?? [];
  if (fields.length < 6) return null;
  const [refId = '', server = '', stratumText = '', , correctionText = ''] = fields;
  const leap = fields.at(-1)?.trim() ?? '';
  const stratum = Number(stratumText);
  const correction = Number(correctionText);
  const synchronized = leap !== 'Not synchronised' && !UNSYNCED_REF_IDS.has(refId.toUpperCase()) && stratum > 0 && stratum < 16;
  return {
    synchronized,
    source: 'chrony',
    server: server === '' ? null : server,
    offset_ms: Number.isFinite(correction) ? Math.round(-correction * 1e6) / 1e3 : null,
  };
}

/** `timedatectl show --property=NTPSynchronized --value`: `yes` or `no`. */
export function parseTimedatectl(value: string): boolean | null {
  const answer = value.trim();
  if (answer === 'yes') return true;
  if (answer === 'no') return false;
  return null;
}

async function run(file: string, args: string[]): Promise<string | null> {
  const result = await execa(file, args, { reject: false, timeout: TOOL_TIMEOUT_MS, stdin: 'ignore', env: { LC_ALL: 'C' } });
  return result.exitCode === 0 ? result.stdout : null;
}

export function createClockMonitor(options: ClockMonitorOptions): ClockMonitor {
  const logger = options.logger.child({ part: 'clock' });
  const searchPath = options.searchPath ?? [process.env['PATH'] ?? '', '/usr/sbin', '/sbin', '/usr/bin', '/bin'].join(':');
  let current: ClockHealth = { ...UNKNOWN, checked_at: null };
  let timer: NodeJS.Timeout | null = null;
  let reading: Promise<void> | null = null;
  let running = false;
  let lastSynchronized: boolean | null | undefined;

  async function read(): Promise<Omit<ClockHealth, 'checked_at'>> {
    const chronyc = await findOnPath('chronyc', searchPath);
    if (chronyc) {
      const parsed = parseChronyTracking((await run(chronyc, ['-n', '-c', 'tracking'])) ?? '');
      if (parsed) return parsed;
    }
    const timedatectl = await findOnPath('timedatectl', searchPath);
    if (timedatectl) {
      // Without systemd running it fails: that says nothing about the clock.
      const synchronized = parseTimedatectl((await run(timedatectl, ['show', '--property=NTPSynchronized', '--value'])) ?? '');
      if (synchronized !== null) return { ...UNKNOWN, synchronized, source: 'timedatectl' };
    }
    return UNKNOWN;
  }

  function sample(): Promise<void> {
    reading = read()
      .then(
        (health) => {
          current = { ...health, checked_at: new Date().toISOString() };
          if (health.synchronized !== lastSynchronized) {
            const level = health.synchronized === false ? 'warn' : 'info';
            const message =
              health.synchronized === null
                ? 'clock synchronisation unknown'
                : health.synchronized
                  ? 'clock synchronised'
                  : 'clock not synchronised: scheduled captures will fire off time';
            logger[level]({ ...health }, message);
            lastSynchronized = health.synchronized;
          }
        },
        (err: unknown) => logger.debug({ err }, 'clock check failed'),
      )
      .finally(() => {
        reading = null;
        if (running) {
          timer = setTimeout(() => void sample(), options.intervalMs);
          timer.unref();
        }
      });
    return reading;
  }

  return {
    async start() {
      if (running) return;
      running = true;
      await sample();
    },
    async stop() {
      running = false;
      if (timer) clearTimeout(timer);
      timer = null;
      await reading;
    },
    snapshot: () => ({ ...current }),
  };
}
