/**
 * Remembers the reply to each command id for a while, so a QoS 1 redelivery (the broker resending a
 * command whose PUBACK it did not see) is answered again instead of executed twice. A duplicate that
 * arrives while the first is still running waits for the same reply. Bounded in time and in size.
 */
export class ReplyCache<T> {
  private readonly entries = new Map<string, { reply: Promise<T>; at: number }>();

  constructor(
    private readonly windowMs: number,
    private readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** The reply of an earlier command with this id, if it is still remembered. */
  get(id: string): Promise<T> | undefined {
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    if (this.now() - entry.at > this.windowMs) {
      this.entries.delete(id);
      return undefined;
    }
    return entry.reply;
  }

  set(id: string, reply: Promise<T>): void {
    this.entries.delete(id);
    this.entries.set(id, { reply, at: this.now() });
    // Map keeps insertion order: the first entries are the oldest.
    for (const [key, entry] of this.entries) {
      if (this.entries.size <= this.maxEntries && this.now() - entry.at <= this.windowMs) break;
      this.entries.delete(key);
    }
  }

  get size(): number {
    return this.entries.size;
  }
}
