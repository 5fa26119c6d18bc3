import { NodeError } from '../errors.js';

const WINDOW_MS = 60_000;

/**
 * What keeps a flood of MQTT commands from starving the camera and the SD card: at most `maxInFlight`
 * commands running at once on the node, and at most `perMinute` per sender in a fixed one-minute
 * window (as on HTTP). MQTT does not tell a subscriber who published, so a sender is its reply route:
 * its `reply_to`, its MQTT 5 response topic, or the shared `res` topic for the rest.
 */
export function createCommandLimits(options: { maxInFlight: number; perMinute: number; maxSenders?: number; now?: () => number }) {
  const now = options.now ?? Date.now;
  const maxSenders = options.maxSenders ?? 1000;
  const windows = new Map<string, { start: number; count: number }>();
  let inFlight = 0;

  function countSender(sender: string): void {
    if (options.perMinute <= 0) return;
    const time = now();
    let window = windows.get(sender);
    if (!window || time - window.start >= WINDOW_MS) {
      // Bounded memory: forget every expired window before tracking one more sender.
      if (!window && windows.size >= maxSenders) {
        for (const [key, w] of windows) if (time - w.start >= WINDOW_MS) windows.delete(key);
        if (windows.size >= maxSenders) windows.clear();
      }
      window = { start: time, count: 0 };
      windows.set(sender, window);
    }
    window.count++;
    if (window.count > options.perMinute) {
      const retryAfterS = Math.ceil((window.start + WINDOW_MS - time) / 1000);
      throw new NodeError('rate_limited', `too many commands from ${sender}: at most ${options.perMinute} per minute`, {
        details: { retry_after_s: retryAfterS },
      });
    }
  }

  return {
    /** Admits one command (throws `busy` or `rate_limited`); call the returned release when it has been answered. */
    admit(sender: string): () => void {
      if (options.maxInFlight > 0 && inFlight >= options.maxInFlight)
        throw new NodeError('busy', `${inFlight} commands are running; at most ${options.maxInFlight} at once`, {
          details: { in_flight: inFlight },
        });
      countSender(sender);
      inFlight++;
      let released = false;
      return () => {
        if (released) return;
        released = true;
        inFlight--;
      };
    },
    get inFlight(): number {
      return inFlight;
    },
  };
}
export type CommandLimits = ReturnType<typeof createCommandLimits>;
