import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { parseAt } from '../commands/schedule.js';
import { createReceiver, type ReceivedImage } from './receiver.js';
import { connectBroker, onlineNodes, parseCommandArgs, readRetained, UsageError } from './connect.js';

export const CAPTURE_USAGE = `camera-node capture --broker URL (--node ID ... | --all | --group NAME) [--out DIR] [options]

Sends one capture command and waits for every addressed node's reply (and, with --out, its image,
delivered over MQTT in chunks and verified). Exits 1 if any node fails or does not answer in time.

  --node ID          a node (repeatable)            --all        every node whose availability is online
  --group NAME       the online nodes in the group  --out DIR    receive the images into DIR/<node>/
  --at TIME          fire at TIME: +2s, +500ms, epoch ms or ISO 8601 (the whole fleet together)
  --count N          frames in a burst               --interval-ms MS   between burst frames
  --shutter-us US    exposure time                   --gain G     analogue gain
  --timeout S        give up after S seconds (default 60)
  --username, --password (or MQTT_USERNAME / MQTT_PASSWORD), --ca FILE, --prefix (default cameras)
`;

export interface CaptureOutcome {
  nodeId: string;
  reply: Record<string, unknown> | null;
  image: ReceivedImage | null;
}

async function targets(client: Parameters<typeof onlineNodes>[0], prefix: string, values: { node?: string[]; all?: boolean; group?: string }) {
  if (values.node?.length) return { topic: values.node.length === 1 ? `${prefix}/${values.node[0]}/cmd` : null, nodes: values.node };
  const online = await onlineNodes(client, prefix);
  if (values.all) return { topic: `${prefix}/all/cmd`, nodes: online };
  const group = values.group ?? '';
  const statuses = await readRetained(client, `${prefix}/+/status`);
  const members = online.filter((id) => {
    const status = statuses.get(`${prefix}/${id}/status`);
    try {
      return ((JSON.parse(status?.toString() ?? '{}') as { mqtt?: { groups?: string[] } }).mqtt?.groups ?? []).includes(group);
    } catch {
      return false;
    }
  });
  return { topic: `${prefix}/group/${group}/cmd`, nodes: members };
}

export async function runCapture(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, {
    node: { type: 'string', multiple: true },
    all: { type: 'boolean' },
    group: { type: 'string' },
    out: { type: 'string' },
    at: { type: 'string' },
    count: { type: 'string' },
    'interval-ms': { type: 'string' },
    'shutter-us': { type: 'string' },
    gain: { type: 'string' },
    timeout: { type: 'string', default: '60' },
  });
  if (values.help) {
    process.stdout.write(CAPTURE_USAGE);
    return 0;
  }
  const chosen = [values.node?.length ? 1 : 0, values.all ? 1 : 0, values.group ? 1 : 0].reduce((a, b) => a + b, 0);
  if (chosen !== 1) throw new UsageError('choose the nodes with exactly one of --node, --all or --group');
  const prefix = values.prefix ?? 'cameras';
  const numeric = (name: string, text: string | undefined): number | undefined => {
    if (text === undefined) return undefined;
    const value = Number(text);
    if (!Number.isFinite(value)) throw new UsageError(`--${name} must be a number, not '${text}'`);
    return value;
  };
  const id = `cli-${randomUUID()}`;
  const command: Record<string, unknown> = { id, action: 'capture' };
  if (values.out) command['deliver'] = 'mqtt';
  if (values.at) command['at'] = parseAt(values.at, Date.now());
  for (const [flag, key] of [['count', 'count'], ['interval-ms', 'interval_ms'], ['shutter-us', 'shutter_us'], ['gain', 'gain']] as const) {
    const value = numeric(flag, values[flag]);
    if (value !== undefined) command[key] = value;
  }
  const timeoutMs = (numeric('timeout', values.timeout) ?? 60) * 1000;

  const client = await connectBroker(values);
  const outcomes = new Map<string, CaptureOutcome>();
  let receiver: ReturnType<typeof createReceiver> | null = null;
  try {
    const { topic, nodes } = await targets(client, prefix, values);
    if (nodes.length === 0) throw new UsageError('no node is online for that selection');
    for (const nodeId of nodes) outcomes.set(nodeId, { nodeId, reply: null, image: null });
    const wantImage = (outcome: CaptureOutcome): boolean => Boolean(values.out) && outcome.reply?.['status'] === 'success';
    const complete = (): boolean => [...outcomes.values()].every((o) => o.reply !== null && (!wantImage(o) || o.image !== null));
    let finished!: () => void;
    const done = new Promise<void>((resolveDone) => {
      finished = resolveDone;
    });
    const check = (): void => {
      if (complete()) finished();
    };
    if (values.out) {
      receiver = createReceiver({
        client,
        prefix,
        outDir: resolve(values.out),
        nodes,
        onImage: (image) => {
          const outcome = outcomes.get(image.nodeId);
          if (!outcome || image.requestId !== id) return;
          outcome.image = image;
          process.stderr.write(`${image.nodeId}: saved ${image.path} (${image.size} bytes, sha256 verified)\n`);
          check();
        },
        onProgress: ({ nodeId, filename, received, chunks }) => {
          if (received === chunks || received % 16 === 0) process.stderr.write(`${nodeId}: ${filename} ${received}/${chunks} chunks\r`);
        },
        onError: ({ nodeId, filename, message }) => process.stderr.write(`${nodeId}: ${filename}: ${message}\n`),
      });
      await receiver.start();
    }
    client.on('message', (replyTopic, payload) => {
      if (!replyTopic.endsWith('/res')) return;
      let reply: Record<string, unknown>;
      try {
        reply = JSON.parse(payload.toString()) as Record<string, unknown>;
      } catch {
        return;
      }
      const outcome = outcomes.get(String(reply['node_id']));
      if (reply['id'] !== id || !outcome || outcome.reply) return;
      outcome.reply = reply;
      const error = reply['error'] as { code: string; message: string } | undefined;
      process.stderr.write(`${outcome.nodeId}: ${error ? `error ${error.code}: ${error.message}` : 'captured'}\n`);
      check();
    });
    await client.subscribeAsync(`${prefix}/+/res`, { qos: 1 });
    const payload = JSON.stringify(command);
    if (topic) await client.publishAsync(topic, payload, { qos: 1 });
    else for (const nodeId of nodes) await client.publishAsync(`${prefix}/${nodeId}/cmd`, payload, { qos: 1 });
    process.stderr.write(`capture ${id} sent to ${nodes.length} node(s): ${nodes.join(', ')}\n`);
    const timer = setTimeout(finished, timeoutMs);
    await done;
    clearTimeout(timer);
  } finally {
    await receiver?.stop();
    await client.endAsync();
  }
  let failed = 0;
  for (const outcome of outcomes.values()) {
    const info = outcome.reply?.['file_info'] as { filename?: string } | undefined;
    const ok = outcome.reply?.['status'] === 'success' && (!values.out || outcome.image !== null);
    if (!ok) failed += 1;
    const what = outcome.reply === null ? 'no reply' : ok ? (outcome.image?.path ?? info?.filename ?? 'ok') : outcome.image === null && outcome.reply['status'] === 'success' ? 'image not received' : 'failed';
    process.stdout.write(`${outcome.nodeId}\t${ok ? 'ok' : 'FAILED'}\t${what}\n`);
  }
  return failed === 0 ? 0 : 1;
}
