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

/**
 * Runs `camera-node` as its own process, as systemd would, and waits until its HTTP API listens
 * (read from its JSON log on stdout: the port is 0, so only the node knows it).
 */
export async function spawnDaemon(env: Record<string, string>, timeoutMs = 15_000): Promise<Daemon> {
  const child = spawn(process.execPath, [MAIN], {
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
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const record = JSON.parse(line) as Record<string, unknown>;
        records.push(record);
        if (record['msg'] === 'HTTP API listening') {
          clearTimeout(timer);
          resolve(String(record['url']));
        }
      } catch {
        // not a log record
      }
    });
  });
  return { child, httpUrl, records, exited };
}
