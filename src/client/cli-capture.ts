import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { parseAt } from '../commands/schedule.js';
import { connectBroker, parseCommandArgs, UsageError } from './cli-broker.js';
import { shotFolder } from './receiver.js';
import { announcedFiles, NoNodesError, runShot, type ShotReport, type ShotTarget } from './shot.js';

export const CAPTURE_USAGE = `camera-node capture --broker URL (--node ID ... | --all | --group NAME) [--out DIR] [options]

Sends one capture command (a shot) and waits for every addressed node's reply and, with --out, its
images (delivered over MQTT in chunks, verified, saved as DIR/<shot>/<node>/<filename>, with the
report in DIR/<shot>/shot.json). Progress goes to stderr; stdout gets one line per node, then the
report: nodes asked, answered and delivered, trigger and exposure spread, worst clock offset, the
nodes missing (with --all and --group, nodes known offline too). Exits 1 if any node fails or is missing.

  --node ID          a node (repeatable)            --all        every node the broker knows
  --group NAME       the nodes in the group          --out DIR    receive the images into DIR/<shot>/
  --deliver HOW      mqtt (the default with --out), http (the node's UPLOAD_URL) or none
  --at TIME          fire at TIME: +2s, +500ms, epoch ms or ISO 8601 (the whole fleet together)
  --count N          frames in a burst               --interval-ms MS   between burst frames
  --shutter-us US    exposure time                   --gain G     analogue gain
  --timeout S        give up after S seconds (default 60)
  --json             print the report (schemas/shot.schema.json) as JSON instead
  --username, --password (or MQTT_USERNAME / MQTT_PASSWORD), --ca FILE, --prefix (default cameras)
`;

/** The capture settings given on the command line. */
function buildSettings(values: Record<string, string | boolean | string[] | undefined>): Record<string, number> {
  const settings: Record<string, number> = {};
  if (typeof values['at'] === 'string') {
    try {
      settings['at'] = parseAt(values['at'], Date.now());
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
    settings[key] = value;
  }
  return settings;
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
    json: { type: 'boolean' },
  });
  if (values.help) {
    process.stdout.write(CAPTURE_USAGE);
    return 0;
  }
  const chosen = Number(Boolean(values.node?.length)) + Number(Boolean(values.all)) + Number(Boolean(values.group));
  if (chosen !== 1) throw new UsageError('choose the nodes with exactly one of --node, --all or --group');
  const deliver = values.deliver ?? (values.out ? 'mqtt' : undefined);
  if (deliver !== undefined && deliver !== 'mqtt' && deliver !== 'http' && deliver !== 'none')
    throw new UsageError(`--deliver must be mqtt, http or none, not '${deliver}'`);
  if (deliver === 'mqtt' && !values.out) throw new UsageError('--deliver mqtt needs --out DIR to save the images in');
  const timeoutS = Number(values.timeout);
  if (!(timeoutS > 0)) throw new UsageError(`--timeout must be a positive number of seconds, not '${values.timeout}'`);
  const prefix = values.prefix ?? 'cameras';
  const { at, count, interval_ms, ...settings } = buildSettings(values);
  const target: ShotTarget = values.node?.length ? [...new Set(values.node)] : values.all ? 'all' : `group:${values.group ?? ''}`;
  const requester = `cli_${hostname()
    .replace(/[^A-Za-z0-9_.-]/g, '_')
    .slice(0, 40)}_${process.pid}`;
  const outDir = values.out ? resolve(values.out) : null;
  const tty = process.stderr.isTTY;
  const say = (message: string): void => void process.stderr.write(`${tty ? '\x1b[2K' : ''}${message}\n`);

  const client = await connectBroker(values);
  let report: ShotReport;
  try {
    report = await runShot(client, {
      prefix,
      target,
      requester,
      id: `cli-${randomUUID()}`,
      timeoutMs: timeoutS * 1000,
      settings,
      requireExpected: true,
      ...(deliver ? { deliver } : {}),
      ...(outDir ? { outDir } : {}),
      ...(at !== undefined ? { at } : {}),
      ...(count !== undefined ? { count } : {}),
      ...(interval_ms !== undefined ? { interval_ms } : {}),
      onEvent: (event) => {
        if (event.type === 'sent') say(`capture ${event.shot_id} sent to ${event.asked.length} node(s): ${event.asked.join(', ')}`);
        else if (event.type === 'image')
          say(`${event.image.nodeId}: saved ${event.image.path} (${event.image.size} bytes, sha256 verified)`);
        else if (event.type === 'error') say(`${event.node_id}: ${event.filename}: ${event.message}`);
        else {
          const error = event.reply['error'] as { code: string; message: string } | undefined;
          say(
            `${event.node_id}: ${error ? `error ${error.code}: ${error.message}` : `captured ${announcedFiles(event.reply).join(', ')}`}`,
          );
        }
      },
    });
  } catch (err) {
    if (err instanceof NoNodesError) throw new UsageError(err.message);
    throw err;
  } finally {
    await client.endAsync();
  }
  process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report, outDir));
  return shotSucceeded(report) ? 0 : 1;
}

/** Every node answered with success and, when the images were received here, every image is here. */
export const shotSucceeded = (report: ShotReport): boolean =>
  report.nodes.every((node) => node.status === 'ok' && (report.deliver !== 'mqtt' || node.delivered));

const ms = (value: number | null): string => (value === null ? '-' : `${Math.round(value * 10) / 10} ms`);

/**
 * One line per node (node, ok|FAILED, what), then the report as `#` lines: nodes asked, answered
 * and delivered, trigger and exposure spread, worst clock offset, the nodes missing, the report file.
 */
export function formatReport(report: ShotReport, outDir: string | null): string {
  const lines: string[] = [];
  const receiving = report.deliver === 'mqtt' && outDir !== null;
  for (const node of report.nodes) {
    const undelivered = receiving ? node.files.filter((file) => !file.delivered).map((file) => file.filename) : [];
    let what: string;
    if (node.status === 'missing') what = node.availability === 'offline' ? 'no reply (offline before the shot)' : 'no reply';
    else if (node.error) what = `${node.error.code}: ${node.error.message}`;
    else if (undelivered.length > 0) what = `not received: ${undelivered.join(', ')}`;
    else if (receiving) what = node.files.map((file) => join(outDir, shotFolder(report.shot_id), file.path ?? file.filename)).join(' ');
    else what = node.files.map((file) => file.filename).join(' ');
    const ok = node.status === 'ok' && undelivered.length === 0;
    lines.push(`${node.node_id}\t${ok ? 'ok' : 'FAILED'}\t${what}`);
  }
  const s = report.summary;
  lines.push(
    `# shot ${report.shot_id}: ${s.asked} asked, ${s.answered} answered, ${s.delivered} delivered, ${s.failed} failed, ${s.missing} missing`,
    `# trigger spread ${ms(s.trigger_spread_ms)}, exposure spread ${ms(s.exposure_spread_ms)}, worst clock offset ${ms(s.worst_clock_offset_ms)}`,
  );
  if (report.missing.length > 0) lines.push(`# missing: ${report.missing.join(', ')}`);
  if (outDir) lines.push(`# report: ${join(outDir, shotFolder(report.shot_id), 'shot.json')}`);
  return `${lines.join('\n')}\n`;
}
