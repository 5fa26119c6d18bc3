/**
 * Runs jobs one after another: a camera has one sensor, so probes and captures of one camera never
 * overlap, whatever asks for them.
 */
export function createSerialRunner() {
  let tail: Promise<unknown> = Promise.resolve();
  let pending = 0;
  return {
    run<T>(job: () => Promise<T>): Promise<T> {
      pending++;
      const result = tail.then(job).finally(() => {
        pending--;
      });
      tail = result.catch(() => undefined);
      return result;
    },
    /** Jobs queued or running. */
    pending: (): number => pending,
    /** Resolves once nothing is queued or running, including jobs queued while waiting. */
    async idle(): Promise<void> {
      for (let seen = tail; ; seen = tail) {
        await seen;
        if (seen === tail) return;
      }
    },
  };
}
