/**
 * MQTT command plane figures, as ratios from one run:
 *
 *   node dist/bench/mqtt.js [--runs N] [--nodes N]
 *
 * 1. Round trip of a `status` command (publish → reply received) through a node, against a bare echo
 *    client on the same broker (the floor: broker and client costs only). Interleaved run by run.
 * 2. One broadcast `status` to N nodes in this process: the spread between the first and the last reply.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { loadConfig } from '../src/config/config.js';
import { startEmbeddedBroker } from '../src/mqtt/broker.js';
import { createNode, type CameraNode } from '../src/node.js';
import { elapsedMs, printTable, summarize } from './stats.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '200' }, nodes: { type: 'string', default: '20' } } });
const runs = Number(values.runs);
const nodeCount = Number(values.nodes);
const FAST_CAMERA = { CAMERA_SIM_SENSOR: 'tiny', CAMERA_SIM_START_MS: '0', CAMERA_SIM_CAPTURE_MS: '0', CAMERA_SIM_WRITE_MBPS: '0' };

async function startNode(dir: string, nodeId: string, brokerUrl: string): Promise<CameraNode> {
  const config = {
    ...(await loadConfig({ argv: [], env: {} })),
    node_id: nodeId,
    host: '127.0.0.1',
    port: 0,
    capture_dir: join(dir, nodeId, 'images'),
    log_dir: join(dir, nodeId, 'logs'),
    camera_backend: 'simulated' as const,
    mqtt_url: brokerUrl,
    mqtt_protocol_version: 4 as const,
    min_free_disk_mb: 0,
    camera_check_interval_s: 0,
    telemetry_interval_s: 3600,
    ha_discovery: false,
  };
  const node = createNode(config, { cameraEnv: FAST_CAMERA });
  await node.start();
  return node;
}

const dir = await mkdtemp(join(tmpdir(), 'camera-node-bench-mqtt-'));
const broker = await startEmbeddedBroker({ host: '127.0.0.1', port: 0, logger: pino({ level: 'silent' }) });
const controller = await mqtt.connectAsync(broker.url, { protocolVersion: 4 });
const echo = await mqtt.connectAsync(broker.url, { protocolVersion: 4 });
const nodes: CameraNode[] = [];
try {
  await echo.subscribeAsync('echo/cmd', { qos: 1 });
  echo.on('message', (_topic, payload) => void echo.publishAsync('echo/res', payload, { qos: 1 }));
  const pending = new Map<string, (at: bigint) => void>();
  controller.on('message', (_topic, payload) => {
    const id = (JSON.parse(payload.toString()) as { id: string }).id;
    pending.get(id)?.(process.hrtime.bigint());
  });
  await controller.subscribeAsync(['echo/res', 'cameras/+/res'], { qos: 1 });
  const roundTrip = async (topic: string, id: string): Promise<number> => {
    const start = process.hrtime.bigint();
    const replied = new Promise<bigint>((resolve) => pending.set(id, resolve));
    await controller.publishAsync(topic, JSON.stringify({ id, action: 'status' }), { qos: 1 });
    await replied;
    pending.delete(id);
    return elapsedMs(start);
  };

  nodes.push(await startNode(dir, 'bench-0', broker.url));
  const viaNode: number[] = [];
  const viaEcho: number[] = [];
  for (let i = 0; i < runs + 20; i += 1) {
    const e = await roundTrip('echo/cmd', `e${i}`);
    const n = await roundTrip('cameras/bench-0/cmd', `n${i}`);
    if (i >= 20) {
      viaEcho.push(e);
      viaNode.push(n);
    }
  }
  const e = summarize(viaEcho);
  const n = summarize(viaNode);
  printTable(
    `status command round trip, ${runs} runs each (ms)`,
    ['path', 'median', 'p95', 'min'],
    [
      ['bare echo client', e.median, e.p95, e.min],
      ['camera node', n.median, n.p95, n.min],
    ],
  );

  for (let i = 1; i < nodeCount; i += 1) nodes.push(await startNode(dir, `bench-${i}`, broker.url));
  const spreads: number[] = [];
  for (let round = 0; round < 10; round += 1) {
    const arrivals: number[] = [];
    const id = `fleet-${round}`;
    const done = new Promise<void>((resolve) => {
      const onMessage = (_topic: string, payload: Buffer): void => {
        if ((JSON.parse(payload.toString()) as { id: string }).id !== id) return;
        arrivals.push(Number(process.hrtime.bigint()) / 1e6);
        if (arrivals.length === nodeCount) {
          controller.off('message', onMessage);
          resolve();
        }
      };
      controller.on('message', onMessage);
    });
    await controller.publishAsync('cameras/all/cmd', JSON.stringify({ id, action: 'status' }), { qos: 1 });
    await done;
    spreads.push(Math.max(...arrivals) - Math.min(...arrivals));
  }
  const s = summarize(spreads);
  printTable(
    `broadcast status to ${nodeCount} nodes in one process, 10 rounds (ms)`,
    ['figure', 'median', 'max'],
    [['first to last reply', s.median, s.max]],
  );
  printTable('ratios (one run)', ['figure', 'ratio'], [['node round trip ÷ bare echo round trip', n.median / e.median]]);
} finally {
  for (const node of nodes) await node.stop();
  await controller.endAsync();
  await echo.endAsync();
  await broker.stop();
  await rm(dir, { recursive: true, force: true });
}
