import type { CameraInfo } from './camera/types.js';
import type { PartsStatus } from './parts.js';
import type { StorageUsage } from './storage/types.js';
import type { SystemSnapshot } from './telemetry/types.js';

/** `schemas/status.schema.json` as a type (a test validates real status objects against the schema). */
export interface NodeStatus extends PartsStatus {
  status: 'online' | 'degraded' | 'stopping';
  storage: { used_mb: number; limit_mb: number; available_mb: number; image_count: number; disk_free_mb: number };
  system: SystemSnapshot;
  node_id: string;
  timestamp: string;
  generated_at: string;
  version: string;
  camera: Pick<CameraInfo, 'backend' | 'command' | 'connected' | 'sensor' | 'simulated' | 'mode' | 'checked_at' | 'last_error'> & {
    queue: number;
  };
  captures: { total: number; failed: number; last_at: string | null; last_error: string | null };
  /** Extra blocks contributed by optional parts (mqtt, delivery), keyed by part. */
  [part: string]: unknown;
}

export interface CaptureCounters {
  total: number;
  failed: number;
  last_at: string | null;
  last_error: string | null;
}

const MB = 1024 * 1024;
const mb = (bytes: number): number => Math.round((bytes / MB) * 100) / 100;

export interface StatusInputs {
  nodeId: string;
  version: string;
  stopping: boolean;
  camera: CameraInfo;
  queueSize: number;
  usage: StorageUsage;
  system: SystemSnapshot;
  captures: CaptureCounters;
  extras: PartsStatus;
}

const pad = (value: number): string => String(value).padStart(2, '0');

/**
 * The seed's `timestamp`: local time to the second with no zone (`2025-01-30T12:26:01`), which
 * `datetime.fromisoformat` reads on every Python 3; before 3.11 it refuses a trailing `Z`.
 */
export function seedTimestamp(date: Date): string {
  const day = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  return `${day}T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

export function buildStatus(inputs: StatusInputs): NodeStatus {
  const { camera, usage } = inputs;
  const now = new Date();
  return {
    status: inputs.stopping ? 'stopping' : camera.connected ? 'online' : 'degraded',
    storage: {
      used_mb: mb(usage.used_bytes),
      limit_mb: mb(usage.limit_bytes),
      available_mb: mb(usage.available_bytes),
      image_count: usage.image_count,
      disk_free_mb: mb(usage.disk_free_bytes),
    },
    system: inputs.system,
    node_id: inputs.nodeId,
    timestamp: seedTimestamp(now),
    generated_at: now.toISOString(),
    version: inputs.version,
    camera: {
      backend: camera.backend,
      command: camera.command,
      connected: camera.connected,
      sensor: camera.sensor,
      simulated: camera.simulated,
      mode: camera.mode,
      checked_at: camera.checked_at,
      last_error: camera.last_error,
      queue: inputs.queueSize,
    },
    captures: { ...inputs.captures },
    ...inputs.extras,
  };
}
