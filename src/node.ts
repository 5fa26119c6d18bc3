import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from './config/config.js';
import { redactConfig } from './config/config.js';
import { createCamera } from './camera/camera.js';
import { createCaptureQueue } from './camera/queue.js';
import { createWarmCamera } from './camera/warm.js';
import { createCommands } from './commands/commands.js';
import { createCaptureScheduler, DEFAULT_LEAD_MS } from './commands/schedule.js';
import { createTimelapse, type Timelapse } from './schedule/timelapse.js';
import type { Commands, DeliveryChannel } from './commands/types.js';
import { EventBus } from './events.js';
import { createHttpServer } from './http/server.js';
import { createNodeLogger } from './logs/logger.js';
import type { NodeLogger } from './logs/types.js';
import { startEmbeddedBroker } from './mqtt/broker.js';
import { JOURNAL_FILE } from './mqtt/journal.js';
import { createMqttPlane, type MqttPlane } from './mqtt/plane.js';
import { createMqttDelivery } from './delivery/mqtt-delivery.js';
import { createHomeAssistant } from './ha/ha.js';
import { createMetrics } from './metrics/metrics.js';
import { createUploadOutbox } from './delivery/outbox.js';
import { createSchemaRegistry } from './schemas.js';
import { createImageStore } from './storage/store.js';
import { CLOCK_CHECK_INTERVAL_MS, createClockMonitor } from './schedule/clock-health.js';
import { createTelemetry } from './telemetry/sampler.js';
import { createNodePage, NODE_PAGE_OPEN_PATHS } from './web/node-page.js';

export const VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string })
  .version;

export interface NodeOptions {
  /** Extra environment for the camera process (the simulator's knobs in tests and benches). */
  cameraEnv?: Record<string, string>;
  /** Write logs to stdout as well as the file (the daemon does; tests and benches do not). */
  logStdout?: boolean;
  /** Thermal sensor file override (tests: a Pi's thermal zone cannot exist here). */
  thermalZonePath?: string;
}

export interface CameraNode {
  readonly config: Config;
  /** Base URL of the HTTP API once started, e.g. `http://127.0.0.1:5003`. */
  readonly httpUrl: string | null;
  /** Broker URL the node uses (the embedded broker's when mqtt_url is unset). */
  readonly mqttUrl: string | null;
  /** The MQTT plane once started; null when MQTT is disabled. */
  readonly mqtt: MqttPlane | null;
  readonly commands: Commands;
  readonly events: EventBus;
  readonly logger: Logger;
  start(): Promise<void>;
  /** Reverse order of start; safe to call twice and after a failed start. */
  stop(): Promise<void>;
}

/** Where people reach this node's HTTP API (Home Assistant's "Visit" link): mDNS name and port. */
function publicUrl(port: number): string {
  return `http://${hostname()}.local:${port}`;
}

/**
 * The composition root: builds every part from one config object and wires them. Nothing here is
 * module-level state, so several nodes can live in one process (the fleet benchmarks do).
 */
export function createNode(config: Config, options: NodeOptions = {}): CameraNode {
  const stops: Array<{ name: string; stop: () => Promise<void> }> = [];
  let stopping = false;
  let started: Promise<void> | null = null;
  let nodeLogger: NodeLogger | null = null;
  let commands: Commands | null = null;
  let events: EventBus | null = null;
  let abortWork: () => Promise<void> = async () => undefined;
  let httpUrl: string | null = null;
  let mqttUrl: string | null = null;
  let mqttPlane: MqttPlane | null = null;
  const statusParts = new Map<string, () => unknown>();

  const require = <T>(value: T | null, what: string): T => {
    if (value === null) throw new Error(`node not started: ${what} unavailable`);
    return value;
  };

  async function startParts(): Promise<void> {
    const logs = await createNodeLogger({
      dir: resolve(config.log_dir),
      name: 'camera_node',
      maxSizeMb: config.max_log_size_mb,
      maxFiles: config.max_log_files,
      level: config.log_level,
      stdout: options.logStdout ?? false,
    });
    nodeLogger = logs;
    const logger = logs.logger.child({ node_id: config.node_id });
    stops.push({ name: 'logger', stop: () => logs.close() });
    logger.info({ version: VERSION, config: redactConfig(config) }, 'camera-node starting');

    const bus = new EventBus(logger);
    events = bus;

    const store = createImageStore(
      {
        dir: resolve(config.capture_dir),
        limitBytes: Math.floor(config.storage_limit_mb * 1024 * 1024),
        minFreeBytes: Math.floor(config.min_free_disk_mb * 1024 * 1024),
        evictUndelivered: config.evict_undelivered,
      },
      logger,
    );
    await store.start();
    stops.push({ name: 'store', stop: () => store.stop() });
    store.on('evicted', (image, reason) => bus.emit('evicted', { image, reason }));
    store.on('deleted', (image) => bus.emit('deleted', { image }));

    const telemetry = createTelemetry(
      {
        diskPath: resolve(config.capture_dir),
        sampleIntervalMs: config.status_sample_interval_s * 1000,
        ...(options.thermalZonePath ? { thermalZonePath: options.thermalZonePath } : {}),
      },
      logger,
    );
    await telemetry.start();
    stops.push({ name: 'telemetry', stop: () => telemetry.stop() });
    // Scheduled captures fire on this machine's clock: whether it is synchronised goes out with the telemetry.
    const clock = createClockMonitor({ intervalMs: CLOCK_CHECK_INTERVAL_MS, logger });
    await clock.start();
    stops.push({ name: 'clock', stop: () => clock.stop() });
    statusParts.set('clock', () => clock.snapshot());

    const cameraOptions = {
      backend: config.camera_backend,
      ...(config.camera_command ? { command: config.camera_command } : {}),
      captureTimeoutMs: config.capture_timeout_s * 1000,
      immediate: config.camera_immediate,
      cameraIndex: config.camera_index,
      probeIntervalMs: config.camera_check_interval_s * 1000,
      ...(options.cameraEnv ? { env: options.cameraEnv } : {}),
      logger,
    };
    // The warm app's frames live beside the store's temp dir (same file system: they are renamed).
    const camera =
      config.camera_mode === 'warm'
        ? createWarmCamera({ ...cameraOptions, warmDir: join(resolve(config.capture_dir), '.warm') })
        : createCamera(cameraOptions);
    await camera.start();
    stops.push({ name: 'camera', stop: () => camera.stop() });
    camera.onChange((info) => bus.emit('camera_changed', { camera: info }));

    // Delivery channels register here as they start; captures asking for a missing one are refused.
    const deliveryChannels = new Set<DeliveryChannel>();
    const deliveryStatus = new Map<DeliveryChannel, () => unknown>();
    statusParts.set('delivery', () => Object.fromEntries([...deliveryStatus].map(([channel, read]) => [channel, read()])));

    const queue = createCaptureQueue({ maxPending: config.max_queued_captures });
    const scheduler = createCaptureScheduler({
      maxAheadMs: config.max_schedule_ahead_s * 1000,
      toleranceMs: config.schedule_tolerance_ms,
      maxPending: config.max_scheduled_captures,
    });
    let timelapse: Timelapse | null = null;
    statusParts.set('schedule', () => ({ pending: scheduler.pending(), timelapse: timelapse?.status() ?? null }));
    // Stopping aborts the capture in flight (its temp files are removed) and refuses the waiting ones
    // (scheduled ones too) first of all, so the HTTP server is not kept open waiting on a capture.
    abortWork = async () => {
      const timelapseStopped = timelapse?.stop();
      scheduler.close('the node is shutting down');
      queue.close('the node is shutting down');
      await timelapseStopped;
      await queue.idle();
    };

    commands = createCommands({
      nodeId: config.node_id,
      version: VERSION,
      camera,
      queue,
      store,
      logs,
      telemetry,
      events: bus,
      logger,
      maxLogLines: config.max_log_lines,
      statusParts,
      isStopping: () => stopping,
      defaultDeliver: config.deliver,
      deliveryChannels,
      scheduler,
    });

    if (config.upload_url) {
      const outbox = createUploadOutbox({
        dir: resolve(config.capture_dir),
        store,
        events: bus,
        logger,
        nodeId: config.node_id,
        url: config.upload_url,
        method: config.upload_method,
        headers: config.upload_headers,
        idleTimeoutMs: config.upload_timeout_s * 1000,
        retryBaseMs: config.upload_retry_base_s * 1000,
        retryMaxMs: config.upload_retry_max_s * 1000,
        maxAttempts: config.upload_max_attempts,
      });
      await outbox.start();
      stops.push({ name: 'upload outbox', stop: () => outbox.stop() });
      deliveryChannels.add('http');
      deliveryStatus.set('http', () => outbox.status());
    }

    const nodeCommands = commands;
    const metrics = createMetrics({
      nodeId: config.node_id,
      version: VERSION,
      events: bus,
      status: () => nodeCommands.status(),
      usage: () => store.usage(),
    });
    metrics.start();
    stops.push({ name: 'metrics', stop: async () => metrics.stop() });

    const page = createNodePage({ events: bus, commands, statusIntervalMs: config.status_sample_interval_s * 1000 });
    stops.push({ name: 'web page', stop: async () => page.stop() });
    const app = await createHttpServer({
      plugins: [metrics.plugin, page.plugin],
      openPaths: NODE_PAGE_OPEN_PATHS,
      commands,
      logger,
      corsOrigins: config.cors_origins,
      ...(config.http_token ? { httpToken: config.http_token } : {}),
      rateLimit: config.http_rate_limit,
      maxLogLines: config.max_log_lines,
    });
    await app.listen({ host: config.host, port: config.port });
    stops.push({ name: 'http', stop: () => app.close() });
    const address = app.server.address() as AddressInfo;
    const shownHost = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
    httpUrl = `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${address.port}`;
    logger.info({ url: httpUrl }, 'HTTP API listening');

    if (config.mqtt_enabled) {
      const schemas = createSchemaRegistry({ useDefaults: true });
      let url = config.mqtt_url;
      // aedes speaks MQTT 3.1.1 only, so the node talks 3.1.1 to its embedded broker.
      let protocolVersion = config.mqtt_protocol_version;
      const embedded = !url;
      if (!url) {
        const broker = await startEmbeddedBroker({ host: config.mqtt_host, port: config.mqtt_port, logger });
        stops.push({ name: 'embedded broker', stop: () => broker.stop() });
        url = broker.url;
        protocolVersion = 4;
        logger.info({ url, port: broker.port }, 'no MQTT_URL set: started the embedded MQTT broker (MQTT 3.1.1)');
      }
      mqttUrl = url;
      const plane: MqttPlane = createMqttPlane({
        config,
        url,
        commands,
        events: bus,
        logger,
        version: VERSION,
        protocolVersion,
        embedded,
        schemas,
        telemetryExtras: () => ({ ...telemetry.details(), clock: clock.snapshot() }),
        journalPath: join(resolve(config.capture_dir), JOURNAL_FILE),
        clock: () => clock.snapshot(),
      });
      mqttPlane = plane;
      const delivery = createMqttDelivery({
        plane,
        store,
        events: bus,
        schemas,
        logger,
        nodeId: config.node_id,
        prefix: config.mqtt_topic_prefix,
        chunkSizeBytes: config.chunk_size_kb * 1024,
        window: config.delivery_window,
      });
      delivery.start();
      deliveryChannels.add('mqtt');
      deliveryStatus.set('mqtt', () => delivery.status());
      statusParts.set('mqtt', () => plane.status());
      await plane.start();
      stops.push({ name: 'mqtt', stop: () => plane.stop() });
      const homeAssistant = createHomeAssistant({
        client: () => {
          const client = plane.client();
          if (!client) throw new Error('the MQTT plane has no client');
          return client;
        },
        events: bus,
        logger,
        nodeId: config.node_id,
        topicPrefix: config.mqtt_topic_prefix,
        haPrefix: config.ha_discovery_prefix,
        version: VERSION,
        discovery: config.ha_discovery,
        sensor: () => camera.info().sensor,
        configurationUrl: config.public_url ?? publicUrl(address.port),
      });
      await homeAssistant.start();
      stops.push({ name: 'home assistant', stop: () => homeAssistant.stop() });
      // Stopped before the plane: an image transfer in flight is aborted before the client ends.
      stops.push({ name: 'mqtt delivery', stop: () => delivery.stop() });
    }
    if (config.timelapse_interval_s > 0) {
      timelapse = createTimelapse({
        intervalS: config.timelapse_interval_s,
        ...(config.timelapse_start ? { start: config.timelapse_start } : {}),
        ...(config.timelapse_stop ? { stop: config.timelapse_stop } : {}),
        capture: (at) => nodeCommands.capture(at === undefined ? {} : { at }, { source: 'schedule' }),
        logger,
        leadMs: DEFAULT_LEAD_MS,
      });
      timelapse.start();
      const running = timelapse;
      stops.push({ name: 'timelapse', stop: () => running.stop() });
    }
    logger.info({ node_id: config.node_id, camera: camera.info().backend, sensor: camera.info().sensor }, 'camera-node started');
  }

  async function stopParts(): Promise<void> {
    const logger = nodeLogger?.logger;
    logger?.info('camera-node stopping');
    try {
      await abortWork();
    } catch (err) {
      logger?.error({ err }, 'failed to abort captures');
    }
    // Reverse order of start, each in its own try: one part failing to stop must not keep the others running.
    for (const part of stops.reverse().splice(0)) {
      if (part.name === 'logger') logger?.info('camera-node stopped');
      try {
        await part.stop();
      } catch (err) {
        logger?.error({ err, part: part.name }, 'failed to stop part');
      }
    }
  }

  let stopped: Promise<void> | null = null;
  return {
    config,
    get httpUrl() {
      return httpUrl;
    },
    get mqttUrl() {
      return mqttUrl;
    },
    get mqtt() {
      return mqttPlane;
    },
    get commands() {
      return require(commands, 'commands');
    },
    get events() {
      return require(events, 'events');
    },
    get logger() {
      return require(nodeLogger, 'logger').logger;
    },
    start() {
      started ??= startParts().catch(async (err: unknown) => {
        await stopParts();
        throw err;
      });
      return started;
    },
    stop() {
      stopping = true;
      stopped ??= (async () => {
        await started?.catch(() => undefined);
        await stopParts();
      })();
      return stopped;
    },
  };
}
