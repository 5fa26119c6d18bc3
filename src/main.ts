#!/usr/bin/env node
import { isClientCommand } from './client/names.js';
import { ConfigError, configHelp, loadConfig } from './config/config.js';
import { createNode, VERSION } from './node.js';

// Built only for --help: the option list is read from the config schema.
const usage = (): string => `camera-node ${VERSION}: a Raspberry Pi camera node for an MQTT fleet.

Usage:
  camera-node [--config FILE] [options]     run the node (HTTP API + MQTT)
  camera-node capture --broker URL (--node ID | --all | --group NAME) [--out DIR] [--at +2s]
                                            capture on the fleet, wait for replies and images
  camera-node watch --broker URL --out DIR  save every image the fleet delivers
  camera-node status --broker URL [--json]  a table of the fleet
  camera-node dashboard --broker URL [--port 8080] [--out DIR]
                                            a web page for the whole fleet
  camera-node ha-remove --broker URL (--node ID | --all)
                                            remove Home Assistant entities
  camera-node --help | --version

Every option can also be set as an environment variable (shown under it) or as a key of the JSON
config file (the option name with underscores). Precedence: options > environment > file > defaults.

Options:
  --config <file>
      CONFIG_FILE. JSON config file, validated against schemas/config.schema.json.
${configHelp()}
`;

async function runDaemon(argv: string[]): Promise<number> {
  const config = await loadConfig({ argv, env: process.env });
  const node = createNode(config);

  let stopping = false;
  let onStopped: (code: number) => void = () => undefined;
  const stopped = new Promise<number>((resolveStopped) => {
    onStopped = resolveStopped;
  });
  const shutdown = (signal: string) => {
    if (stopping) {
      // A second signal means "now": the operator has given up waiting.
      process.stderr.write(`camera-node: ${signal} again, exiting at once\n`);
      process.exit(1);
    }
    stopping = true;
    process.stderr.write(`camera-node: ${signal} received, stopping\n`);
    node.stop().then(
      () => onStopped(0),
      () => onStopped(1),
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('unhandledRejection', (reason) => {
    // A bug, not bad input: keep serving, but make it loud.
    process.stderr.write(`camera-node: unhandled promise rejection: ${reason instanceof Error ? reason.stack : String(reason)}\n`);
  });

  await node.start();
  return stopped;
}

async function main(argv: string[]): Promise<number> {
  // The fleet commands (and the MQTT client they need) are loaded only when one is asked for.
  if (isClientCommand(argv[0])) {
    const { runClientCommand } = await import('./client/cli.js');
    const client = runClientCommand(argv);
    if (client) return client;
  }
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(usage());
    return 0;
  }
  if (argv.includes('--version')) {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  return runDaemon(argv);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`camera-node: ${err.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`camera-node: failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
