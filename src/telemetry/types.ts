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
  /** The latest sample with the extra figures telemetry messages carry; never waits on a probe. */
  details(): TelemetryDetails;
}

/** The snapshot plus absolute figures, for MQTT telemetry and diagnostics. Sizes in MiB. */
export interface TelemetryDetails extends SystemSnapshot {
  /** 1, 5 and 15 minute load averages. */
  load_average: [number, number, number];
  memory_used_mb: number;
  memory_total_mb: number;
  /** Space an unprivileged process can still use on the capture dir's file system. */
  disk_free_mb: number;
  disk_total_mb: number;
  /** Resident memory of this process. */
  process_rss_mb: number;
  /** When the last sample completed (ISO 8601); null before the first. */
  sampled_at: string | null;
  /** The Wi-Fi link (/proc/net/wireless); null without a wireless interface. */
  wifi: WirelessReading | null;
}

/** One wireless interface's link, as `iwconfig` shows it. */
export interface WirelessReading {
  interface: string;
  /** Link quality as the driver reports it, out of 70 for cfg80211 drivers. */
  link_quality: number;
  link_quality_percent: number;
  /** Received signal level. */
  signal_dbm: number;
  /** null where the driver reports none (most do not). */
  noise_dbm: number | null;
}

export interface TelemetryOptions {
  /** A path on the file system whose usage is reported as disk_usage. */
  diskPath: string;
  sampleIntervalMs: number;
  /** Override for the thermal sensor (a Pi's `/sys/class/thermal/thermal_zone0/temp`); tests point it at a file. */
  thermalZonePath?: string;
  /** Override for the wireless statistics (`/proc/net/wireless`); tests point it at a file. */
  wirelessPath?: string;
  /** How long one probe may take before the sample goes on without it (default 5000). */
  probeTimeoutMs?: number;
  /** Replacements for the system probes, for machines (and tests) where one cannot be read. */
  probes?: Partial<TelemetryProbes>;
}

export interface MemoryReading {
  totalBytes: number;
  /** Memory available to new work without swapping (MemAvailable), as `free` reports it. */
  availableBytes: number;
}

export interface DiskReading {
  totalBytes: number;
  /** Free to unprivileged users (f_bavail). */
  freeBytes: number;
  /** Percent in use, as df computes it: used / (used + available to users). */
  usedPercent: number;
}

/** One reading each; a probe may reject or hang, the sampler copes with both. */
export interface TelemetryProbes {
  memory(): Promise<MemoryReading>;
  disk(path: string): Promise<DiskReading>;
  /** Degrees Celsius, or null without a sensor. */
  temperature(): Promise<number | null>;
  /** The Wi-Fi link, or null without a wireless interface. */
  wireless(): Promise<WirelessReading | null>;
}
