import type { FastifyInstance } from 'fastify';
import type { EventBus } from '../events.js';
import type { NodeStatus } from '../status.js';
import type { StorageUsage } from '../storage/types.js';
import { CONTENT_TYPE, Counter, counter, gauge, Histogram, render, type Labels, type MetricFamily, type Sample } from './text.js';

export interface MetricsOptions {
  nodeId: string;
  version: string;
  events: EventBus;
  /** The node's status object, read at each scrape (camera, system, mqtt, delivery blocks). */
  status: () => NodeStatus;
  /** Exact storage figures in bytes (the status rounds to MB). */
  usage: () => StorageUsage;
}

export interface Metrics {
  /** Subscribes the counters to the node's events. */
  start(): void;
  stop(): void;
  /** The exposition text, as served on GET /metrics. */
  render(): string;
  /** Registers `GET /metrics` on the node's HTTP server (behind its token when one is set). */
  plugin: (app: FastifyInstance) => void;
}

/** A Pi Zero captures in 1-3 s warm, up to ~10 s for a cold start or a 25 MB DNG on a slow card. */
export const CAPTURE_BUCKETS_S = [0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60] as const;

const OWNER = 'metrics';

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const num = (value: unknown): number | null => (typeof value === 'number' && Number.isFinite(value) ? value : null);

/**
 * Prometheus metrics of one node. Counters live in this object (never in the module), fed from the
 * node's EventBus; everything else is read from the status at scrape time, so a scrape costs a few
 * property reads and no probe.
 */
export function createMetrics(options: MetricsOptions): Metrics {
  const common: Labels = { node_id: options.nodeId };
  const captures = new Counter('camera_node_captures_total', 'Captures that produced a stored image.');
  const failures = new Counter('camera_node_capture_failures_total', 'Captures that failed, by error code.');
  const capturedBytes = new Counter('camera_node_captured_bytes_total', 'Bytes of DNG written by successful captures.');
  const deleted = new Counter('camera_node_images_deleted_total', 'Images deleted on request.');
  const evicted = new Counter('camera_node_images_evicted_total', 'Images deleted to make room, by reason.');
  const latency = new Histogram(
    'camera_node_capture_duration_seconds',
    'Time from the capture request to the stored image.',
    CAPTURE_BUCKETS_S,
  );

  function families(): MetricFamily[] {
    const status = options.status();
    const usage = options.usage();
    const system = status.system;
    const one = (value: number): MetricFamily['samples'] => [{ labels: common, value }];
    const list: MetricFamily[] = [
      gauge('camera_node_info', 'Constant 1, labelled with the node version, camera backend and sensor.', [
        {
          labels: { ...common, version: options.version, backend: status.camera.backend, sensor: status.camera.sensor ?? '' },
          value: 1,
        },
      ]),
      gauge('camera_node_camera_connected', '1 when the camera app sees a camera.', one(status.camera.connected ? 1 : 0)),
      gauge('camera_node_capture_queue_length', 'Captures waiting behind the running one.', one(status.camera.queue)),
      captures.family(common),
      failures.family(common),
      capturedBytes.family(common),
      latency.family(common),
      deleted.family(common),
      evicted.family(common),
      gauge('camera_node_storage_used_bytes', 'Bytes used by stored images.', one(usage.used_bytes)),
      gauge('camera_node_storage_limit_bytes', 'Storage budget for images.', one(usage.limit_bytes)),
      gauge('camera_node_storage_images', 'Images stored.', one(usage.image_count)),
      gauge('camera_node_disk_free_bytes', 'Real free space on the capture dir file system.', one(usage.disk_free_bytes)),
      gauge('camera_node_cpu_percent', 'CPU use of the machine, percent.', one(system.cpu_percent)),
      gauge('camera_node_memory_percent', 'Memory use of the machine, percent.', one(system.memory_percent)),
      gauge('camera_node_disk_usage_percent', 'Use of the capture dir file system, percent.', one(system.disk_usage)),
      gauge('camera_node_system_uptime_seconds', 'Seconds since the machine booted.', one(system.uptime)),
    ];
    // No sample rather than a made-up 0 where the machine has no thermal sensor.
    if (system.cpu_temperature !== null) {
      list.push(gauge('camera_node_cpu_temperature_celsius', 'SoC temperature.', one(system.cpu_temperature)));
    }
    list.push(...mqttFamilies(status['mqtt'], common), ...deliveryFamilies(status['delivery'], common));
    const memory = process.memoryUsage();
    const cpu = process.cpuUsage();
    list.push(
      gauge('process_resident_memory_bytes', 'Resident memory of the node process.', one(memory.rss)),
      gauge('nodejs_heap_used_bytes', 'V8 heap in use.', one(memory.heapUsed)),
      counter('process_cpu_seconds_total', 'User and system CPU time of the node process.', one((cpu.user + cpu.system) / 1e6)),
    );
    return list;
  }

  return {
    start() {
      options.events.on(OWNER, 'captured', (event) => {
        captures.inc();
        capturedBytes.inc({}, event.image.size);
        latency.observe(event.duration_ms / 1000);
      });
      options.events.on(OWNER, 'capture_failed', (event) => failures.inc({ code: event.code }));
      options.events.on(OWNER, 'deleted', () => deleted.inc());
      options.events.on(OWNER, 'evicted', (event) => evicted.inc({ reason: event.reason }));
    },
    stop() {
      options.events.removeOwner(OWNER);
    },
    render: () => render(families()),
    plugin(app) {
      app.get('/metrics', async (_request, reply) => reply.type(CONTENT_TYPE).send(render(families())));
    },
  };
}

/** The MQTT plane's status block: connection state and how often it (re)connected. */
function mqttFamilies(block: unknown, common: Labels): MetricFamily[] {
  if (!isRecord(block)) return [];
  const connects = num(block['connects']);
  return [
    gauge('camera_node_mqtt_connected', '1 while connected to the MQTT broker.', [
      { labels: common, value: block['connected'] === true ? 1 : 0 },
    ]),
    ...(connects === null
      ? []
      : [
          counter('camera_node_mqtt_connects_total', 'Successful connections to the MQTT broker (1 + reconnects).', [
            { labels: common, value: connects },
          ]),
        ]),
  ];
}

/**
 * The delivery status block, one entry per channel (`mqtt`, `http`), each counting what it delivered
 * and failed and holding what is pending. Read from there so the part counts once and the status
 * and /metrics agree; a channel that delivered nothing yet still shows 0, so rate() has a start.
 */
function deliveryFamilies(block: unknown, common: Labels): MetricFamily[] {
  if (!isRecord(block)) return [];
  const channels = Object.entries(block).filter((entry): entry is [string, Record<string, unknown>] => isRecord(entry[1]));
  const samples = (field: string): Sample[] =>
    channels.flatMap(([channel, figures]) => {
      const value = num(figures[field]);
      return value === null ? [] : [{ labels: { ...common, channel }, value }];
    });
  const families: MetricFamily[] = [
    // Delivered: a collector's receipt (MQTT) or a 2xx (HTTP). Failures: images given up, on both
    // channels alike; attempts that will be retried are counted apart, as retries.
    counter('camera_node_deliveries_total', 'Images delivered (MQTT: a receipt; HTTP: a 2xx), by channel.', samples('delivered')),
    counter('camera_node_delivery_failures_total', 'Images given up (never retried), by channel.', samples('failed')),
    counter(
      'camera_node_delivery_retries_total',
      'Delivery attempts that did not deliver and are retried later, by channel.',
      samples('retries'),
    ),
    gauge('camera_node_delivery_pending', 'Images owed and not yet delivered (MQTT: no receipt yet), by channel.', samples('pending')),
  ];
  return families.filter((family) => family.samples.length > 0);
}
