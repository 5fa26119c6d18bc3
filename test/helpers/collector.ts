import { spawn, type ChildProcess } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MAIN } from './daemon.js';

export interface CollectorProcess {
  child: ChildProcess;
  /** Every image line it printed: time, node, path, size, sha256. */
  lines: string[];
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `camera-node collect` as its own process, as systemd runs it; resolves once it is subscribed. */
export async function spawnCollector(
  url: string,
  outDir: string,
  name: string,
  extra: string[] = [],
  timeoutMs = 20_000,
): Promise<CollectorProcess> {
  const child = spawn(process.execPath, [MAIN, 'collect', '--broker', url, '--out', outDir, '--name', name, ...extra], {
    env: { PATH: process.env['PATH'] ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let stderr = '';
  let stdout = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    const parts = stdout.split('\n');
    stdout = parts.pop() ?? '';
    lines.push(...parts);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the collector did not start in ${timeoutMs} ms: ${stderr}`)), timeoutMs);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`the collector exited early (${code ?? signal}): ${stderr}`));
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (stderr.includes(' watching ')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return { child, lines, stderr: () => stderr, exited };
}

/** Every file under `dir` (relative paths), hidden ones included. */
export async function filesUnder(dir: string): Promise<string[]> {
  const found = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return found.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name).slice(dir.length + 1));
}
