export interface SseEvent {
  event: string;
  data: unknown;
}

/**
 * Reads a server-sent event stream over fetch; `next(name)` waits for the next event of that name
 * (events that came earlier and were not asked for stay queued).
 */
export async function openSse(url: string, headers: Record<string, string> = {}) {
  const controller = new AbortController();
  const response = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal });
  if (!response.body) throw new Error('no body');
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const queue: SseEvent[] = [];
  let buffer = '';
  async function pull(): Promise<void> {
    const { value, done } = await reader.read();
    if (done) throw new Error('stream ended');
    buffer += value;
    let end = buffer.indexOf('\n\n');
    while (end >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      end = buffer.indexOf('\n\n');
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (event && data !== undefined) queue.push({ event, data: JSON.parse(data) });
    }
  }
  return {
    response,
    async next<T = Record<string, unknown>>(name: string, match: (data: T) => boolean = () => true): Promise<T> {
      for (;;) {
        const at = queue.findIndex((e) => e.event === name && match(e.data as T));
        if (at >= 0) return queue.splice(at, 1)[0]?.data as T;
        await pull();
      }
    },
    /** Resolves once the server has ended the stream. */
    async ended(): Promise<void> {
      for (;;) {
        const { done } = await reader.read();
        if (done) return;
      }
    },
    close(): void {
      controller.abort();
    },
  };
}
