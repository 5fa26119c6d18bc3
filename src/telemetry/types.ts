/** The `system` block of the status, in the seed's shape. */
export interface SystemSnapshot {
  cpu_percent: number;
  memory_percent: number;
  /** Percent of the capture dir's file system in use. */
  disk_usage: number;
  /** Degrees Celsius; null where the machine has no sensor. */
  cpu_temperature: number | null;
  /** Seconds since the machine booted. */
  uptime: number;
}

export interface Telemetry {
  /** Takes a first sample, then samples every interval in the background. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The latest sample; never waits on a probe. */
  snapshot(): SystemSnapshot;
}

export interface TelemetryOptions {
  /** A path on the file system whose usage is reported as disk_usage. */
  diskPath: string;
  sampleIntervalMs: number;
  /** Override for the thermal sensor (a Pi's `/sys/class/thermal/thermal_zone0/temp`); tests point it at a file. */
  thermalZonePath?: string;
}
