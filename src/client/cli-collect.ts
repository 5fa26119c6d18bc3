import { resolve } from 'node:path';
import { brokerCredentials, brokerUrl, parseCommandArgs, UsageError, untilStopped } from './cli-broker.js';
import { createCollector, defaultCollectorName } from './collector.js';

export const COLLECT_USAGE = `camera-node collect --broker URL --out DIR [--name NAME] [options]

Runs unattended (systemd: deploy/camera-node-collector.service) and saves every image the fleet
delivers over MQTT, verified and fsynced, into DIR/<shot>/<node>/<file> (images of a capture command)
or DIR/<node>/<file> (timelapse). Each node gets a receipt once its image is safely on disk; until
then it keeps offering the image. The session is persistent (client id from --name), so what is
published while the collector restarts waits at the broker, and partial images survive a kill -9
(hidden in DIR/.partial/, completed after the restart). One line per image on stdout: time, node,
path, size, sha256. \`watch\` is the same command.

  --name NAME          this collector's name (default collector-<host>): client id, availability
                       (<prefix>/collectors/<NAME>/availability), reply_to and receipts
  --node ID            only images from this node (repeatable)
  --max-transfers N    images received at once (default 32); more wait their turn
  --session-expiry S   how long the broker keeps the session while away (MQTT 5; default 3600)
  --username, --password (or MQTT_USERNAME / MQTT_PASSWORD), --ca FILE, --prefix (default cameras)
`;

const positive = (flag: string, text: string | undefined, fallback: number): number => {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new UsageError(`--${flag} must be a positive integer, not '${text}'`);
  return value;
};

/** Runs until SIGINT/SIGTERM, or until `signal` aborts. */
export async function runCollect(argv: string[], signal?: AbortSignal): Promise<number> {
  const { values } = parseCommandArgs(argv, {
    out: { type: 'string' },
    name: { type: 'string' },
    node: { type: 'string', multiple: true },
    'max-transfers': { type: 'string' },
    'session-expiry': { type: 'string' },
  });
  if (values.help) {
    process.stdout.write(COLLECT_USAGE);
    return 0;
  }
  if (!values.out) throw new UsageError('--out DIR is required');
  const url = brokerUrl(values);
  const name = values.name ?? defaultCollectorName();
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) throw new UsageError(`--name must be 1-64 of A-Z a-z 0-9 _ . -, not '${name}'`);
  const prefix = values.prefix ?? 'cameras';
  const outDir = resolve(values.out);
  const line = (fields: object, message: string): string =>
    `${message}${Object.entries(fields)
      .map(([key, value]) => ` ${key}=${String(value)}`)
      .join('')}\n`;
  const collector = createCollector({
    url,
    outDir,
    name,
    prefix,
    maxTransfers: positive('max-transfers', values['max-transfers'], 32),
    sessionExpiryS: positive('session-expiry', values['session-expiry'], 3600),
    ...(values.node?.length ? { nodes: values.node } : {}),
    ...(await brokerCredentials(values)),
    logger: {
      info: (fields, message) => {
        if (message !== 'image received') process.stderr.write(line(fields, message));
      },
      warn: (fields, message) => process.stderr.write(line(fields, message)),
    },
  });
  collector.on('image', (image) =>
    process.stdout.write(`${new Date().toISOString()}\t${image.nodeId}\t${image.path}\t${image.size}\t${image.sha256}\n`),
  );
  const { stopped, release } = untilStopped(signal);
  try {
    await Promise.race([collector.start(), stopped]);
    process.stderr.write(`collector ${name} watching ${prefix}/+/images into ${outDir}; Ctrl-C to stop\n`);
    await stopped;
  } finally {
    release();
    await collector.stop();
  }
  return 0;
}
