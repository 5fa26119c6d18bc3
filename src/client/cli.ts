import { removeHaDiscovery, parseHaRemoveArgs } from '../ha/remove.js';
import { CAPTURE_USAGE, runCapture } from './capture.js';
import { connectBroker, parseCommandArgs, UsageError } from './connect.js';
import { runStatus, runWatch } from './watch-status.js';

export const CLIENT_COMMANDS = ['capture', 'watch', 'status', 'ha-remove'] as const;

async function runHaRemove(argv: string[]): Promise<number> {
  const { nodeIds, all, rest } = parseHaRemoveArgs(argv);
  const { values } = parseCommandArgs(rest, { 'ha-prefix': { type: 'string', default: 'homeassistant' } });
  if (values.help || (!all && nodeIds.length === 0)) {
    process.stdout.write('camera-node ha-remove --broker URL (--node ID ... | --all) [--ha-prefix homeassistant]\n\nRemoves the Home Assistant entities of the nodes (empty retained discovery configs).\n');
    return values.help ? 0 : 2;
  }
  const client = await connectBroker(values);
  try {
    const result = await removeHaDiscovery({ client, haPrefix: values['ha-prefix'] ?? 'homeassistant', nodeIds, all });
    process.stdout.write(`removed ${result.topics.length} discovery config(s) of ${result.nodeIds.join(', ') || 'no node'}\n`);
    return 0;
  } finally {
    await client.endAsync();
  }
}

/**
 * The subcommands for people at a terminal, talking to a broker. Returns null when argv is not one
 * of them (then it is the daemon's own command line).
 */
export function runClientCommand(argv: string[]): Promise<number> | null {
  const [name, ...rest] = argv;
  const run = { capture: runCapture, watch: runWatch, status: runStatus, 'ha-remove': runHaRemove }[name ?? ''];
  if (!run) return null;
  return run(rest).catch((err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`camera-node ${name}: ${err.message}\n${name === 'capture' ? CAPTURE_USAGE : ''}`);
      return 2;
    }
    process.stderr.write(`camera-node ${name}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  });
}
