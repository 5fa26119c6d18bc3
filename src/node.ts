import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from './config/config.js';
import { redactConfig } from './config/config.js';
import type { Camera } from './camera/types.js';
import { createCaptureQueue } from './camera/queue.js';
import { createCommands } from './commands/commands.js';
import { createCaptureScheduler, DEFAULT_LEAD_MS } from './commands/schedule.js';
import type { Timelapse } from './schedule/timelapse.js';
import type { Commands, DeliveryChannel } from './commands/types.js';
import { EventBus } from './events.js';
import { createHttpServer } from './http/server.js';
import { createNodeLogger } from './logs/logger.js';
import type { LogTarget, NodeLogger } from './logs/types.js';
import { createOutbox, type ChannelStatus, type Outbox } from './delivery/outbox.js';
import { JOURNAL_FILE } from './mqtt/journal.js';
import type { MqttPlane } from './mqtt/plane.js';
import { createMetrics } from './metrics/metrics.js';
import { createPartRegistry, type PartRegistry } from './parts.js';
import type { ImageStore } from './storage/types.js';
import { createImageStore } from './storage/store.js';
import { CLOCK_CHECK_INTERVAL_MS, createClockMonitor, type ClockMonitor } from './schedule/clock-health.js';
import type { Telemetry } from './telemetry/types.js';
import { createTelemetry } from './telemetry/sampler.js';
import { createNodePage, NODE_PAGE_OPEN_PATHS } from './web/node-page.js';

export const VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string })
  .version;

/** Lines kept in memory for GET /logs when logging to stdout only: about 1 MB, the journal has the rest. */
const MAX_RING_LINES = 2000;

export interface NodeOptions {
  /** Extra environment for the camera process (the simulator's knobs in tests and benches). */
  cameraEnv?: Record<string, string>;
  /** Where log lines go; default `config.log_target` (the daemon), tests and benches pass 'file'. */
  logTarget?: LogTarget;
  /** Thermal sensor file override (tests: a Pi's thermal zone cannot exist here). */
  thermalZonePath?: string;
  /** Wireless statistics file override (tests: a Pi's /proc/net/wireless cannot exist here). */
  wirelessPath?: string;
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
  /** Names of the parts running now, in start order (empty before start and after stop). */
  parts(): string[];
  start(): Promise<void>;
  /** Reverse order of start; safe to call twice and after a failed start. */
  stop(): Promise<void>;
}

/** Where people reach this node's HTTP API (Home Assistant's "Visit" link): mDNS name and port. */
function publicUrl(port: number): string {
  return `http://${hostname()}.local:${port}`;
}

/** What the parts started so far share; optional parts are wired from it. */
interface Core {
  config: Config;
  logger: Logger;
  bus: EventBus;
  store: ImageStore;
  telemetry: Telemetry;
  clock: ClockMonitor;
  camera: Camera;
  commands: Commands;
  parts: PartRegistry;
  deliveryStatus: Map<DeliveryChannel, () => ChannelStatus>;
  outbox: Outbox;
}

/**
 * The composition root: builds every part from one config object and wires them. Nothing here is
 * module-level state, so several nodes can live in one process (the fleet benchmarks do).
 *
 * Each part is started through the part registry, which records its stop in the same step: a stop
 * runs every started part's stop in reverse order, and so does a start that fails half-way. Parts
 * a node may not use (the embedded broker, MQTT, the uploader, the warm camera, the timelapse) are
 * imported only when the config asks for them, so a node pays neither their start-up CPU nor their
 * memory otherwise.
 */
export function createNode(config: Config, options: NodeOptions = {}): CameraNode {
  const parts = createPartRegistry();
  let stopping = false;
  let started: Promise<void> | null = null;
  let nodeLogger: NodeLogger | null = null;
  let commands: Commands | null = null;
  let events: EventBus | null = null;
  let abortWork: () => Promise<void> = async () => undefined;
  let httpUrl: string | null = null;
  let mqttUrl: string | null = null;
  let mqttPlane: MqttPlane | null = null;

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
      target: options.logTarget ?? config.log_target,
      ringLines: Math.min(config.max_log_lines, MAX_RING_LINES),
    });
    nodeLogger = logs;
    const logger = logs.logger.child({ node_id: config.node_id });
    parts.started('logger', async () => {
      logger.info('camera-node stopped');
      await logs.close();
    });
    logger.info({ version: VERSION, config: redactConfig(config) }, 'camera-node starting');

    const bus = new EventBus(logger);
    events = bus;

    const store = await parts.start(
      'store',
      createImageStore(
        {
          dir: resolve(config.capture_dir),
          limitBytes: Math.floor(config.storage_limit_mb * 1024 * 1024),
          minFreeBytes: Math.floor(config.min_free_disk_mb * 1024 * 1024),
          evictUndelivered: config.evict_undelivered,
        },
        logger,
      ),
    );
    store.on('evicted', (image, reason) => bus.emit('evicted', { image, reason }));
    store.on('deleted', (image) => bus.emit('deleted', { image }));

    const telemetry = await parts.start(
      'telemetry',
      createTelemetry(
        {
          diskPath: resolve(config.capture_dir),
          sampleIntervalMs: config.status_sample_interval_s * 1000,
          ...(options.thermalZonePath ? { thermalZonePath: options.thermalZonePath } : {}),
          ...(options.wirelessPath ? { wirelessPath: options.wirelessPath } : {}),
        },
        logger,
      ),
    );
    // Scheduled captures fire on this machine's clock: whether it is synchronised goes out with the telemetry.
    const clock = await parts.start('clock', createClockMonitor({ intervalMs: CLOCK_CHECK_INTERVAL_MS, logger }));
    parts.report('clock', () => clock.snapshot());

    const camera = await parts.start('camera', await createCameraPart(config, options, logger));
    camera.onChange((info) => bus.emit('camera_changed', { camera: info }));

    // The channels the config sets up, known before their transports start: a capture in the
    // meantime owes its image to the outbox, which the transport drains once it runs.
    const deliveryChannels = new Set<DeliveryChannel>();
    if (config.upload_url) deliveryChannels.add('http');
    if (config.mqtt_enabled) deliveryChannels.add('mqtt');
    const deliveryStatus: Core['deliveryStatus'] = new Map();
    parts.report('delivery', () => Object.fromEntries([...deliveryStatus].map(([channel, read]) => [channel, read()])));

    const queue = createCaptureQueue({ maxPending: config.max_queued_captures });
    const scheduler = createCaptureScheduler({
      maxAheadMs: config.max_schedule_ahead_s * 1000,
      toleranceMs: config.schedule_tolerance_ms,
      maxPending: config.max_scheduled_captures,
    });
    let timelapse: Timelapse | null = null;
    parts.report('schedule', () => ({ pending: scheduler.pending(), timelapse: timelapse?.status() ?? null }));
    // Stopping aborts the capture in flight (its temp files are removed) and refuses the waiting ones
    // (scheduled ones too) first of all, so the HTTP server is not kept open waiting on a capture.
    abortWork = async () => {
      const timelapseStopped = timelapse?.stop();
      scheduler.close('the node is shutting down');
      queue.close('the node is shutting down');
      await timelapseStopped;
      await queue.idle();
    };

    // Every image owed to a channel, on disk: the transports draw from it.
    const outbox = await parts.start(
      'outbox',
      createOutbox({ dir: resolve(config.capture_dir), store, events: bus, logger, maxEntries: config.outbox_max_entries }),
    );

    const nodeCommands = createCommands({
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
      statusParts: () => parts.status(),
      isStopping: () => stopping,
      defaultDeliver: config.deliver,
      deliveryChannels,
      scheduler,
      owe: (filename, channel, requestId) => outbox.add(filename, channel, requestId),
    });
    commands = nodeCommands;
    const core: Core = {
      config,
      logger,
      bus,
      store,
      telemetry,
      clock,
      camera,
      commands: nodeCommands,
      parts,
      deliveryStatus,
      outbox,
    };

    if (config.upload_url) await startUploader(core, config.upload_url);

    const metrics = await parts.start(
      'metrics',
      createMetrics({
        nodeId: config.node_id,
        version: VERSION,
        events: bus,
        status: () => nodeCommands.status(),
        usage: () => store.usage(),
      }),
    );

    const page = createNodePage({ events: bus, commands: nodeCommands, statusIntervalMs: config.status_sample_interval_s * 1000 });
    parts.started('web page', () => page.stop());
    const app = await createHttpServer({
      plugins: [metrics.plugin, page.plugin],
      openPaths: NODE_PAGE_OPEN_PATHS,
      commands: nodeCommands,
      logger,
      corsOrigins: config.cors_origins,
      ...(config.http_token ? { httpToken: config.http_token } : {}),
      rateLimit: config.http_rate_limit,
      maxLogLines: config.max_log_lines,
    });
    // Registered before listening: a failed listen (port taken) still closes the instance.
    parts.started('http', () => app.close());
    await app.listen({ host: config.host, port: config.port });
    const address = app.server.address() as AddressInfo;
    const shownHost = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
    httpUrl = `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${address.port}`;
    logger.info({ url: httpUrl }, 'HTTP API listening');

    if (config.mqtt_enabled) {
      const mqtt = await startMqtt(core, address.port);
      mqttUrl = mqtt.url;
      mqttPlane = mqtt.plane;
    }
    if (config.timelapse_interval_s > 0) {
      const { createTimelapse } = await import('./schedule/timelapse.js');
      timelapse = await parts.start(
        'timelapse',
        createTimelapse({
          intervalS: config.timelapse_interval_s,
          ...(config.timelapse_start ? { start: config.timelapse_start } : {}),
          ...(config.timelapse_stop ? { stop: config.timelapse_stop } : {}),
          capture: (at) => nodeCommands.capture(at === undefined ? {} : { at }, { source: 'schedule' }),
          logger,
          leadMs: DEFAULT_LEAD_MS,
        }),
      );
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
    await parts.stopAll(logger);
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
    parts: () => parts.names(),
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

/** The cold camera (one app run per capture) or, when asked for, the warm one (imported only then). */
async function createCameraPart(config: Config, options: NodeOptions, logger: Logger): Promise<Camera> {
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
  if (config.camera_mode === 'warm') {
    const { createWarmCamera } = await import('./camera/warm.js');
    // The warm app's frames live beside the store's temp dir (same file system: they are renamed).
    return createWarmCamera({ ...cameraOptions, warmDir: join(resolve(config.capture_dir), '.warm'), zsl: config.camera_zsl });
  }
  const { createCamera } = await import('./camera/camera.js');
  return createCamera(cameraOptions);
}

/** HTTP delivery to UPLOAD_URL, through its durable outbox. */
async function startUploader(core: Core, url: string): Promise<void> {
  const { config } = core;
  const { createHttpDelivery } = await import('./delivery/http-delivery.js');
  const upload = await core.parts.start(
    'upload',
    createHttpDelivery({
      outbox: core.outbox,
      store: core.store,
      logger: core.logger,
      nodeId: config.node_id,
      url,
      method: config.upload_method,
      headers: config.upload_headers,
      idleTimeoutMs: config.upload_timeout_s * 1000,
      retryBaseMs: config.upload_retry_base_s * 1000,
      retryMaxMs: config.upload_retry_max_s * 1000,
      maxAttempts: config.upload_max_attempts,
    }),
  );
  core.deliveryStatus.set('http', () => upload.status());
}

/** The MQTT plane, its image delivery and Home Assistant; the embedded broker when no MQTT_URL is set. */
async function startMqtt(core: Core, httpPort: number): Promise<{ url: string; plane: MqttPlane }> {
  const { config, logger, parts } = core;
  const [{ createMqttPlane }, { createMqttDelivery }, { createHomeAssistant }, { createSchemaRegistry }] = await Promise.all([
    import('./mqtt/plane.js'),
    import('./delivery/mqtt-delivery.js'),
    import('./ha/ha.js'),
    import('./schemas.js'),
  ]);
  const schemas = createSchemaRegistry({ useDefaults: true });
  let url = config.mqtt_url;
  // aedes speaks MQTT 3.1.1 only, so the node talks 3.1.1 to its embedded broker.
  let protocolVersion = config.mqtt_protocol_version;
  const embedded = !url;
  if (!url) {
    const { startEmbeddedBroker } = await import('./mqtt/broker.js');
    const broker = await startEmbeddedBroker({ host: config.mqtt_host, port: config.mqtt_port, logger });
    parts.started('embedded broker', () => broker.stop());
    url = broker.url;
    protocolVersion = 4;
    logger.info({ url, port: broker.port }, 'no MQTT_URL set: started the embedded MQTT broker (MQTT 3.1.1)');
  }
  const plane: MqttPlane = createMqttPlane({
    config,
    url,
    commands: core.commands,
    events: core.bus,
    logger,
    version: VERSION,
    protocolVersion,
    embedded,
    schemas,
    telemetryExtras: () => ({ ...core.telemetry.details(), clock: core.clock.snapshot() }),
    journalPath: join(resolve(config.capture_dir), JOURNAL_FILE),
    clock: () => core.clock.snapshot(),
  });
  const delivery = createMqttDelivery({
    plane,
    outbox: core.outbox,
    store: core.store,
    schemas,
    logger,
    nodeId: config.node_id,
    prefix: config.mqtt_topic_prefix,
    chunkSizeBytes: config.chunk_size_kb * 1024,
    window: config.delivery_window,
    reofferBaseMs: config.delivery_reoffer_base_s * 1000,
    reofferMaxMs: config.delivery_reoffer_max_s * 1000,
  });
  // Its actions are registered on the plane before the plane subscribes.
  delivery.start();
  core.deliveryStatus.set('mqtt', () => delivery.status());
  parts.report('mqtt', () => plane.status());
  await parts.start('mqtt', plane);
  const homeAssistant = createHomeAssistant({
    client: () => {
      const client = plane.client();
      if (!client) throw new Error('the MQTT plane has no client');
      return client;
    },
    events: core.bus,
    logger,
    nodeId: config.node_id,
    topicPrefix: config.mqtt_topic_prefix,
    haPrefix: config.ha_discovery_prefix,
    version: VERSION,
    discovery: config.ha_discovery,
    sensor: () => core.camera.info().sensor,
    configurationUrl: config.public_url ?? publicUrl(httpPort),
  });
  await parts.start('home assistant', homeAssistant);
  // Stopped before the plane: an image transfer in flight is aborted before the client ends.
  parts.started('mqtt delivery', () => delivery.stop());
  return { url, plane };
}
