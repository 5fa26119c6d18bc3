import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

/** Why Mosquitto tests cannot run here, or null when they can. */
export function mosquittoMissing(): string | null {
  const found = spawnSync('mosquitto', ['-h'], { stdio: 'ignore' });
  return found.error ? 'mosquitto is not installed (Debian: apt-get install mosquitto mosquitto-clients)' : null;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export interface Mosquitto {
  port: number;
  url: string;
  dir: string;
  /** Stops the broker process (its persistence file is kept, so a restart keeps sessions). */
  kill(): Promise<void>;
  restart(): Promise<void>;
  /** SIGHUP: Mosquitto rereads its password and ACL files without dropping anyone. */
  reload(): void;
  stop(): Promise<void>;
}

/**
 * A real Mosquitto on a free loopback port with its own config in a temp dir. `extraConfig` lines
 * are appended (listener options, password_file, acl_file...). Persistence is on, so a restart keeps
 * persistent sessions and their queued messages, as a production broker does.
 */
export async function startMosquitto(extraConfig: string[] = [], options: { port?: number; listener?: string } = {}): Promise<Mosquitto> {
  const dir = await mkdtemp(join(tmpdir(), 'camera-node-mosquitto-'));
  const port = options.port ?? (await freePort());
  const conf = join(dir, 'mosquitto.conf');
  await writeFile(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      ...(extraConfig.some((line) => line.startsWith('password_file') || line.startsWith('allow_anonymous'))
        ? []
        : ['allow_anonymous true']),
      'persistence true',
      `persistence_location ${dir}/`,
      'log_dest none',
      // As root, mosquitto would switch to its own user, which cannot read this test's temp dir.
      ...(process.getuid?.() === 0 ? ['user root'] : []),
      ...extraConfig,
      '',
    ].join('\n'),
  );
  let child: ChildProcess | null = null;
  const launch = async (): Promise<void> => {
    const proc = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    let stderr = '';
    proc.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<never>((_, reject) =>
      proc.once('exit', (code) => reject(new Error(`mosquitto exited (${code}): ${stderr}`))),
    );
    await Promise.race([waitForPort(port, 5000), exited]);
    exited.catch(() => undefined);
  };
  const kill = async (): Promise<void> => {
    const proc = child;
    child = null;
    if (!proc || proc.exitCode !== null) return;
    const gone = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGTERM');
    await gone;
  };
  await launch();
  return {
    port,
    url: `${options.listener ?? 'mqtt'}://127.0.0.1:${port}`,
    dir,
    kill,
    restart: async () => {
      await kill();
      await launch();
    },
    reload: () => {
      (child as ChildProcess | null)?.kill('SIGHUP');
    },
    stop: async () => {
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface TestCertificates {
  caFile: string;
  certFile: string;
  keyFile: string;
  /** The broker's TLS lines for `startMosquitto`. */
  config: string[];
}

/** A throwaway CA and a server certificate for 127.0.0.1, made with openssl into `dir`. */
export async function makeTestCertificates(dir: string): Promise<TestCertificates> {
  const ca = join(dir, 'ca');
  const server = join(dir, 'server');
  const days = ['-days', '1'];
  await execa('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    ...days,
    '-subj',
    '/CN=camera-node test CA',
    '-keyout',
    `${ca}.key`,
    '-out',
    `${ca}.crt`,
  ]);
  await writeFile(`${server}.ext`, 'subjectAltName=IP:127.0.0.1\n');
  await execa('openssl', [
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    '/CN=127.0.0.1',
    '-keyout',
    `${server}.key`,
    '-out',
    `${server}.csr`,
  ]);
  await execa('openssl', [
    'x509',
    '-req',
    '-in',
    `${server}.csr`,
    '-CA',
    `${ca}.crt`,
    '-CAkey',
    `${ca}.key`,
    '-CAcreateserial',
    ...days,
    '-out',
    `${server}.crt`,
    '-extfile',
    `${server}.ext`,
  ]);
  return {
    caFile: `${ca}.crt`,
    certFile: `${server}.crt`,
    keyFile: `${server}.key`,
    config: [`cafile ${ca}.crt`, `certfile ${server}.crt`, `keyfile ${server}.key`],
  };
}
