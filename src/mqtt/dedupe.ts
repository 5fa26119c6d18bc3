export interface ReplyCacheLimits {
  /** How long a reply is remembered after its command arrived. */
  windowMs: number;
  maxEntries: number;
  /** Total weight of the settled replies kept (a list reply of a full store can be large). */
  maxBytes: number;
}

interface Entry<T> {
  reply: Promise<T>;
  at: number;
  /** 0 until the reply settles. */
  bytes: number;
}

/**
 * Remembers the reply to each command id for a while, so a QoS 1 redelivery (the broker resending a
 * command whose PUBACK it did not see) is answered again instead of executed twice. A duplicate that
 * arrives while the first is still running waits for the same reply. Bounded in time, in entries and
 * in bytes; the oldest entries go first.
 */
export class ReplyCache<T> {
  private readonly entries = new Map<string, Entry<T>>();
  private bytes = 0;

  constructor(
    private readonly limits: ReplyCacheLimits,
    private readonly weigh: (reply: T) => number,
    private readonly now: () => number = Date.now,
  ) {}

  /** The reply of an earlier command with this id, if it is still remembered. */
  get(id: string): Promise<T> | undefined {
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    if (this.now() - entry.at > this.limits.windowMs) {
      this.remove(id, entry);
      return undefined;
    }
    return entry.reply;
  }

  /** `reply` must not reject (the command handler turns failures into error replies). */
  set(id: string, reply: Promise<T>): void {
    const previous = this.entries.get(id);
    if (previous) this.remove(id, previous);
    const entry: Entry<T> = { reply, at: this.now(), bytes: 0 };
    this.entries.set(id, entry);
    this.prune();
    void reply.then((value) => {
      if (this.entries.get(id) !== entry) return;
      entry.bytes = this.weigh(value);
      this.bytes += entry.bytes;
      this.prune();
    });
  }

  get size(): number {
    return this.entries.size;
  }

  /** Weight of the settled replies held. */
  get weight(): number {
    return this.bytes;
  }

  private remove(id: string, entry: Entry<T>): void {
    this.entries.delete(id);
    this.bytes -= entry.bytes;
  }

  private prune(): void {
    const now = this.now();
    // Map keeps insertion order: the first entries are the oldest.
    for (const [id, entry] of this.entries) {
      const over = this.entries.size > this.limits.maxEntries || this.bytes > this.limits.maxBytes;
      if (!over && now - entry.at <= this.limits.windowMs) break;
      this.remove(id, entry);
    }
  }
}
