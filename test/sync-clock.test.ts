import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { createSchemaRegistry } from '../src/schemas.js';
import { createClockMonitor, parseChronyTracking, parseTimedatectl } from '../src/schedule/clock-health.js';
import { startTestNode } from './helpers/node.js';

const silent = pino({ level: 'silent' });
const TRACKING =
  'C0A80101,192.168.1.1,3,1772366400.123456789,-0.000012345,0.000003,0.000010,-12.345,0.001,0.020,0.012345,0.001234,64.2,Normal';

describe('reading the clock state', () => {
  test('chrony tracking: synchronised, its server, and the offset with the sign turned into "ahead"', () => {
    // A negative correction means the system clock is fast: ahead of the reference.
    assert.deepEqual(parseChronyTracking(TRACKING), { synchronized: true, source: 'chrony', server: '192.168.1.1', offset_ms: 0.012 });
    assert.equal(parseChronyTracking(TRACKING.replace(',-0.000012345,', ',0.25,'))?.offset_ms, -250);
  });

  test('chrony without a source is not synchronised', () => {
    assert.equal(parseChronyTracking(TRACKING.replace(/Normal$/, 'Not synchronised'))?.synchronized, false);
    assert.equal(parseChronyTracking(TRACKING.replace('C0A80101,192.168.1.1,3', '7F7F0101,127.127.1.1,10'))?.synchronized, false);
    assert.equal(parseChronyTracking('506 Cannot talk to daemon'), null);
  });

  test('timedatectl answers yes or no; anything else says nothing', () => {
    assert.equal(parseTimedatectl('yes\n'), true);
    assert.equal(parseTimedatectl('no'), false);
    assert.equal(parseTimedatectl(''), null);
  });
});

describe('the clock monitor runs the tools it finds', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'camera-node-clock-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function tool(sub: string, name: string, output: string, status = 0): Promise<string> {
    await mkdir(join(dir, sub), { recursive: true });
    const path = join(dir, sub, name);
    await writeFile(path, `#!/bin/sh\nprintf '%s\\n' '${output}'\nexit ${status}\n`);
    await chmod(path, 0o755);
    return join(dir, sub);
  }

  test('chrony where it runs', async () => {
    const path = await tool('chrony', 'chronyc', TRACKING);
    const monitor = createClockMonitor({ intervalMs: 60_000, logger: silent, searchPath: path });
    await monitor.start();
    const health = monitor.snapshot();
    await monitor.stop();
    assert.equal(health.source, 'chrony');
    assert.equal(health.synchronized, true);
    assert.equal(health.offset_ms, 0.012);
    assert.ok(health.checked_at !== null);
  });

  test('timedatectl when chrony cannot answer', async () => {
    const path = await tool('systemd', 'timedatectl', 'no');
    await tool('systemd', 'chronyc', '506 Cannot talk to daemon', 1);
    const monitor = createClockMonitor({ intervalMs: 60_000, logger: silent, searchPath: path });
    await monitor.start();
    const health = monitor.snapshot();
    await monitor.stop();
    assert.deepEqual(
      { ...health, checked_at: null },
      { synchronized: false, source: 'timedatectl', server: null, offset_ms: null, checked_at: null },
    );
  });

  test('nulls when nothing on the machine can tell', async () => {
    const monitor = createClockMonitor({ intervalMs: 60_000, logger: silent, searchPath: join(dir, 'empty') });
    await monitor.start();
    const health = monitor.snapshot();
    await monitor.stop();
    assert.equal(health.synchronized, null);
    assert.equal(health.source, null);
    assert.equal(health.offset_ms, null);
  });
});

test('the node publishes its clock state in the retained telemetry and the status', async () => {
  const node = await startTestNode({ mqtt_protocol_version: 4 });
  try {
    const status = (await (await fetch(`${node.httpUrl}/status`)).json()) as { clock?: { synchronized: unknown; checked_at: unknown } };
    assert.ok(status.clock, 'status has a clock block');
    assert.ok('synchronized' in status.clock);
    const client = await mqtt.connectAsync(node.node.mqttUrl ?? '', { protocolVersion: 4 });
    try {
      const message = new Promise<Record<string, unknown>>((resolve) => {
        client.on('message', (_topic, payload) => resolve(JSON.parse(payload.toString()) as Record<string, unknown>));
      });
      await client.subscribeAsync(`${node.config.mqtt_topic_prefix}/${node.config.node_id}/telemetry`);
      const telemetry = await message;
      const valid = createSchemaRegistry().validator('telemetry.schema.json');
      assert.ok(valid(telemetry), JSON.stringify(valid.errors));
      assert.ok(telemetry['clock'] && typeof telemetry['clock'] === 'object', 'telemetry has a clock block');
    } finally {
      await client.endAsync();
    }
  } finally {
    await node.stop();
  }
});
