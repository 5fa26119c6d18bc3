import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { createSchemaRegistry, describeSchemaError, readSchema, type JsonSchema } from '../schemas.js';

/**
 * The resolved configuration. Its keys are exactly the properties of `schemas/config.schema.json`
 * (a test keeps the two in step); optional keys are the ones without a default.
 */
export interface Config {
  node_id: string;
  host: string;
  port: number;
  capture_dir: string;
  log_dir: string;
  log_level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
  storage_limit_mb: number;
  min_free_disk_mb: number;
  evict_undelivered: boolean;
  max_log_size_mb: number;
  max_log_files: number;
  camera_backend: 'auto' | 'rpicam' | 'libcamera' | 'simulated';
  camera_command?: string;
  camera_index: number;
  camera_immediate: boolean;
  capture_timeout_s: number;
  max_queued_captures: number;
  camera_check_interval_s: number;
  camera_mode: 'cold' | 'warm';
  max_schedule_ahead_s: number;
  schedule_tolerance_ms: number;
  max_scheduled_captures: number;
  timelapse_interval_s: number;
  timelapse_start?: string;
  timelapse_stop?: string;
  cors_origins: string[];
  http_token?: string;
  http_rate_limit: number;
  max_log_lines: number;
  status_sample_interval_s: number;
  mqtt_enabled: boolean;
  mqtt_url?: string;
  mqtt_port: number;
  mqtt_host: string;
  mqtt_username?: string;
  mqtt_password?: string;
  mqtt_ca_file?: string;
  mqtt_cert_file?: string;
  mqtt_key_file?: string;
  mqtt_protocol_version: 4 | 5;
  mqtt_topic_prefix: string;
  mqtt_session_expiry_s: number;
  mqtt_max_command_bytes: number;
  max_command_age_s: number;
  mqtt_max_in_flight: number;
  mqtt_rate_limit: number;
  groups: string[];
  telemetry_interval_s: number;
  deliver: 'none' | 'mqtt' | 'http';
  chunk_size_kb: number;
  delivery_window: number;
  upload_url?: string;
  upload_method: 'POST' | 'PUT';
  upload_headers: Record<string, string>;
  upload_timeout_s: number;
  upload_retry_base_s: number;
  upload_retry_max_s: number;
  upload_max_attempts: number;
  ha_discovery: boolean;
  ha_discovery_prefix: string;
  public_url?: string;
}

export type ConfigKey = keyof Config;

/** A configuration problem a person must fix: main prints the message as one line and exits 2. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface ConfigSources {
  argv?: readonly string[];
  env?: Readonly<Record<string, string | undefined>>;
}

type PropertySchema = Record<string, unknown>;

export const envName = (key: string): string => key.toUpperCase();
export const flagName = (key: string): string => `--${key.replaceAll('_', '-')}`;

/**
 * The seed's default node id was `camera_node_<pid>`: a new identity at every restart, which breaks
 * retained MQTT topics, Home Assistant entities and anything addressing the node. The hostname is
 * what Pi owners already set per device, so derive the id from it.
 */
export function defaultNodeId(host = hostname()): string {
  const cleaned = host
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '-')
    .replace(/^[-_]+|-+$/g, '')
    .slice(0, 64);
  return cleaned.length > 0 && cleaned !== 'all' && cleaned !== 'group' ? cleaned : 'camera-node';
}

export function configProperties(schema: JsonSchema = readSchema('config.schema.json')): Record<string, PropertySchema> {
  return schema.properties ?? {};
}

/** Turns a string from the environment or a flag into the type the schema asks for. */
function fromText(key: string, text: string, property: PropertySchema): unknown {
  const type = property['type'] ?? (Array.isArray(property['enum']) && typeof property['enum'][0] === 'number' ? 'integer' : 'string');
  switch (type) {
    case 'integer':
    case 'number': {
      const value = text.trim() === '' ? Number.NaN : Number(text);
      if (Number.isNaN(value)) throw new ConfigError(`invalid ${key}: '${text}' (expected a number)`);
      return value;
    }
    case 'boolean': {
      const lowered = text.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(lowered)) return true;
      if (['0', 'false', 'no', 'off'].includes(lowered)) return false;
      throw new ConfigError(`invalid ${key}: '${text}' (expected true or false)`);
    }
    case 'object': {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        value = null;
      }
      if (value === null || typeof value !== 'object' || Array.isArray(value))
        throw new ConfigError(`invalid ${key}: (expected a JSON object)`);
      return value;
    }
    case 'array':
      return text
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item.length > 0);
    default:
      return text;
  }
}

/** Reads `--key value`, `--key=value` and bare boolean `--flag` for every schema key. */
export function parseFlags(argv: readonly string[], properties: Record<string, PropertySchema>) {
  const byFlag = new Map(Object.keys(properties).map((key) => [flagName(key), key]));
  const values: Record<string, unknown> = {};
  let configFile: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const eq = arg.indexOf('=');
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    let inline: string | undefined = eq > 0 ? arg.slice(eq + 1) : undefined;
    const takeValue = (): string => {
      if (inline !== undefined) return inline;
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) throw new ConfigError(`${flag} needs a value`);
      i++;
      return next;
    };
    if (flag === '--config') {
      configFile = takeValue();
      continue;
    }
    const key = byFlag.get(flag);
    if (!key) throw new ConfigError(`unknown option '${flag}' (see --help)`);
    const property = properties[key] ?? {};
    if (property['type'] === 'boolean' && inline === undefined && (argv[i + 1] === undefined || argv[i + 1]?.startsWith('--'))) {
      inline = 'true';
    }
    values[key] = fromText(flagName(key), takeValue(), property);
  }
  return { values, configFile };
}

function fromEnv(env: Readonly<Record<string, string | undefined>>, properties: Record<string, PropertySchema>) {
  const values: Record<string, unknown> = {};
  for (const [key, property] of Object.entries(properties)) {
    const text = env[envName(key)];
    if (text !== undefined && text !== '') values[key] = fromText(envName(key), text, property);
  }
  return values;
}

async function fromFile(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`config file ${path} must hold a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

/** Where a key's value came from, so an error can say which knob to turn. */
function sourceName(key: string, layers: { flags: Record<string, unknown>; env: Record<string, unknown> }, file?: string) {
  if (key in layers.flags) return flagName(key);
  if (key in layers.env) return envName(key);
  if (file) return `${key} in ${file}`;
  return key;
}

/** flags > env > file > defaults, validated against the schema; throws ConfigError with one line. */
export async function loadConfig(sources: ConfigSources = {}): Promise<Config> {
  const properties = configProperties();
  const env = sources.env ?? process.env;
  const flags = parseFlags(sources.argv ?? [], properties);
  const envValues = fromEnv(env, properties);
  const configFile = flags.configFile ?? env['CONFIG_FILE'];
  const fileValues = configFile ? await fromFile(configFile) : {};
  const merged: Record<string, unknown> = { ...fileValues, ...envValues, ...flags.values };
  merged['node_id'] ??= defaultNodeId();

  const registry = createSchemaRegistry({ useDefaults: true });
  const validate = registry.validator<Config>('config.schema.json');
  if (!validate(merged)) {
    const first = validate.errors?.[0];
    const key = first?.instancePath.split('/')[1] ?? (first?.params['additionalProperty'] as string | undefined) ?? '';
    const value = key ? merged[key] : undefined;
    const where = key ? sourceName(key, { flags: flags.values, env: envValues }, configFile) : 'config';
    const shown = properties[key]?.['x-secret'] ? '<redacted>' : JSON.stringify(value);
    throw new ConfigError(`invalid ${where}: ${shown} (${describeSchemaError(validate.errors).replace(/^\/\w+ /, '')})`);
  }
  return merged as unknown as Config;
}

/** A copy safe to log or show: secrets replaced, credentials stripped from URLs. */
export function redactConfig(config: Config): Record<string, unknown> {
  const properties = configProperties();
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) {
    const property = properties[key] ?? {};
    if (property['x-secret'] && value !== undefined) out[key] = '<redacted>';
    else if (property['x-secret-userinfo'] && typeof value === 'string') out[key] = value.replace(/\/\/[^@/]*@/, '//<redacted>@');
    else out[key] = value;
  }
  return out;
}

export function configHelp(): string {
  const rows = Object.entries(configProperties()).map(([key, property]) => {
    const type = Array.isArray(property['enum']) ? (property['enum'] as unknown[]).join('|') : String(property['type'] ?? '');
    const def = property['default'] === undefined ? '' : ` (default ${JSON.stringify(property['default'])})`;
    return `  ${flagName(key)} <${type}>\n      ${envName(key)}${def}. ${String(property['description'] ?? '')}`;
  });
  return rows.join('\n');
}
