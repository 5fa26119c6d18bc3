import { parseHaRemoveArgs, removeHaDiscovery } from '../ha/remove.js';
import { connectBroker, parseCommandArgs, UsageError } from './cli-broker.js';
import { CAPTURE_USAGE, runCapture } from './cli-capture.js';
import { COLLECT_USAGE, runCollect } from './cli-collect.js';
import { DASHBOARD_USAGE, runDashboard } from './cli-dashboard.js';
import { runStatus, STATUS_USAGE } from './cli-status.js';

import { type ClientCommand, isClientCommand } from './names.js';

export { CLIENT_COMMANDS, type ClientCommand } from './names.js';

const HA_REMOVE_USAGE = `camera-node ha-remove --broker URL (--node ID ... | --all) [--ha-prefix homeassistant]

Removes the Home Assistant entities of the nodes (empty retained discovery configs).
`;

async function runHaRemove(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseHaRemoveArgs>;
  try {
    parsed = parseHaRemoveArgs(argv);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { nodeIds, all, rest } = parsed;
  const { values } = parseCommandArgs(rest, { 'ha-prefix': { type: 'string', default: 'homeassistant' } });
  if (values.help) {
    process.stdout.write(HA_REMOVE_USAGE);
    return 0;
  }
  if (!all && nodeIds.length === 0) throw new UsageError('name the nodes with --node ID or --all');
  const client = await connectBroker(values);
  try {
    const result = await removeHaDiscovery({ client, haPrefix: values['ha-prefix'] ?? 'homeassistant', nodeIds, all });
    process.stdout.write(`removed ${result.topics.length} discovery config(s) of ${result.nodeIds.join(', ') || 'no node'}\n`);
    return 0;
  } finally {
    await client.endAsync();
  }
}

const COMMANDS: Record<ClientCommand, { run: (argv: string[]) => Promise<number>; usage: string }> = {
  capture: { run: runCapture, usage: CAPTURE_USAGE },
  collect: { run: (argv) => runCollect(argv), usage: COLLECT_USAGE },
  // The earlier name of collect.
  watch: { run: (argv) => runCollect(argv), usage: COLLECT_USAGE },
  status: { run: runStatus, usage: STATUS_USAGE },
  dashboard: { run: (argv) => runDashboard(argv), usage: DASHBOARD_USAGE },
  'ha-remove': { run: runHaRemove, usage: HA_REMOVE_USAGE },
};

/**
 * The subcommands for people at a terminal, talking to a broker. Returns null when argv is not one
 * of them (then it is the daemon's own command line); else resolves with the exit code: 0 done,
 * 1 failed (a node failed or did not answer, the broker is unreachable), 2 a usage mistake.
 */
export function runClientCommand(argv: string[]): Promise<number> | null {
  const [name, ...rest] = argv;
  if (!isClientCommand(name)) return null;
  const { run, usage } = COMMANDS[name];
  return run(rest).catch((err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`camera-node ${name}: ${err.message}\n\n${usage}`);
      return 2;
    }
    process.stderr.write(`camera-node ${name}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  });
}
