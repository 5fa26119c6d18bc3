import type { CaptureSettings } from '../camera/types.js';
import type { ImageInfo } from '../storage/types.js';
import type { LogEntry } from '../logs/types.js';
import type { NodeStatus } from '../status.js';

/** Who asked: carried into logs and events. */
export interface CommandContext {
  source: 'http' | 'mqtt' | 'schedule' | 'cli';
  /** The request's id (MQTT `id`, HTTP request id), echoed in events. */
  requestId?: string;
  /** Aborts a queued or running capture (e.g. the HTTP client went away, the node is stopping). */
  signal?: AbortSignal;
}

export interface CaptureParams extends CaptureSettings {}

/** The seed's capture response, kept exactly, plus the capture's metadata. */
export interface CaptureResult {
  status: 'success';
  file_info: {
    filename: string;
    /** Absolute path on the node, as the seed returned it. */
    filepath: string;
    /** ISO 8601 capture time. */
    timestamp: string;
    size: number;
    metadata?: Record<string, unknown> | null;
  };
  node_id: string;
  duration_ms: number;
  evicted: string[];
}

export interface ListResult {
  images: ImageInfo[];
  count: number;
}

export interface DeleteResult {
  status: 'success';
  message: string;
  filename: string;
}

export interface LogsResult {
  logs: LogEntry[];
  lines: number;
}

/**
 * The one implementation of every operation. HTTP routes and the MQTT command handler are thin
 * adapters over it: they parse input, call these, and map results and NodeErrors.
 */
export interface Commands {
  capture(params: CaptureParams, context: CommandContext): Promise<CaptureResult>;
  list(): ListResult;
  /** Info and absolute path of a stored image, for streaming it. */
  image(filename: string): { info: ImageInfo; path: string };
  delete(filename: string, context: CommandContext): Promise<DeleteResult>;
  logs(lines: number): Promise<LogsResult>;
  status(): NodeStatus;
}
