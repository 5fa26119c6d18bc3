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
  /** Where a capture's image goes once stored (set by the command layer from the request). */
  deliver?: DeliveryChannel | 'none';
}

export interface CaptureParams extends CaptureSettings {
  /** Fire at this instant on the node's clock: epoch ms, or ISO 8601 with a zone (see commands/schedule.ts). */
  at?: number | string;
  /** Frames in a burst (default 1). */
  count?: number;
  /** Gap between the instants of burst frames (default 0: back to back). */
  interval_ms?: number;
  /** Deliver the image once captured; defaults to the node's DELIVER setting. */
  deliver?: DeliveryChannel | 'none';
}

export type DeliveryChannel = 'mqtt' | 'http';

/** One frame of a burst: its file, or the error it ended with. */
export interface BurstFrame {
  index: number;
  scheduled_at?: string;
  triggered_at?: string;
  late_ms?: number;
  filename?: string;
  error?: { code: string; message: string };
}

/**
 * The seed's capture response, kept exactly, plus the capture's metadata and timing. A burst adds
 * every frame (`files`, `frames`, each failed frame with its error); `file_info` is then its first
 * file, and `failed` counts the frames that failed (a burst where every frame failed is an error).
 */
export interface CaptureResult {
  status: 'success';
  file_info: {
    filename: string;
    /** Absolute path on the node, as the seed returned it. */
    filepath: string;
    /** The seed's `YYYYMMDD_HHMMSS`: the capture's second in the node's local time, as in the filename. */
    timestamp: string;
    size: number;
    /** ISO 8601 (ms, UTC): when the camera was told to capture; unambiguous whatever the time zone. */
    captured_at: string;
    metadata?: Record<string, unknown> | null;
  };
  node_id: string;
  duration_ms: number;
  evicted: string[];
  /** ISO 8601 (ms): when the camera was told to capture. */
  triggered_at: string;
  /** The `at` asked for (ISO 8601), for a scheduled capture. */
  scheduled_at?: string;
  /** triggered_at − scheduled_at in ms (fractional; negative = early), for a scheduled capture. */
  late_ms?: number;
  count?: number;
  interval_ms?: number;
  failed?: number;
  files?: Array<CaptureResult['file_info']>;
  frames?: BurstFrame[];
}

/** A listed image: the store's facts plus the seed's `timestamp` (see file_info). */
export interface ImageItem extends ImageInfo {
  timestamp: string;
}

export interface ListResult {
  images: ImageItem[];
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
