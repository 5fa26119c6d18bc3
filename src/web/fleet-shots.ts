import { hostname } from 'node:os';
import type { MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { type Collector, createCollector } from '../client/collector.js';
import { runShot, type ShotReport } from '../client/shot.js';
import type { RunShot } from './fleet.js';

export interface FleetShotsOptions {
  /** The dashboard's connection: commands go out and replies come back on it. */
  client: MqttClient;
  /** The broker, for the collector's own persistent session. */
  url: string;
  username?: string;
  password?: string;
  ca?: Buffer;
  prefix: string;
  outDir: string;
  /** The collector's name: its session, its availability, `reply_to` and receipts (default `dashboard-<host>`). */
  name?: string;
  logger: Logger;
  /** A report changed after its shot ended (an image that came late). */
  onReport?: (report: ShotReport) => void;
}

export interface FleetShots {
  start(): Promise<void>;
  stop(): Promise<void>;
  run: RunShot;
}

/** Not `collector-<host>`: a `camera-node collect` on the same machine keeps its own session. */
const defaultName = (): string => `dashboard-${hostname().replace(/[^A-Za-z0-9_.-]/g, '_')}`.slice(0, 64);

/**
 * Fleet capture for the dashboard: a collector receives the images into `DIR/<shot>/<node>/` (and
 * sends the receipts) for as long as the dashboard runs, so images that come after their shot ended
 * still land, and each shot is one capture command whose report ends up in `DIR/<shot>/shot.json`.
 */
export function createFleetShots(options: FleetShotsOptions): FleetShots {
  const collector: Collector = createCollector({
    url: options.url,
    outDir: options.outDir,
    name: options.name ?? defaultName(),
    prefix: options.prefix,
    ...(options.username !== undefined ? { username: options.username } : {}),
    ...(options.password !== undefined ? { password: options.password } : {}),
    ...(options.ca !== undefined ? { ca: options.ca } : {}),
    logger: options.logger.child({ part: 'collector' }),
  });
  const onReport = (report: ShotReport): void => options.onReport?.(report);
  return {
    async start() {
      collector.on('shot', onReport);
      await collector.start();
    },
    async stop() {
      collector.off('shot', onReport);
      await collector.stop();
    },
    run: (request) =>
      runShot(options.client, {
        prefix: options.prefix,
        target: request.target,
        ...(request.at === undefined ? {} : { at: request.at }),
        ...(request.count === undefined ? {} : { count: request.count }),
        ...(request.interval_ms === undefined ? {} : { interval_ms: request.interval_ms }),
        deliver: 'mqtt',
        timeoutMs: request.timeoutMs,
        requester: collector.name,
        outDir: options.outDir,
        images: collector,
      }),
  };
}
