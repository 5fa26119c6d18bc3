import { randomUUID } from 'node:crypto';
import * as fsPromises from 'node:fs/promises';
import { join } from 'node:path';
import type { IPublishPacket, MqttClient } from 'mqtt';
import { writeFileDurably } from './partial.js';
import { createReceiver, type ReceivedImage, type Receiver, shotFolder } from './receiver.js';

/** Who a shot is for: every node, a group's members, or nodes by id. */
export type ShotTarget = 'all' | `group:${string}` | string[];

export interface ShotClock {
  synchronized: boolean | null;
  offset_ms: number | null;
  source: string | null;
}

export interface ShotFile {
  filename: string;
  size: number | null;
  sha256: string | null;
  delivered: boolean;
  /** Relative to the shot's folder, once received. */
  path: string | null;
}

/** One addressed node in `shot.json` (schemas/shot.schema.json). */
export interface ShotNode {
  node_id: string;
  status: 'ok' | 'error' | 'missing';
  error?: { code: string; message: string };
  /** Its retained availability when the shot started: a node already offline then is expected to be missing. */
  availability: 'online' | 'offline' | 'unknown';
  filename: string | null;
  size: number | null;
  sha256: string | null;
  delivered: boolean;
  /** Every frame of a burst (one entry otherwise). */
  files: ShotFile[];
  scheduled_at: string | null;
  triggered_at: string | null;
  exposure_started_at: string | null;
  late_ms: number | null;
  exposure_late_ms: number | null;
  clock: ShotClock;
}

export interface ShotSummary {
  asked: number;
  answered: number;
  delivered: number;
  failed: number;
  trigger_spread_ms: number | null;
  exposure_spread_ms: number | null;
  worst_clock_offset_ms: number | null;
  missing: number;
}

export interface ShotReport {
  shot_id: string;
  created_at: string;
  finished_at: string;
  target: ShotTarget;
  at: string | null;
  deliver: 'mqtt' | 'http' | 'none' | null;
  nodes: ShotNode[];
  missing: string[];
  summary: ShotSummary;
}

/** Where images come from when the caller already runs a collector (the dashboard). */
export interface ImageSource {
  on(event: 'image', listener: (image: ReceivedImage) => void): unknown;
  off(event: 'image', listener: (image: ReceivedImage) => void): unknown;
}

export interface ShotOptions {
  prefix: string;
  target: ShotTarget;
  /** Fire at this instant (epoch ms or ISO 8601), on every node's clock. */
  at?: number | string;
  count?: number;
  interval_ms?: number;
  /** How the nodes deliver the images; mqtt (the default with outDir) has them received here. */
  deliver?: 'mqtt' | 'http' | 'none';
  /** Other capture settings (shutter_us, gain...), sent as they are. */
  settings?: Record<string, unknown>;
  timeoutMs: number;
  /** This controller's name: `reply_to`, and the collector named in receipts. */
  requester: string;
  /** Receive into `outDir/<shot>/<node>/` and write `outDir/<shot>/shot.json`. */
  outDir?: string;
  /** The shot id (default: a fresh one). */
  id?: string;
  /** Images from a collector already running on outDir, instead of a receiver of the shot's own. */
  images?: ImageSource;
  /** Refuse to send (NoNodesError) when no node is expected to answer: none named online. */
  requireExpected?: boolean;
  onEvent?: (event: ShotEvent) => void;
}

/** runShot with `requireExpected` found no node to wait for. */
export class NoNodesError extends Error {}

export type ShotEvent =
  | { type: 'sent'; shot_id: string; asked: string[] }
  | { type: 'reply'; node_id: string; reply: Record<string, unknown> }
  | { type: 'image'; image: ReceivedImage }
  | { type: 'error'; node_id: string; filename: string; message: string };

interface KnownNode {
  availability: 'online' | 'offline' | 'unknown';
  groups: string[];
  clock: ShotClock;
}

const NO_CLOCK: ShotClock = { synchronized: null, offset_ms: null, source: null };

/**
 * The nodes the broker knows from their retained availability and status, online or not: a node
 * stopped before the shot says offline, and is listed as missing rather than forgotten.
 */
export async function knownNodes(client: MqttClient, prefix: string, quietMs = 500): Promise<Map<string, KnownNode>> {
  const filters = [`${prefix}/+/availability`, `${prefix}/+/status`];
  const level = prefix.split('/').length;
  const nodes = new Map<string, KnownNode>();
  const entry = (id: string): KnownNode => {
    const node = nodes.get(id) ?? { availability: 'unknown', groups: [], clock: NO_CLOCK };
    nodes.set(id, node);
    return node;
  };
  let last = Date.now();
  const onMessage = (topic: string, payload: Buffer, packet: IPublishPacket): void => {
    const parts = topic.split('/');
    const id = parts[level] ?? '';
    if (!packet.retain || parts.length !== level + 2 || parts.slice(0, level).join('/') !== prefix || !id) return;
    if (id === 'collectors' || id === 'all' || id === 'group') return;
    last = Date.now();
    if (parts[level + 1] === 'availability') {
      const text = payload.toString();
      if (text === 'online' || text === 'offline') entry(id).availability = text;
      return;
    }
    try {
      const status = JSON.parse(payload.toString()) as { mqtt?: { groups?: unknown }; clock?: Partial<ShotClock> };
      const node = entry(id);
      if (Array.isArray(status.mqtt?.groups)) node.groups = status.mqtt.groups.map(String);
      const clock = status.clock;
      if (clock)
        node.clock = {
          synchronized: typeof clock.synchronized === 'boolean' ? clock.synchronized : null,
          offset_ms: typeof clock.offset_ms === 'number' ? clock.offset_ms : null,
          source: typeof clock.source === 'string' ? clock.source : null,
        };
    } catch {
      // an unreadable status says nothing about the node
    }
  };
  client.on('message', onMessage);
  try {
    await client.subscribeAsync(filters, { qos: 1 });
    last = Date.now();
    while (Date.now() - last < quietMs) await new Promise((resolve) => setTimeout(resolve, 50));
    await client.unsubscribeAsync(filters);
  } finally {
    client.off('message', onMessage);
  }
  return nodes;
}

/** The files a successful capture reply announces: one, or every frame of a burst. */
export function announcedFiles(reply: Record<string, unknown>): string[] {
  if (reply['status'] !== 'success') return [];
  const files = reply['files'];
  if (Array.isArray(files)) return files.map((file) => String((file as { filename?: unknown }).filename));
  const single = (reply['file_info'] as { filename?: unknown } | undefined)?.filename;
  return typeof single === 'string' ? [single] : [];
}

const text = (value: unknown): string | null => (typeof value === 'string' ? value : null);
const num = (value: unknown): number | null => (typeof value === 'number' && Number.isFinite(value) ? value : null);

function spread(times: Array<string | null>): number | null {
  const ms = times
    .filter((t): t is string => t !== null)
    .map((t) => Date.parse(t))
    .filter(Number.isFinite);
  return ms.length === 0 ? null : Math.max(...ms) - Math.min(...ms);
}

/** Recomputes `missing` and `summary` from the node entries. */
export function summarize(report: Omit<ShotReport, 'missing' | 'summary'>): ShotReport {
  const ok = report.nodes.filter((n) => n.status === 'ok');
  const offsets = report.nodes.map((n) => n.clock.offset_ms).filter((o): o is number => o !== null);
  const missing = report.nodes.filter((n) => n.status === 'missing').map((n) => n.node_id);
  return {
    ...report,
    missing,
    summary: {
      asked: report.nodes.length,
      answered: report.nodes.length - missing.length,
      delivered: report.nodes.filter((n) => n.delivered).length,
      failed: report.nodes.filter((n) => n.status === 'error').length,
      trigger_spread_ms: spread(ok.map((n) => n.triggered_at)),
      exposure_spread_ms: spread(ok.map((n) => n.exposure_started_at)),
      worst_clock_offset_ms: offsets.length === 0 ? null : Math.max(...offsets.map(Math.abs)),
      missing: missing.length,
    },
  };
}

function nodeEntry(
  nodeId: string,
  known: KnownNode | undefined,
  reply: Record<string, unknown> | null,
  images: Map<string, ReceivedImage>,
  shotDir: string | null,
): ShotNode {
  const error = reply?.['error'] as { code?: unknown; message?: unknown } | undefined;
  const files: ShotFile[] = (reply ? announcedFiles(reply) : []).map((filename) => {
    const image = images.get(filename);
    return {
      filename,
      size: image?.size ?? num((reply?.['file_info'] as Record<string, unknown> | undefined)?.['size']),
      sha256: image?.sha256 ?? null,
      delivered: image !== undefined,
      path: image && shotDir ? join(nodeId, filename) : null,
    };
  });
  const first = files[0];
  return {
    node_id: nodeId,
    status: reply === null ? 'missing' : reply['status'] === 'success' ? 'ok' : 'error',
    ...(error ? { error: { code: String(error.code ?? 'internal'), message: String(error.message ?? '') } } : {}),
    availability: known?.availability ?? 'unknown',
    filename: first?.filename ?? null,
    size: first?.size ?? null,
    sha256: first?.sha256 ?? null,
    delivered: files.length > 0 && files.every((f) => f.delivered),
    files,
    scheduled_at: text(reply?.['scheduled_at']),
    triggered_at: text(reply?.['triggered_at']),
    exposure_started_at: text(reply?.['exposure_started_at']),
    late_ms: num(reply?.['late_ms']),
    exposure_late_ms: num(reply?.['exposure_late_ms']),
    clock: known?.clock ?? NO_CLOCK,
  };
}

export const shotFile = (outDir: string, shotId: string): string => join(outDir, shotFolder(shotId), 'shot.json');

/**
 * Sends one capture command to the target and waits, up to `timeoutMs`, for every node expected to
 * answer (the ones named, or those online when the shot starts) and, when images are received, for
 * every image it announces. Nodes addressed but silent are listed as missing: for `all` and groups
 * that includes the nodes the broker knows as offline (their retained availability and status say so).
 * With `outDir` the report is also written, durably, to `outDir/<shot>/shot.json`.
 */
export async function runShot(client: MqttClient, options: ShotOptions): Promise<ShotReport> {
  const { prefix, target, requester } = options;
  const id = options.id ?? `shot-${randomUUID()}`;
  const deliver = options.deliver ?? (options.outDir ? 'mqtt' : null);
  const createdAt = new Date().toISOString();
  const known = await knownNodes(client, prefix);
  const group = typeof target === 'string' && target.startsWith('group:') ? target.slice('group:'.length) : null;
  const addressed = Array.isArray(target)
    ? [...new Set(target)]
    : [...known].filter(([, node]) => group === null || node.groups.includes(group)).map(([nodeId]) => nodeId);
  const expected = new Set(Array.isArray(target) ? addressed : addressed.filter((nodeId) => known.get(nodeId)?.availability === 'online'));
  if (options.requireExpected && expected.size === 0) throw new NoNodesError('no node is online for that selection');
  const replies = new Map<string, Record<string, unknown>>();
  const images = new Map<string, Map<string, ReceivedImage>>();
  const outDir = deliver === 'mqtt' ? options.outDir : undefined;
  const receiving = outDir !== undefined;

  let finished = (): void => undefined;
  const done = new Promise<void>((resolve) => {
    finished = resolve;
  });
  const nodeDone = (nodeId: string): boolean => {
    const reply = replies.get(nodeId);
    return reply !== undefined && (!receiving || announcedFiles(reply).every((name) => images.get(nodeId)?.has(name)));
  };
  const check = (): void => {
    if ([...expected].every(nodeDone) && [...replies.keys()].every(nodeDone)) finished();
  };
  const onImage = (image: ReceivedImage): void => {
    if (image.requestId !== id) return;
    const mine = images.get(image.nodeId) ?? new Map<string, ReceivedImage>();
    images.set(image.nodeId, mine);
    mine.set(image.filename, image);
    options.onEvent?.({ type: 'image', image });
    check();
  };

  const level = prefix.split('/').length;
  const onReply = (topic: string, payload: Buffer): void => {
    const parts = topic.split('/');
    // Replies to us (`<prefix>/<node>/res/<requester>`), or on a node's own `res` from nodes that predate reply_to.
    const route = parts.slice(level + 1).join('/');
    if (parts.slice(0, level).join('/') !== prefix || (route !== 'res' && route !== `res/${requester}`)) return;
    let reply: Record<string, unknown>;
    try {
      reply = JSON.parse(payload.toString()) as Record<string, unknown>;
    } catch {
      return;
    }
    const nodeId = String(reply['node_id']);
    // A reply counts only from the node whose namespace it came in: no node can answer for another.
    if (reply['id'] !== id || parts[level] !== nodeId || replies.has(nodeId)) return;
    if (Array.isArray(target) && !target.includes(nodeId)) return;
    replies.set(nodeId, reply);
    options.onEvent?.({ type: 'reply', node_id: nodeId, reply });
    check();
  };

  let receiver: Receiver | null = null;
  const replyFilters = [`${prefix}/+/res/${requester}`, `${prefix}/+/res`];
  let timer: NodeJS.Timeout | undefined;
  try {
    if (receiving && options.images) options.images.on('image', onImage);
    else if (outDir !== undefined) {
      receiver = createReceiver({
        client,
        prefix,
        outDir,
        requester,
        receipts: true,
        ...(Array.isArray(target) ? { nodes: target } : {}),
        onImage,
        onError: (error) => options.onEvent?.({ type: 'error', node_id: error.nodeId, filename: error.filename, message: error.message }),
      });
      await receiver.start();
    }
    client.on('message', onReply);
    await client.subscribeAsync(replyFilters, { qos: 1 });
    const command: Record<string, unknown> = {
      ...options.settings,
      id,
      action: 'capture',
      sent_at: Date.now(),
      reply_to: requester,
      ...(deliver ? { deliver } : {}),
      ...(options.at !== undefined ? { at: options.at } : {}),
      ...(options.count !== undefined ? { count: options.count } : {}),
      ...(options.interval_ms !== undefined ? { interval_ms: options.interval_ms } : {}),
    };
    const topics = Array.isArray(target)
      ? target.map((nodeId) => `${prefix}/${nodeId}/cmd`)
      : [`${prefix}/${group === null ? 'all' : `group/${group}`}/cmd`];
    for (const topic of topics) await client.publishAsync(topic, JSON.stringify(command), { qos: 1 });
    options.onEvent?.({ type: 'sent', shot_id: id, asked: [...expected] });
    timer = setTimeout(finished, options.timeoutMs);
    check();
    await done;
  } finally {
    clearTimeout(timer);
    client.off('message', onReply);
    options.images?.off('image', onImage);
    await client.unsubscribeAsync(replyFilters).catch(() => undefined);
    await receiver?.stop();
  }
  const shotDir = options.outDir ? join(options.outDir, shotFolder(id)) : null;
  const everyone = [...new Set([...addressed, ...replies.keys()])].sort();
  const at = options.at === undefined ? null : new Date(options.at).toISOString();
  const report = summarize({
    shot_id: id,
    created_at: createdAt,
    finished_at: new Date().toISOString(),
    target,
    at,
    deliver,
    nodes: everyone.map((nodeId) =>
      nodeEntry(nodeId, known.get(nodeId), replies.get(nodeId) ?? null, images.get(nodeId) ?? new Map(), shotDir),
    ),
  });
  if (options.outDir && shotDir) {
    await fsPromises.mkdir(shotDir, { recursive: true });
    await writeShotReport(options.outDir, report);
  }
  return report;
}

export async function writeShotReport(outDir: string, report: ShotReport): Promise<void> {
  await writeFileDurably(fsPromises, shotFile(outDir, report.shot_id), `${JSON.stringify(report, null, 2)}\n`);
}

/**
 * Marks an image that came after its shot's report was written (a node that was slow, a collector
 * that was away) as delivered in that report; returns the updated report, or null when there is none.
 */
export async function recordLateImage(outDir: string, image: ReceivedImage): Promise<ShotReport | null> {
  if (image.requestId === null) return null;
  let report: ShotReport;
  try {
    report = JSON.parse(await fsPromises.readFile(shotFile(outDir, image.requestId), 'utf8')) as ShotReport;
  } catch {
    return null;
  }
  const node = report.nodes.find((n) => n.node_id === image.nodeId);
  const file = node?.files.find((f) => f.filename === image.filename);
  if (!node || !file || file.delivered) return null;
  Object.assign(file, { size: image.size, sha256: image.sha256, delivered: true, path: join(image.nodeId, image.filename) });
  const first = node.files[0] ?? file;
  Object.assign(node, {
    filename: first.filename,
    size: first.size,
    sha256: first.sha256,
    delivered: node.files.every((f) => f.delivered),
  });
  const updated = summarize(report);
  await writeShotReport(outDir, updated);
  return updated;
}
