import { resolve } from 'node:path';
import { connectBroker, parseCommandArgs, UsageError } from './cli-broker.js';
import { createReceiver } from './receiver.js';

export const WATCH_USAGE = `camera-node watch --broker URL --out DIR [--node ID ...]

Saves every image the fleet delivers over MQTT into DIR/<node>/<filename>, verified, until Ctrl-C.
One line per image on stdout: time, node, path, size, sha256.
`;

/** Runs until SIGINT/SIGTERM, or until `signal` aborts. */
export async function runWatch(argv: string[], signal?: AbortSignal): Promise<number> {
  const { values } = parseCommandArgs(argv, { out: { type: 'string' }, node: { type: 'string', multiple: true } });
  if (values.help) {
    process.stdout.write(WATCH_USAGE);
    return 0;
  }
  if (!values.out) throw new UsageError('--out DIR is required');
  const prefix = values.prefix ?? 'cameras';
  const client = await connectBroker(values);
  const receiver = createReceiver({
    client,
    prefix,
    outDir: resolve(values.out),
    ...(values.node?.length ? { nodes: values.node } : {}),
    onImage: (image) =>
      process.stdout.write(`${new Date().toISOString()}\t${image.nodeId}\t${image.path}\t${image.size}\t${image.sha256}\n`),
    onError: ({ nodeId, filename, message }) => process.stderr.write(`${nodeId}: ${filename}: ${message}\n`),
  });
  let stop = (): void => undefined;
  const stopped = new Promise<void>((resolveStop) => {
    stop = resolveStop;
  });
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  signal?.addEventListener('abort', stop, { once: true });
  try {
    await receiver.start();
    process.stderr.write(`watching ${prefix}/+/images; Ctrl-C to stop\n`);
    await stopped;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    signal?.removeEventListener('abort', stop);
    await receiver.stop();
    await client.endAsync();
  }
  return 0;
}
