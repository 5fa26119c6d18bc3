import { resolve } from 'node:path';
import { createReceiver } from './receiver.js';
import { connectBroker, parseCommandArgs, readRetained } from './connect.js';

export const WATCH_USAGE = `camera-node watch --broker URL --out DIR [--node ID ...]

Saves every image the fleet delivers over MQTT into DIR/<node>/<filename>, verified, until Ctrl-C.
`;

export const STATUS_USAGE = `camera-node status --broker URL [--json]

A table of the fleet from the retained availability and status topics.
`;

export async function runWatch(argv: string[], signal?: AbortSignal): Promise<number> {
  const { values } = parseCommandArgs(argv, { out: { type: 'string' }, node: { type: 'string', multiple: true } });
  if (values.help || !values.out) {
    process.stdout.write(WATCH_USAGE);
    return values.help ? 0 : 2;
  }
  const client = await connectBroker(values);
  const receiver = createReceiver({
    client,
    prefix: values.prefix ?? 'cameras',
    outDir: resolve(values.out),
    ...(values.node?.length ? { nodes: values.node } : {}),
    onImage: (image) => process.stdout.write(`${new Date().toISOString()}\t${image.nodeId}\t${image.path}\t${image.size}\t${image.sha256}\n`),
    onError: ({ nodeId, filename, message }) => process.stderr.write(`${nodeId}: ${filename}: ${message}\n`),
  });
  await receiver.start();
  process.stderr.write(`watching ${values.prefix ?? 'cameras'}/+/images on ${values.broker ?? process.env['MQTT_URL']}; Ctrl-C to stop\n`);
  await new Promise<void>((resolveStop) => {
    const stop = (): void => resolveStop();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    signal?.addEventListener('abort', stop, { once: true });
  });
  await receiver.stop();
  await client.endAsync();
  return 0;
}

interface FleetRow {
  node: string;
  availability: string;
  status: string;
  camera: string;
  images: number | string;
  used_mb: number | string;
  temp_c: number | string;
  version: string;
}

export async function fleetStatus(argv: string[]): Promise<FleetRow[]> {
  const { values } = parseCommandArgs(argv, { json: { type: 'boolean' } });
  const prefix = values.prefix ?? 'cameras';
  const client = await connectBroker(values);
  try {
    const retained = await readRetained(client, `${prefix}/+/+`);
    const level = prefix.split('/').length;
    const rows = new Map<string, FleetRow>();
    const row = (node: string): FleetRow => {
      const existing = rows.get(node);
      if (existing) return existing;
      const fresh: FleetRow = { node, availability: '?', status: '?', camera: '?', images: '?', used_mb: '?', temp_c: '?', version: '?' };
      rows.set(node, fresh);
      return fresh;
    };
    for (const [topic, payload] of retained) {
      const parts = topic.split('/');
      const node = parts[level] ?? '';
      if (parts[level + 1] === 'availability') row(node).availability = payload.toString();
      if (parts[level + 1] !== 'status') continue;
      try {
        const status = JSON.parse(payload.toString()) as {
          status: string;
          version: string;
          camera: { connected: boolean; sensor: string | null; simulated: boolean };
          storage: { image_count: number; used_mb: number };
          system: { cpu_temperature: number | null };
        };
        Object.assign(row(node), {
          status: status.status,
          camera: status.camera.connected ? `${status.camera.sensor ?? '?'}${status.camera.simulated ? ' (sim)' : ''}` : 'none',
          images: status.storage.image_count,
          used_mb: status.storage.used_mb,
          temp_c: status.system.cpu_temperature ?? '-',
          version: status.version,
        });
      } catch {
        row(node).status = 'unreadable';
      }
    }
    return [...rows.values()].sort((a, b) => a.node.localeCompare(b.node));
  } finally {
    await client.endAsync();
  }
}

export async function runStatus(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, { json: { type: 'boolean' } });
  if (values.help) {
    process.stdout.write(STATUS_USAGE);
    return 0;
  }
  const rows = await fleetStatus(argv);
  if (values.json) {
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return 0;
  }
  const header = ['node', 'availability', 'status', 'camera', 'images', 'used_mb', 'temp_c', 'version'] as const;
  const cells = [header.map(String), ...rows.map((r) => header.map((key) => String(r[key])))];
  const widths = header.map((_, i) => Math.max(...cells.map((c) => (c[i] ?? '').length)));
  for (const line of cells) process.stdout.write(`${line.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd()}\n`);
  if (rows.length === 0) process.stdout.write('(no node has published under this prefix)\n');
  return 0;
}
