import type { MqttClient } from 'mqtt';
import { connectBroker, parseCommandArgs, readRetained } from './cli-broker.js';

export const STATUS_USAGE = `camera-node status --broker URL [--json]

A table of the fleet from the retained availability and status topics (--json: the rows as JSON).
`;

export interface FleetRow {
  node: string;
  availability: string;
  status: string;
  camera: string;
  images: number | string;
  used_mb: number | string;
  temp_c: number | string;
  version: string;
}

const COLUMNS = ['node', 'availability', 'status', 'camera', 'images', 'used_mb', 'temp_c', 'version'] as const;

interface RetainedStatus {
  status?: string;
  version?: string;
  camera?: { connected?: boolean; sensor?: string | null; simulated?: boolean };
  storage?: { image_count?: number; used_mb?: number };
  system?: { cpu_temperature?: number | null };
}

/** One row per node that has retained availability or status under the prefix, sorted by node id. */
export async function fleetStatus(client: MqttClient, prefix: string): Promise<FleetRow[]> {
  const retained = await readRetained(client, `${prefix}/+/+`);
  const level = prefix.split('/').length;
  const rows = new Map<string, FleetRow>();
  const row = (node: string): FleetRow => {
    let found = rows.get(node);
    if (!found) {
      found = { node, availability: '?', status: '?', camera: '?', images: '?', used_mb: '?', temp_c: '?', version: '?' };
      rows.set(node, found);
    }
    return found;
  };
  for (const [topic, payload] of retained) {
    const parts = topic.split('/');
    const node = parts[level] ?? '';
    const kind = parts[level + 1];
    if (kind === 'availability') row(node).availability = payload.toString();
    if (kind !== 'status') continue;
    let status: RetainedStatus;
    try {
      status = JSON.parse(payload.toString()) as RetainedStatus;
    } catch {
      row(node).status = 'unreadable';
      continue;
    }
    const camera = status.camera;
    Object.assign(row(node), {
      status: status.status ?? '?',
      camera: camera?.connected ? `${camera.sensor ?? '?'}${camera.simulated ? ' (sim)' : ''}` : 'none',
      images: status.storage?.image_count ?? '?',
      used_mb: status.storage?.used_mb ?? '?',
      temp_c: status.system?.cpu_temperature ?? '-',
      version: status.version ?? '?',
    });
  }
  return [...rows.values()].sort((a, b) => a.node.localeCompare(b.node));
}

export function formatTable(rows: FleetRow[]): string {
  const cells = [COLUMNS.map(String), ...rows.map((r) => COLUMNS.map((key) => String(r[key])))];
  const widths = COLUMNS.map((_, i) => Math.max(...cells.map((c) => (c[i] ?? '').length)));
  const lines = cells.map((line) =>
    line
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd(),
  );
  if (rows.length === 0) lines.push('(no node has published under this prefix)');
  return `${lines.join('\n')}\n`;
}

export async function runStatus(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, { json: { type: 'boolean' } });
  if (values.help) {
    process.stdout.write(STATUS_USAGE);
    return 0;
  }
  const client = await connectBroker(values);
  let rows: FleetRow[];
  try {
    rows = await fleetStatus(client, values.prefix ?? 'cameras');
  } finally {
    await client.endAsync();
  }
  process.stdout.write(values.json ? `${JSON.stringify(rows, null, 2)}\n` : formatTable(rows));
  return 0;
}
