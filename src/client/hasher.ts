import { createHash, type Hash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/** An incremental SHA-256 that may run off the main thread. */
export interface StreamHash {
  update(data: Buffer): void;
  digest(): Promise<string>;
}

export interface Hasher {
  create(): StreamHash;
  /** Bytes waiting to be hashed. */
  backlog(): number;
  /** Resolves once no more than `maxBytes` wait to be hashed (backpressure for the receiver). */
  below(maxBytes: number): Promise<void>;
  stop(): Promise<void>;
}

/** The worker's side: one Hash per id; every update is acknowledged with its size, so the sender can bound what waits. */
const WORKER = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
parentPort.on('message', ({ id, op, data }) => {
  if (op === 'update') {
    let hash = hashes.get(id);
    if (!hash) hashes.set(id, (hash = createHash('sha256')));
    hash.update(data);
    parentPort.postMessage({ op: 'ack', bytes: data.byteLength });
  } else if (op === 'digest') {
    const hash = hashes.get(id) ?? createHash('sha256');
    hashes.delete(id);
    parentPort.postMessage({ op: 'digest', id, hex: hash.digest('hex') });
  }
});
`;

function inThread(): Hasher {
  return {
    create(): StreamHash {
      const hash: Hash = createHash('sha256');
      return { update: (data) => void hash.update(data), digest: async () => hash.digest('hex') };
    },
    backlog: () => 0,
    below: async () => undefined,
    stop: async () => undefined,
  };
}

/**
 * SHA-256 in a worker thread where there is a core to spare: verifying costs about as much CPU as
 * receiving, so on two cores or more the two overlap. One core (a Pi Zero) hashes in this thread:
 * a worker would only add its memory.
 */
export function createHasher(options: { worker?: boolean } = {}): Hasher {
  if (!(options.worker ?? availableParallelism() > 1)) return inThread();
  const worker = new Worker(WORKER, { eval: true });
  worker.unref();
  let queued = 0;
  let next = 0;
  let waiters: Array<() => void> = [];
  const digests = new Map<number, (hex: string) => void>();
  worker.on('message', (message: { op: 'ack'; bytes: number } | { op: 'digest'; id: number; hex: string }) => {
    if (message.op === 'ack') {
      queued -= message.bytes;
      const ready = waiters;
      waiters = [];
      for (const wake of ready) wake();
      return;
    }
    digests.get(message.id)?.(message.hex);
    digests.delete(message.id);
  });
  return {
    create(): StreamHash {
      const id = next++;
      return {
        update(data: Buffer): void {
          // A copy the worker owns: the original may still be being written to disk.
          const copy = new Uint8Array(data);
          queued += copy.byteLength;
          worker.postMessage({ id, op: 'update', data: copy }, [copy.buffer]);
        },
        digest: () =>
          new Promise<string>((resolve) => {
            digests.set(id, resolve);
            worker.postMessage({ id, op: 'digest' });
          }),
      };
    },
    backlog: () => queued,
    async below(maxBytes: number): Promise<void> {
      while (queued > maxBytes) await new Promise<void>((resolve) => waiters.push(resolve));
    },
    async stop(): Promise<void> {
      for (const wake of waiters) wake();
      waiters = [];
      await worker.terminate();
    },
  };
}
