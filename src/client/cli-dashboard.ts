import { resolve } from 'node:path';
import pino from 'pino';
import { createFleetDashboard, type FleetDashboard } from '../web/fleet.js';
import { createFleetShots } from '../web/fleet-shots.js';
import { brokerCredentials, brokerUrl, connectBroker, parseCommandArgs, UsageError, untilStopped } from './cli-broker.js';

export const DASHBOARD_USAGE = `camera-node dashboard --broker URL [--port 8080] [--out DIR] [--host 127.0.0.1]

Serves one web page for the whole fleet, live from this MQTT connection: every node's availability,
status, temperature, storage, clock and latest preview, fleet capture (all nodes, a group or a
selection, with --at and bursts) and the shot reports with their images (collected into DIR).
Runs until Ctrl-C.

  --port N       HTTP port (default 8080; 0 picks a free one)
  --host ADDR    address to listen on (default 127.0.0.1: this machine only). Another address
                 lets others on the network drive the fleet: give it a --token
  --token T      ask every browser for this token (or DASHBOARD_TOKEN)
  --out DIR      where shots are collected and their reports read (default ./shots)
  --name NAME    the collector's name, in receipts and reply topics (default dashboard-<host>)
  --username, --password (or MQTT_USERNAME / MQTT_PASSWORD), --ca FILE, --prefix (default cameras)
`;

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);
/** How long the MQTT client waits before reconnecting: the page stays up and says the data is stale meanwhile. */
const RECONNECT_MS = 5000;

/** Runs until SIGINT/SIGTERM, or until `signal` aborts; `onListening` hears the page's URL. */
export async function runDashboard(argv: string[], signal?: AbortSignal, onListening?: (url: string) => void): Promise<number> {
  const { values } = parseCommandArgs(argv, {
    port: { type: 'string', default: '8080' },
    host: { type: 'string', default: '127.0.0.1' },
    out: { type: 'string', default: 'shots' },
    token: { type: 'string' },
    name: { type: 'string' },
  });
  if (values.help) {
    process.stdout.write(DASHBOARD_USAGE);
    return 0;
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be a port number, not '${values.port}'`);
  const host = values.host ?? '127.0.0.1';
  const token = values.token ?? process.env['DASHBOARD_TOKEN'];
  if (!LOOPBACK.has(host) && !token)
    process.stderr.write(`warning: listening on ${host} without --token: anyone who can reach it can capture\n`);
  const logger = pino({ level: process.env['LOG_LEVEL'] ?? 'info' }, pino.destination(2));
  const prefix = values.prefix ?? 'cameras';
  const outDir = resolve(values.out ?? 'shots');
  const client = await connectBroker(values);
  // connectBroker is for one-shot commands; a dashboard outlives broker restarts.
  client.options.reconnectPeriod = RECONNECT_MS;
  let dashboard: FleetDashboard | null = null;
  const shots = createFleetShots({
    client,
    url: brokerUrl(values),
    ...(await brokerCredentials(values)),
    prefix,
    outDir,
    ...(values.name ? { name: values.name } : {}),
    logger,
    onReport: (report) => dashboard?.shotUpdated(report),
  });
  dashboard = createFleetDashboard({ client, prefix, outDir, host, port, ...(token ? { token } : {}), runShot: shots.run, logger });
  const { stopped, release } = untilStopped(signal);
  try {
    await shots.start();
    const url = await dashboard.start();
    process.stderr.write(`fleet dashboard on ${url}; Ctrl-C to stop\n`);
    onListening?.(url);
    await stopped;
  } finally {
    release();
    await dashboard.stop();
    await shots.stop();
    await client.endAsync();
  }
  return 0;
}
