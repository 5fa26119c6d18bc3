import { resolve } from 'node:path';
import type { MqttClient } from 'mqtt';
import { parseAt } from '../commands/schedule.js';
import { connectBroker, onlineNodes, parseCommandArgs, readRetained, speaksMqtt5, UsageError } from './cli-broker.js';
import { createReceiver, type ReceivedImage, type Receiver } from './receiver.js';
import { acceptReply, commandPayload, commandPublishProperties, newRequester, replyTopicFilter } from './request.js';

export const CAPTURE_USAGE = `camera-node capture --broker URL (--node ID ... | --all | --group NAME) [--out DIR] [options]

Sends one capture command and waits for every addressed node's reply and, with --out, its images
(delivered over MQTT in chunks, verified, saved as DIR/<node>/<filename>). Progress goes to stderr,
one line per node to stdout. Exits 1 if any node fails or does not answer in time.

  --node ID          a node (repeatable)            --all        every node whose availability is online
  --group NAME       the online nodes in the group  --out DIR    receive the images into DIR/<node>/
  --deliver HOW      mqtt (the default with --out), http (the node's UPLOAD_URL) or none
  --at TIME          fire at TIME: +2s, +500ms, epoch ms or ISO 8601 (the whole fleet together)
  --count N          frames in a burst               --interval-ms MS   between burst frames
  --shutter-us US    exposure time                   --gain G     analogue gain
  --timeout S        give up after S seconds (default 60)
  --username, --password (or MQTT_USERNAME / MQTT_PASSWORD), --ca FILE, --prefix (default cameras)
`;

interface Outcome {
  nodeId: string;
  reply: Record<string, unknown> | null;
  images: Map<string, ReceivedImage>;
}

interface Selection {
  node?: string[];
  all?: boolean;
  group?: string;
}

/** Where to publish the command and which nodes must answer it. */
async function selectNodes(client: MqttClient, prefix: string, selection: Selection): Promise<{ topics: string[]; nodes: string[] }> {
  if (selection.node?.length) return { topics: selection.node.map((id) => `${prefix}/${id}/cmd`), nodes: [...new Set(selection.node)] };
  const online = await onlineNodes(client, prefix);
  if (selection.all) return { topics: [`${prefix}/all/cmd`], nodes: online };
  const group = selection.group ?? '';
  const statuses = await readRetained(client, `${prefix}/+/status`);
  const members = online.filter((id) => {
    try {
      const status = JSON.parse(statuses.get(`${prefix}/${id}/status`)?.toString() ?? '{}') as { mqtt?: { groups?: string[] } };
      return (status.mqtt?.groups ?? []).includes(group);
    } catch {
      return false;
    }
  });
  return { topics: [`${prefix}/group/${group}/cmd`], nodes: members };
}

/** The files a successful capture reply announces: one, or every frame of a burst. */
function announcedFiles(reply: Record<string, unknown>): string[] {
  if (reply['status'] !== 'success') return [];
  const files = reply['files'];
  if (Array.isArray(files)) return files.map((file) => String((file as { filename?: unknown }).filename));
  const single = (reply['file_info'] as { filename?: unknown } | undefined)?.filename;
  return typeof single === 'string' ? [single] : [];
}

/** The capture's parameters from the command line. */
function captureParams(
  values: Record<string, string | boolean | string[] | undefined>,
  deliver: string | undefined,
): Record<string, unknown> {
  const command: Record<string, unknown> = {};
  if (deliver) command['deliver'] = deliver;
  if (typeof values['at'] === 'string') {
    try {
      command['at'] = parseAt(values['at'], Date.now());
    } catch (err) {
      throw new UsageError(`--at: ${(err as Error).message}`);
    }
  }
  for (const [flag, key] of [
    ['count', 'count'],
    ['interval-ms', 'interval_ms'],
    ['shutter-us', 'shutter_us'],
    ['gain', 'gain'],
  ] as const) {
    const text = values[flag];
    if (typeof text !== 'string') continue;
    const value = Number(text);
    if (text.trim() === '' || !Number.isFinite(value)) throw new UsageError(`--${flag} must be a number, not '${text}'`);
    command[key] = value;
  }
  return command;
}

export async function runCapture(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, {
    node: { type: 'string', multiple: true },
    all: { type: 'boolean' },
    group: { type: 'string' },
    out: { type: 'string' },
    deliver: { type: 'string' },
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
  const chosen = Number(Boolean(values.node?.length)) + Number(Boolean(values.all)) + Number(Boolean(values.group));
  if (chosen !== 1) throw new UsageError('choose the nodes with exactly one of --node, --all or --group');
  const deliver = values.deliver ?? (values.out ? 'mqtt' : undefined);
  if (deliver !== undefined && !['mqtt', 'http', 'none'].includes(deliver))
    throw new UsageError(`--deliver must be mqtt, http or none, not '${deliver}'`);
  if (deliver === 'mqtt' && !values.out) throw new UsageError('--deliver mqtt needs --out DIR to save the images in');
  const receiving = deliver === 'mqtt';
  const timeoutS = Number(values.timeout);
  if (!(timeoutS > 0)) throw new UsageError(`--timeout must be a positive number of seconds, not '${values.timeout}'`);
  const prefix = values.prefix ?? 'cameras';
  // Replies come on <prefix>/<node>/res/<requester>, under each node's own namespace.
  const requester = newRequester('cli');
  const command = commandPayload('capture', captureParams(values, deliver), { requester });
  const id = command.id;

  const client = await connectBroker(values);
  const outcomes = new Map<string, Outcome>();
  let receiver: Receiver | null = null;
  let timer: NodeJS.Timeout | undefined;
  try {
    const { topics, nodes } = await selectNodes(client, prefix, values);
    if (nodes.length === 0) throw new UsageError('no node is online for that selection');
    for (const nodeId of nodes) outcomes.set(nodeId, { nodeId, reply: null, images: new Map() });
    const nodeDone = (o: Outcome): boolean =>
      o.reply !== null && (!receiving || announcedFiles(o.reply).every((name) => o.images.has(name)));
    let finished!: () => void;
    const done = new Promise<void>((resolveDone) => {
      finished = resolveDone;
    });
    const check = (): void => {
      if ([...outcomes.values()].every(nodeDone)) finished();
    };
    if (receiving) {
      const progressLines = process.stderr.isTTY;
      receiver = createReceiver({
        client,
        prefix,
        outDir: resolve(values.out ?? '.'),
        nodes,
        onImage: (image) => {
          outcomes.get(image.nodeId)?.images.set(image.filename, image);
          process.stderr.write(
            `${progressLines ? '\x1b[2K' : ''}${image.nodeId}: saved ${image.path} (${image.size} bytes, sha256 verified)\n`,
          );
          check();
        },
        onProgress: ({ nodeId, filename, received, chunks }) => {
          if (progressLines) process.stderr.write(`\x1b[2K${nodeId}: ${filename} ${received}/${chunks} chunks\r`);
        },
        onError: ({ nodeId, filename, message }) => process.stderr.write(`${nodeId}: ${filename}: ${message}\n`),
      });
      await receiver.start();
    }
    const replyFilter = replyTopicFilter(prefix, requester);
    client.on('message', (topic: string, payload: Buffer) => {
      // Only a reply published in the namespace of the node it names: no node can answer for another.
      const reply = acceptReply(prefix, requester, topic, payload);
      const outcome = reply ? outcomes.get(reply.node_id) : undefined;
      if (!reply || reply.id !== id || !outcome || outcome.reply) return;
      outcome.reply = reply;
      const error = reply['error'] as { code: string; message: string } | undefined;
      const files = announcedFiles(reply);
      process.stderr.write(`${outcome.nodeId}: ${error ? `error ${error.code}: ${error.message}` : `captured ${files.join(', ')}`}\n`);
      check();
    });
    await client.subscribeAsync(replyFilter, { qos: 1 });
    // MQTT 5: a broker holding the command for an offline node drops it once nobody waits for the answer.
    const properties = commandPublishProperties(speaksMqtt5(client), timeoutS);
    for (const topic of topics) await client.publishAsync(topic, JSON.stringify(command), { qos: 1, ...properties });
    process.stderr.write(`capture ${id} sent to ${nodes.length} node(s): ${nodes.join(', ')}\n`);
    timer = setTimeout(finished, timeoutS * 1000);
    await done;
  } finally {
    clearTimeout(timer);
    await receiver?.stop();
    await client.endAsync();
  }
  return report([...outcomes.values()], receiving);
}

/** One line per node on stdout (node, ok|FAILED, what), and the exit code. */
function report(outcomes: Outcome[], receiving: boolean): number {
  let failed = 0;
  for (const { nodeId, reply, images } of outcomes) {
    const files = reply ? announcedFiles(reply) : [];
    const missing = receiving ? files.filter((name) => !images.has(name)) : [];
    const error = reply?.['error'] as { code?: string; message?: string } | undefined;
    let what: string;
    if (!reply) what = 'no reply';
    else if (error) what = `${error.code ?? 'error'}: ${error.message ?? ''}`;
    else if (missing.length > 0) what = `not received: ${missing.join(', ')}`;
    else what = receiving ? files.map((name) => images.get(name)?.path ?? name).join(' ') : files.join(' ');
    const ok = reply?.['status'] === 'success' && missing.length === 0;
    if (!ok) failed += 1;
    process.stdout.write(`${nodeId}\t${ok ? 'ok' : 'FAILED'}\t${what}\n`);
  }
  return failed === 0 ? 0 : 1;
}
