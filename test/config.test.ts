import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  ConfigError,
  configProperties,
  defaultNodeId,
  envName,
  flagName,
  loadConfig,
  redactConfig,
  type ConfigKey,
} from '../src/config/config.js';

const run = promisify(execFile);
const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));

// The compiler makes this list exactly the keys of Config; the test below makes it exactly the schema's.
const CONFIG_KEYS: Record<ConfigKey, true> = {
  node_id: true,
  host: true,
  port: true,
  capture_dir: true,
  log_dir: true,
  log_level: true,
  storage_limit_mb: true,
  min_free_disk_mb: true,
  evict_undelivered: true,
  max_log_size_mb: true,
  max_log_files: true,
  camera_backend: true,
  camera_command: true,
  camera_index: true,
  camera_immediate: true,
  capture_timeout_s: true,
  max_queued_captures: true,
  camera_check_interval_s: true,
  cors_origins: true,
  http_token: true,
  http_rate_limit: true,
  max_log_lines: true,
  status_sample_interval_s: true,
  mqtt_enabled: true,
  mqtt_url: true,
  mqtt_port: true,
  mqtt_host: true,
  mqtt_username: true,
  mqtt_password: true,
  mqtt_ca_file: true,
  mqtt_cert_file: true,
  mqtt_key_file: true,
  mqtt_protocol_version: true,
  mqtt_topic_prefix: true,
  mqtt_session_expiry_s: true,
  mqtt_max_command_bytes: true,
  max_command_age_s: true,
  mqtt_max_in_flight: true,
  mqtt_rate_limit: true,
  groups: true,
  telemetry_interval_s: true,
  deliver: true,
  chunk_size_kb: true,
  delivery_window: true,
  upload_url: true,
  upload_method: true,
  upload_headers: true,
  upload_timeout_s: true,
  upload_retry_max_s: true,
  upload_retry_base_s: true,
  upload_max_attempts: true,
  ha_discovery: true,
  ha_discovery_prefix: true,
  public_url: true,
  camera_mode: true,
  max_schedule_ahead_s: true,
  schedule_tolerance_ms: true,
  max_scheduled_captures: true,
  timelapse_interval_s: true,
  timelapse_start: true,
  timelapse_stop: true,
};

test('the Config type and schemas/config.schema.json have the same keys', () => {
  assert.deepEqual(Object.keys(configProperties()).sort(), Object.keys(CONFIG_KEYS).sort());
});

test('defaults are the seed’s where it had them', async () => {
  const config = await loadConfig({ argv: [], env: {} });
  assert.equal(config.port, 5003);
  assert.equal(config.host, '0.0.0.0');
  assert.equal(config.capture_dir, 'captured_photos');
  assert.equal(config.log_dir, 'logs');
  assert.equal(config.storage_limit_mb, 1000);
  assert.equal(config.max_log_size_mb, 10);
  assert.equal(config.max_log_files, 5);
  assert.equal(config.camera_backend, 'auto');
  assert.deepEqual(config.cors_origins, ['*']);
  assert.equal(config.http_token, undefined);
  assert.equal(config.node_id, defaultNodeId());
});

test('the default node id is stable and topic-safe', () => {
  assert.equal(defaultNodeId('Pi-Zero.Local'), 'pi-zero-local');
  assert.equal(defaultNodeId('pi-zero.local'), defaultNodeId('pi-zero.local'));
  assert.equal(defaultNodeId('all'), 'camera-node');
  assert.equal(defaultNodeId('+#/'), 'camera-node');
  assert.match(defaultNodeId('a'.repeat(200)), /^[a-z0-9][a-z0-9_-]{0,63}$/);
});

test('precedence: flags > env > file > defaults', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'camera-node-config-'));
  try {
    const file = join(dir, 'config.json');
    await writeFile(file, JSON.stringify({ port: 6000, storage_limit_mb: 50, node_id: 'from-file', groups: ['a'] }));
    const config = await loadConfig({
      argv: ['--config', file, '--port', '7000', '--camera-immediate=false'],
      env: { PORT: '6500', STORAGE_LIMIT_MB: '75', GROUPS: 'north, south' },
    });
    assert.equal(config.port, 7000);
    assert.equal(config.storage_limit_mb, 75);
    assert.equal(config.node_id, 'from-file');
    assert.deepEqual(config.groups, ['north', 'south']);
    assert.equal(config.camera_immediate, false);
    const viaEnv = await loadConfig({ argv: [], env: { CONFIG_FILE: file } });
    assert.equal(viaEnv.port, 6000);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an invalid value names the key, the value and what was expected', async () => {
  await assert.rejects(loadConfig({ argv: [], env: { PORT: 'abc' } }), (err: Error) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /PORT/);
    assert.match(err.message, /abc/);
    assert.match(err.message, /number/);
    return true;
  });
  await assert.rejects(loadConfig({ argv: ['--port', '70000'], env: {} }), /--port: 70000 \(must be <= 65535\)/);
  await assert.rejects(loadConfig({ argv: [], env: { CAMERA_BACKEND: 'webcam' } }), /CAMERA_BACKEND: "webcam" \(must be one of/);
  await assert.rejects(loadConfig({ argv: [], env: { NODE_ID: 'a/b' } }), /NODE_ID: "a\/b"/);
  await assert.rejects(loadConfig({ argv: [], env: { NODE_ID: 'all' } }), /NODE_ID/);
  await assert.rejects(
    loadConfig({ argv: [], env: { EVICT_UNDELIVERED: 'maybe' } }),
    /EVICT_UNDELIVERED: 'maybe' \(expected true or false\)/,
  );
  await assert.rejects(loadConfig({ argv: ['--no-such-thing'], env: {} }), /unknown option '--no-such-thing'/);
  await assert.rejects(loadConfig({ argv: ['--port'], env: {} }), /--port needs a value/);
});

test('a config file with an unknown key or bad JSON is refused', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'camera-node-config-'));
  try {
    const unknown = join(dir, 'unknown.json');
    await writeFile(unknown, JSON.stringify({ prot: 1 }));
    await assert.rejects(loadConfig({ argv: ['--config', unknown], env: {} }), /unknown property 'prot'/);
    const broken = join(dir, 'broken.json');
    await writeFile(broken, '{ "port": ');
    await assert.rejects(loadConfig({ argv: ['--config', broken], env: {} }), /not valid JSON/);
    await assert.rejects(loadConfig({ argv: ['--config', join(dir, 'missing.json')], env: {} }), /cannot read config file/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('secrets are redacted', async () => {
  const config = await loadConfig({
    argv: [],
    env: { HTTP_TOKEN: 's3cret-token', MQTT_PASSWORD: 'hunter2', MQTT_URL: 'mqtt://user:pw@broker:1883' },
  });
  const shown = JSON.stringify(redactConfig(config));
  assert.ok(!shown.includes('s3cret-token'));
  assert.ok(!shown.includes('hunter2'));
  assert.ok(!shown.includes(':pw@'));
  assert.match(shown, /mqtt:\/\/<redacted>@broker:1883/);
});

test('camera-node --help lists every option; a bad value exits 2 with one line', async () => {
  const help = await run(process.execPath, [MAIN, '--help']);
  for (const key of Object.keys(configProperties())) {
    assert.ok(help.stdout.includes(flagName(key)), `--help lacks ${flagName(key)}`);
    assert.ok(help.stdout.includes(envName(key)), `--help lacks ${envName(key)}`);
  }
  await assert.rejects(run(process.execPath, [MAIN], { env: { ...process.env, PORT: 'abc' } }), (err: { code: number; stderr: string }) => {
    assert.equal(err.code, 2);
    assert.equal(err.stderr.trim().split('\n').length, 1);
    assert.match(err.stderr, /PORT: 'abc'/);
    return true;
  });
});
