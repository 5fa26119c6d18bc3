import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { FAST_CAMERA } from './node.js';

export const MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url));

export interface Daemon {
  child: ChildProcess;
  httpUrl: string;
  /** Every JSON log record the daemon printed so far. */
  records: Array<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface SpawnOptions {
  timeoutMs?: number;
  /** The program to run (default this build's; a bench may give another build's). */
  main?: string;
  /** The log message to wait for (default 'HTTP API listening'; 'camera-node started' waits for every part). */
  ready?: string;
}

/**
 * Runs `camera-node` as its own process, as systemd would, and waits for its `ready` record; the
 * HTTP URL comes from its JSON log on stdout (the port is 0, so only the node knows it).
 */
export async function spawnDaemon(env: Record<string, string>, options: SpawnOptions = {}): Promise<Daemon> {
  const { timeoutMs = 15_000, main = MAIN, ready = 'HTTP API listening' } = options;
  const child = spawn(process.execPath, [main], {
    env: {
      PATH: process.env['PATH'] ?? '',
      HOST: '127.0.0.1',
      PORT: '0',
      MQTT_PORT: '0',
      MQTT_HOST: '127.0.0.1',
      CAMERA_BACKEND: 'simulated',
      // The port is read from the log on stdout; the file keeps GET /logs as the tests expect.
      LOG_TARGET: 'both',
      ...FAST_CAMERA,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const records: Array<Record<string, unknown>> = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const httpUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`daemon did not start in ${timeoutMs} ms: ${stderr}`)), timeoutMs);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`daemon exited early (${code ?? signal}): ${stderr}`));
    });
    let url = '';
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const record = JSON.parse(line) as Record<string, unknown>;
        records.push(record);
        if (record['msg'] === 'HTTP API listening') url = String(record['url']);
        if (record['msg'] === ready) {
          clearTimeout(timer);
          resolve(url);
        }
      } catch {
        // not a log record
      }
    });
  });
  return { child, httpUrl, records, exited };
}
