import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { EventBus } from '../events.js';
import { NodeError } from '../errors.js';
import { syncDir, writeFileAtomic } from '../storage/files.js';
import type { ImageStore } from '../storage/types.js';
import { sha256File } from './manifest.js';

export const OUTBOX_DIR = '.outbox';
export type Channel = 'mqtt' | 'http';
export const CHANNELS: readonly Channel[] = ['mqtt', 'http'];

/**
 * Where an image stands on one channel. `owed`: due at `next_at`; `offering`: being sent now;
 * `awaiting_receipt` (MQTT only): sent, no collector has confirmed it yet, offered again at `next_at`;
 * `delivered` (a receipt, or a 2xx on HTTP) and `failed` (given up) end it.
 */
export type EntryState = 'owed' | 'offering' | 'awaiting_receipt' | 'delivered' | 'failed';

const TRANSITIONS: Record<Channel, Record<EntryState, readonly EntryState[]>> = {
  mqtt: {
    owed: ['offering', 'delivered', 'failed'],
    offering: ['awaiting_receipt', 'owed', 'delivered', 'failed'],
    awaiting_receipt: ['offering', 'delivered', 'failed'],
    delivered: [],
    failed: [],
  },
  http: {
    owed: ['offering', 'failed'],
    offering: ['owed', 'delivered', 'failed'],
    awaiting_receipt: [],
    delivered: [],
    failed: [],
  },
};
const isFinal = (state: EntryState): boolean => state === 'delivered' || state === 'failed';

export interface ChannelState {
  state: EntryState;
  /** Offers or uploads started so far. */
  attempts: number;
  /** Epoch ms: when an owed or unconfirmed image is (re)offered. */
  next_at: number;
  /** The transfer id of the last MQTT offer (its manifest's), null before the first. */
  transfer_id: string | null;
  last_error: string | null;
}

/** One image still owed to at least one channel: one small JSON file, `<filename>.json`. */
export interface OutboxEntry {
  version: 2;
  filename: string;
  /** Computed once, when the image entered the outbox (at capture), and used by every attempt. */
  sha256: string;
  size: number;
  captured_at: string;
  request_id: string | null;
  created_at: string;
  channels: Partial<Record<Channel, ChannelState>>;
}

export interface ChannelStatus {
  /** Images owed, being sent or waiting for a receipt. */
  pending: number;
  /** Of those, the ones sent and waiting for a receipt (MQTT). */
  awaiting_receipt: number;
  delivered: number;
  /** Images given up (gone from the store, refused by the target, over the retry limit, outbox full). */
  failed: number;
  /** Attempts that did not deliver (retried later): publish errors, failed uploads, re-offers. */
  retries: number;
  last_error: string | null;
  last_delivered_at: string | null;
}

export interface OutboxOptions {
  /** The capture dir: entries live in `<dir>/.outbox`. */
  dir: string;
  store: ImageStore;
  events: EventBus;
  logger: Logger;
  /** Most images owed at once; a new one past it gives the oldest up (logged, counted, reported). */
  maxEntries: number;
}

const OWNER = 'outbox';
const entryFile = (filename: string): string => `${filename}.json`;

function channelState(raw: unknown): ChannelState | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const value = raw as Record<string, unknown>;
  const states: EntryState[] = ['owed', 'offering', 'awaiting_receipt', 'delivered', 'failed'];
  if (!states.includes(value['state'] as EntryState)) return null;
  const number = (key: string): number => (typeof value[key] === 'number' && Number.isFinite(value[key]) ? (value[key] as number) : 0);
  const text = (key: string): string | null => (typeof value[key] === 'string' ? (value[key] as string) : null);
  return {
    state: value['state'] as EntryState,
    attempts: number('attempts'),
    next_at: number('next_at'),
    transfer_id: text('transfer_id'),
    last_error: text('last_error'),
  };
}

/** An entry as read from disk; the version-1 form (HTTP uploads only, no hash) is taken over. */
function parseEntry(value: unknown): (Omit<OutboxEntry, 'sha256' | 'size'> & { sha256: string | null; size: number | null }) | null {
  if (typeof value !== 'object' || value === null) return null;
  const raw = value as Record<string, unknown>;
  if (typeof raw['filename'] !== 'string') return null;
  const text = (key: string): string | null => (typeof raw[key] === 'string' ? (raw[key] as string) : null);
  const channels: Partial<Record<Channel, ChannelState>> = {};
  if (raw['version'] === 2 && typeof raw['channels'] === 'object' && raw['channels'] !== null) {
    for (const channel of CHANNELS) {
      const state = channelState((raw['channels'] as Record<string, unknown>)[channel]);
      if (state) channels[channel] = state;
    }
  } else {
    // Version 1: `{filename, request_id, attempts, next_at, created_at, last_error}`, an upload.
    const state = channelState({ ...raw, state: 'owed' });
    if (state) channels.http = state;
  }
  const sha256 = text('sha256');
  return {
    version: 2,
    filename: raw['filename'],
    sha256: sha256 && /^[0-9a-f]{64}$/.test(sha256) ? sha256 : null,
    size: typeof raw['size'] === 'number' ? raw['size'] : null,
    captured_at: text('captured_at') ?? '',
    request_id: text('request_id'),
    created_at: text('created_at') ?? new Date().toISOString(),
    channels,
  };
}

/**
 * The one durable outbox: every image still owed to a channel, one JSON file per image written
 * atomically and fsynced (a power cut loses nothing that was acknowledged as queued). The MQTT and
 * HTTP transports draw from it and move each channel's entry through its states; an image leaves the
 * outbox when every channel it was owed to has delivered it or given it up, and a delivery is marked
 * in the store (eviction takes delivered images first, EVICT_UNDELIVERED=false keeps the others).
 */
export function createOutbox(options: OutboxOptions) {
  const { store, events } = options;
  const logger = options.logger.child({ part: 'outbox' });
  const dir = join(options.dir, OUTBOX_DIR);
  const entries = new Map<string, OutboxEntry>();
  const tally = (): Omit<ChannelStatus, 'pending' | 'awaiting_receipt'> => ({
    delivered: 0,
    failed: 0,
    retries: 0,
    last_error: null,
    last_delivered_at: null,
  });
  const counts: Record<Channel, ReturnType<typeof tally>> = { mqtt: tally(), http: tally() };
  const listeners: Record<Channel, Set<() => void>> = { mqtt: new Set(), http: new Set() };
  // Writes of one entry run in order, so an older state never lands over a newer one.
  const writes = new Map<string, Promise<void>>();

  const notify = (channel: Channel): void => {
    for (const listener of listeners[channel]) listener();
  };

  function persist(entry: OutboxEntry): Promise<void> {
    const done = Object.values(entry.channels).every((state) => isFinal(state.state));
    const name = entryFile(entry.filename);
    const snapshot = done ? null : JSON.stringify(entry);
    const previous = writes.get(entry.filename) ?? Promise.resolve();
    const write = previous.then(async () => {
      if (snapshot === null) {
        await rm(join(dir, name), { force: true });
        await syncDir(dir);
      } else {
        await writeFileAtomic(join(dir, name), join(dir, `${name}.partial`), dir, snapshot);
      }
    });
    const settled = write.catch(() => undefined);
    writes.set(entry.filename, settled);
    void settled.then(() => {
      if (writes.get(entry.filename) === settled) writes.delete(entry.filename);
    });
    return write.catch((err: unknown) => {
      logger.error({ err, filename: entry.filename }, 'cannot write the outbox entry');
      throw new NodeError('storage_failed', 'cannot write the outbox entry', { cause: err });
    });
  }

  /** Moves one channel of an entry to `to` (checked against the channel's transitions) and saves it. */
  async function transition(
    filename: string,
    channel: Channel,
    to: EntryState,
    change: Partial<Omit<ChannelState, 'state'>> = {},
  ): Promise<void> {
    const entry = entries.get(filename);
    const current = entry?.channels[channel];
    if (!entry || !current) throw new NodeError('not_found', `${filename} is not owed on ${channel}`);
    if (!TRANSITIONS[channel][current.state].includes(to))
      throw new Error(`outbox: ${channel} cannot go from ${current.state} to ${to} (${filename})`);
    Object.assign(current, change, { state: to });
    const count = counts[channel];
    if (change.last_error) count.last_error = `${filename}: ${change.last_error}`;
    if (to === 'delivered') {
      count.delivered += 1;
      count.last_delivered_at = new Date().toISOString();
    }
    if (to === 'failed') count.failed += 1;
    if (isFinal(to) && Object.values(entry.channels).every((state) => isFinal(state.state))) entries.delete(filename);
    await persist(entry);
    if (to === 'delivered') {
      await store
        .markDelivered(filename, channel)
        .catch((err: unknown) => logger.warn({ err, filename, channel }, 'could not mark the image delivered'));
      events.emit('delivered', { filename, channel, request_id: entry.request_id });
    }
    if (to === 'failed') {
      events.emit('delivery_failed', {
        filename,
        channel,
        code: 'delivery_failed',
        message: change.last_error ?? 'given up',
        request_id: entry.request_id,
      });
    }
    notify(channel);
  }

  /** Gives up every channel still open on an entry (the image is gone, or the outbox overflowed). */
  async function abandon(entry: OutboxEntry, reason: string): Promise<void> {
    for (const [channel, state] of Object.entries(entry.channels) as Array<[Channel, ChannelState]>) {
      if (isFinal(state.state)) continue;
      logger.warn({ filename: entry.filename, channel, reason }, 'delivery given up');
      await transition(entry.filename, channel, 'failed', { last_error: reason }).catch((err: unknown) =>
        logger.error({ err, filename: entry.filename }, 'could not give the delivery up'),
      );
    }
  }

  /**
   * Puts an image in the outbox for `channel`, hashed here, once; resolves when the entry is on disk
   * (the capture is answered after it). Already owed there: nothing changes.
   */
  async function add(filename: string, channel: Channel, requestId: string | null): Promise<void> {
    const info = store.get(filename);
    const existing = entries.get(filename);
    const open = existing?.channels[channel];
    if (open && !isFinal(open.state)) return;
    const fresh: ChannelState = { state: 'owed', attempts: 0, next_at: Date.now(), transfer_id: null, last_error: null };
    let entry = existing;
    if (!entry) {
      const digest = await sha256File(store.pathOf(filename));
      entry = {
        version: 2,
        filename,
        sha256: digest.sha256,
        size: digest.size,
        captured_at: info.created,
        request_id: requestId,
        created_at: new Date().toISOString(),
        channels: {},
      };
      // Full: the oldest owed image is given up, never the new one (its capture was just answered).
      while (entries.size >= options.maxEntries) {
        const [oldest] = [...entries.values()].sort((a, b) => a.created_at.localeCompare(b.created_at));
        if (!oldest) break;
        await abandon(oldest, `the outbox is full (${options.maxEntries} images owed)`);
        entries.delete(oldest.filename);
      }
      entries.set(filename, entry);
    }
    entry.channels[channel] = fresh;
    await persist(entry);
    notify(channel);
  }

  async function load(): Promise<void> {
    await mkdir(dir, { recursive: true });
    for (const name of await readdir(dir)) {
      if (!name.endsWith('.json')) {
        await rm(join(dir, name), { force: true }); // a .partial left by a crash
        continue;
      }
      try {
        const parsed = parseEntry(JSON.parse(await readFile(join(dir, name), 'utf8')) as unknown);
        if (!parsed || entryFile(parsed.filename) !== name) throw new Error('unexpected content');
        const info = store.get(parsed.filename); // not_found: the image went while the node was down
        // A version-1 entry has no hash: it is computed once here and kept.
        const known = parsed.sha256 !== null && parsed.size !== null ? { sha256: parsed.sha256, size: parsed.size } : null;
        const digest = known ?? (await sha256File(store.pathOf(info.filename)));
        const entry: OutboxEntry = {
          ...parsed,
          sha256: digest.sha256,
          size: digest.size,
          captured_at: parsed.captured_at || info.created,
        };
        for (const state of Object.values(entry.channels)) {
          // An attempt cut by a crash or a stop is due again now.
          if (state.state === 'offering') Object.assign(state, { state: 'owed', next_at: Date.now() });
        }
        if (Object.values(entry.channels).every((state) => isFinal(state.state))) throw new Error('nothing owed');
        entries.set(entry.filename, entry);
        if (!known) await persist(entry);
      } catch (err) {
        logger.warn({ file: name, err: (err as Error).message }, 'outbox entry dropped');
        await rm(join(dir, name), { force: true });
      }
    }
  }

  return {
    async start(): Promise<void> {
      await load();
      if (entries.size > 0) logger.info({ pending: entries.size }, 'images still owed');
      const gone =
        (reason: string) =>
        ({ image }: { image: { filename: string } }) => {
          const entry = entries.get(image.filename);
          if (entry) void abandon(entry, reason);
        };
      events.on(OWNER, 'evicted', gone('the image was evicted before it was delivered'));
      events.on(OWNER, 'deleted', gone('the image was deleted before it was delivered'));
    },
    async stop(): Promise<void> {
      events.removeOwner(OWNER);
      for (const channel of CHANNELS) listeners[channel].clear();
      await Promise.all(writes.values());
    },
    add,
    transition,
    get: (filename: string): OutboxEntry | undefined => entries.get(filename),
    /** The open entries of a channel, soonest due first. */
    owed(channel: Channel): OutboxEntry[] {
      return [...entries.values()]
        .filter((entry) => {
          const state = entry.channels[channel];
          return state !== undefined && !isFinal(state.state);
        })
        .sort((a, b) => (a.channels[channel]?.next_at ?? 0) - (b.channels[channel]?.next_at ?? 0));
    },
    /** Brings the unconfirmed images of a channel forward to now (a collector came online); not saved. */
    dueNow(channel: Channel): number {
      let moved = 0;
      for (const entry of entries.values()) {
        const state = entry.channels[channel];
        if (state && (state.state === 'owed' || state.state === 'awaiting_receipt')) {
          state.next_at = Date.now();
          moved += 1;
        }
      }
      if (moved > 0) notify(channel);
      return moved;
    },
    /** Counts an attempt that did not deliver (it is retried later). */
    countRetry(channel: Channel, filename: string, reason: string): void {
      counts[channel].retries += 1;
      counts[channel].last_error = `${filename}: ${reason}`;
    },
    /** Calls `listener` whenever the channel's entries change (new, due earlier, finished). */
    onChange(channel: Channel, listener: () => void): () => void {
      listeners[channel].add(listener);
      return () => listeners[channel].delete(listener);
    },
    status(channel: Channel): ChannelStatus {
      let pending = 0;
      let awaiting = 0;
      for (const entry of entries.values()) {
        const state = entry.channels[channel]?.state;
        if (!state || isFinal(state)) continue;
        pending += 1;
        if (state === 'awaiting_receipt') awaiting += 1;
      }
      return { pending, awaiting_receipt: awaiting, ...counts[channel] };
    },
  };
}
export type Outbox = ReturnType<typeof createOutbox>;
