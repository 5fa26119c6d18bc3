import { appendFileSync } from 'node:fs';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';

/** The journal's name in the capture directory (the store skips `.camera-node-*` files). */
export const JOURNAL_FILE = '.camera-node-commands.jsonl';

export interface JournalLimits {
  /** How long a command id is remembered after it arrived. */
  windowMs: number;
  maxEntries: number;
  /** Total weight of the replies remembered (a list reply of a full store can be large). */
  maxBytes: number;
}

/** A reply the journal can hold: anything JSON, with the command's id. */
type StoredReply = Record<string, unknown>;

interface Entry<R> {
  at: number;
  /** Pending while the command runs; a duplicate waits for it. */
  reply: Promise<R>;
  /** The settled reply, once there is one. */
  settled?: R;
  bytes: number;
  /** Kept on disk once started: it survives a restart. */
  durable: boolean;
  /** Its `run` line is written: it may have had its effect. */
  started: boolean;
}

/** One line of the journal file. `run`: about to execute; `done`: its reply; `drop`: refused after all, forget it. */
type Line = { id: string; t: number; s: 'run' } | { id: string; t: number; s: 'done'; reply: StoredReply } | { id: string; s: 'drop' };

export interface CommandJournalOptions<R> {
  /** The journal file; null keeps everything in memory (a node without storage, tests). */
  path: string | null;
  limits: JournalLimits;
  /** The answer to a command that was started but whose outcome the journal never saw (a crash mid-command). */
  interrupted: (id: string) => R;
  logger: Logger;
  now?: () => number;
}

/**
 * Remembers, per command id, that a command ran and what it answered, so a repeated id (a QoS 1
 * redelivery, a controller's retry) is answered again instead of executed twice — across restarts,
 * `kill -9` included. Bounded in time, entries and bytes; the oldest go first.
 *
 * On disk it is an append-only file of JSON lines: `run` is appended and fsynced just *before* a
 * command has its effect (`start`: for a capture, when its turn in the camera queue has come), `done`
 * (its reply) after. A restart that finds a `run` without its `done` answers that id
 * with `interrupted` (the command may or may not have had its effect; it is never run again).
 * `done` is not fsynced: if it is lost, the id reads as interrupted, which still never runs twice.
 * Torn or corrupt lines (a crash mid-append) are skipped. The file is rewritten (temp file, fsync,
 * rename) from what is remembered at startup and whenever it has grown to twice the bounds.
 */
export class CommandJournal<R extends StoredReply> {
  private readonly entries = new Map<string, Entry<R>>();
  private bytes = 0;
  /**
   * The journal's path once loaded. No descriptor is held between writes: commands are rare, and an
   * open file would keep its file system from being remounted (read-only after an SD card error).
   */
  private file: string | null = null;
  private fileBytes = 0;
  private fileLines = 0;
  /** Writes go one after another, in order. */
  private writes: Promise<void> = Promise.resolve();
  private readonly now: () => number;
  private closed = false;

  private constructor(private readonly options: CommandJournalOptions<R>) {
    this.now = options.now ?? Date.now;
  }

  static async open<R extends StoredReply>(options: CommandJournalOptions<R>): Promise<CommandJournal<R>> {
    const journal = new CommandJournal(options);
    if (options.path) await journal.load(options.path);
    return journal;
  }

  /** Remembers in memory only: repeats are answered while the process lives. */
  static inMemory<R extends StoredReply>(limits: JournalLimits, logger: Logger, now?: () => number): CommandJournal<R> {
    return new CommandJournal<R>({
      path: null,
      limits,
      logger,
      interrupted: () => {
        throw new Error('an in-memory journal has nothing to recover');
      },
      ...(now ? { now } : {}),
    });
  }

  /** The reply (or the pending reply) of an earlier command with this id, if it is still remembered. */
  get(id: string): Promise<R> | undefined {
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    if (entry.settled && this.now() - entry.at > this.options.limits.windowMs) {
      this.remove(id, entry);
      return undefined;
    }
    return entry.reply;
  }

  /**
   * Records that the command `id` was accepted: a repeat now waits for `reply` (which must not
   * reject). Settle it with `finish` or `forget`; a `durable` one is on disk once `start`ed.
   */
  begin(id: string, reply: Promise<R>, durable: boolean): void {
    const entry: Entry<R> = { at: this.now(), reply, bytes: 0, durable: durable && this.options.path !== null, started: false };
    const previous = this.entries.get(id);
    if (previous) this.remove(id, previous);
    this.entries.set(id, entry);
    this.prune();
  }

  /**
   * The command is about to have its effect (a capture about to trigger the camera): on disk, and
   * fsynced, when this resolves. Until then a crash loses nothing: the command had not started, so a
   * redelivery after the restart runs it.
   */
  async start(id: string): Promise<void> {
    const entry = this.entries.get(id);
    if (!entry?.durable || entry.started) return;
    entry.started = true;
    await this.append({ id, t: entry.at, s: 'run' }, true);
  }

  /** The command ran: its reply is what a repeat of the id gets. */
  finish(id: string, reply: R): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    entry.settled = reply;
    entry.bytes = Buffer.byteLength(JSON.stringify(reply));
    this.bytes += entry.bytes;
    if (entry.durable) void this.append({ id, t: entry.at, s: 'done', reply }, false);
    this.prune();
  }

  /** The command was refused after all (busy, camera unavailable...): a retry with the id must run. */
  forget(id: string): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.remove(id, entry);
    if (entry.durable && entry.started) void this.append({ id, s: 'drop' }, false);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Weight of the settled replies held. */
  get weight(): number {
    return this.bytes;
  }

  /** Waits for the writes in progress and closes the file. */
  async close(): Promise<void> {
    this.closed = true;
    await this.writes;
    this.file = null;
  }

  private remove(id: string, entry: Entry<R>): void {
    this.entries.delete(id);
    this.bytes -= entry.bytes;
  }

  private prune(): void {
    const { windowMs, maxEntries, maxBytes } = this.options.limits;
    const now = this.now();
    // Map keeps insertion order: the first entries are the oldest. A command still running is kept
    // whatever its age (a capture scheduled far ahead): forgetting it would let a repeat run it
    // again; there are at most MQTT_MAX_IN_FLIGHT of them.
    for (const [id, entry] of this.entries) {
      if (!entry.settled) continue;
      const over = this.entries.size > maxEntries || this.bytes > maxBytes;
      if (!over && now - entry.at <= windowMs) break;
      this.remove(id, entry);
    }
  }

  private append(line: Line, sync: boolean): Promise<void> {
    const text = `${JSON.stringify(line)}\n`;
    if (this.closed) {
      // Commands still finishing while the node stops (a capture aborted by the shutdown): their
      // outcome must still reach the file, or the restart would read them as interrupted.
      if (this.options.path) this.appendAfterClose(this.options.path, text);
      return Promise.resolve();
    }
    const write = this.writes.then(async () => {
      if (!this.file) return;
      const file = await open(this.file, 'a');
      try {
        await file.appendFile(text);
        if (sync) await file.datasync();
      } finally {
        await file.close();
      }
      this.fileBytes += Buffer.byteLength(text);
      this.fileLines += 1;
      const { maxEntries, maxBytes } = this.options.limits;
      if (this.fileLines > 4 * maxEntries || this.fileBytes > 2 * maxBytes) await this.compact();
    });
    // A failing disk must not stop commands: the record is lost, the command still answered.
    this.writes = write.catch((err: unknown) => {
      this.options.logger.error({ err }, 'command journal write failed');
    });
    return this.writes;
  }

  private appendAfterClose(path: string, text: string): void {
    try {
      appendFileSync(path, text);
    } catch (err) {
      this.options.logger.error({ err }, 'command journal write failed');
    }
  }

  private async load(path: string): Promise<void> {
    let text = '';
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    let skipped = 0;
    let interrupted = 0;
    const found = new Map<string, { at: number; reply: R | null }>();
    for (const raw of text.split('\n')) {
      if (raw.length === 0) continue;
      let line: Line;
      try {
        line = JSON.parse(raw) as Line;
        if (typeof line.id !== 'string') throw new Error('no id');
      } catch {
        skipped++;
        continue;
      }
      if (line.s === 'drop') found.delete(line.id);
      else if (line.s === 'run') found.set(line.id, { at: line.t, reply: null });
      else if (line.s === 'done' && typeof line.reply === 'object' && line.reply !== null)
        found.set(line.id, { at: line.t, reply: line.reply as R });
    }
    const now = this.now();
    for (const [id, { at, reply }] of found) {
      if (!(now - at <= this.options.limits.windowMs)) continue;
      if (reply === null) interrupted++;
      const settled = reply ?? this.options.interrupted(id);
      const bytes = Buffer.byteLength(JSON.stringify(settled));
      this.entries.set(id, { at, reply: Promise.resolve(settled), settled, bytes, durable: true, started: true });
      this.bytes += bytes;
    }
    this.prune();
    if (skipped > 0 || interrupted > 0)
      this.options.logger.warn(
        { skipped, interrupted },
        'command journal: unreadable lines skipped, interrupted commands will not run again',
      );
    await this.compact(path);
  }

  /** Rewrites the file from what is remembered: temp file, fsync, rename, so a crash leaves one or the other. */
  private async compact(path = this.options.path): Promise<void> {
    if (!path) return;
    this.prune();
    const lines: string[] = [];
    for (const [id, entry] of this.entries) {
      // Accepted but not started: nothing to recover, a redelivery after a restart runs it.
      if (!entry.durable || (!entry.started && !entry.settled)) continue;
      const line: Line = entry.settled ? { id, t: entry.at, s: 'done', reply: entry.settled } : { id, t: entry.at, s: 'run' };
      lines.push(JSON.stringify(line));
    }
    const text = lines.length > 0 ? `${lines.join('\n')}\n` : '';
    const temp = `${path}.tmp`;
    const out = await open(temp, 'w');
    try {
      await out.writeFile(text);
      await out.sync();
    } finally {
      await out.close();
    }
    this.file = null;
    try {
      await rename(temp, path);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
    const dir = await open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    this.file = path;
    this.fileBytes = Buffer.byteLength(text);
    this.fileLines = lines.length;
  }
}
