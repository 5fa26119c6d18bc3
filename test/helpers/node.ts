import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../../src/config/config.js';
import { createNode, type CameraNode, type NodeOptions } from '../../src/node.js';

/** The simulator's knobs for fast tests: a tiny sensor and no artificial delays. */
export const FAST_CAMERA: Record<string, string> = {
  CAMERA_SIM_SENSOR: 'tiny',
  CAMERA_SIM_START_MS: '0',
  CAMERA_SIM_CAPTURE_MS: '0',
  CAMERA_SIM_WRITE_MBPS: '0',
};

export interface TestNode {
  node: CameraNode;
  config: Config;
  httpUrl: string;
  dir: string;
  stop(): Promise<void>;
}

let counter = 0;

/**
 * A real node on loopback: port 0 for HTTP (and for the embedded broker unless mqtt_url is given),
 * temp dirs for images and logs, the simulated camera process with a tiny sensor.
 */
export async function startTestNode(overrides: Partial<Config> = {}, options: NodeOptions & { keepDir?: string } = {}): Promise<TestNode> {
  const dir = options.keepDir ?? (await mkdtemp(join(tmpdir(), 'camera-node-test-')));
  counter += 1;
  const config: Config = {
    ...(await loadConfig({ argv: [], env: {} })),
    node_id: `test-node-${process.pid}-${counter}`,
    host: '127.0.0.1',
    port: 0,
    capture_dir: join(dir, 'images'),
    log_dir: join(dir, 'logs'),
    camera_backend: 'simulated',
    mqtt_host: '127.0.0.1',
    mqtt_port: 0,
    min_free_disk_mb: 0,
    http_rate_limit: 0,
    camera_check_interval_s: 0,
    ...overrides,
  };
  const node = createNode(config, {
    cameraEnv: { ...FAST_CAMERA, ...options.cameraEnv },
    ...(options.thermalZonePath ? { thermalZonePath: options.thermalZonePath } : {}),
    ...(options.wirelessPath ? { wirelessPath: options.wirelessPath } : {}),
  });
  await node.start();
  return {
    node,
    config,
    httpUrl: node.httpUrl ?? '',
    dir,
    async stop() {
      await node.stop();
      if (!options.keepDir) await rm(dir, { recursive: true, force: true });
    },
  };
}
