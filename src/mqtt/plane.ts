import type { Socket } from 'node:net';
import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import type { Commands } from '../commands/types.js';
import type { Config } from '../config/config.js';
import type { EventBus, NodeEventName } from '../events.js';
import { createSchemaRegistry, type SchemaRegistry } from '../schemas.js';
import { clientIdFor, connectionSettings, displayUrl, reconnectDelay } from './client-options.js';
import type { ClockHealth } from '../schedule/clock-health.js';
import {
  builtInActions,
  createCommandHandler,
  DEDUPE_LIMITS,
  type ActionDefinition,
  type CommandHandler,
  type Reply,
} from './command-handler.js';
import { CommandJournal } from './journal.js';
import { createCommandLimits } from './limits.js';
import { eventMessage, telemetryMessage } from './publishers.js';
import { commandTopics, nodeTopics, type NodeTopics } from './topics.js';

export interface MqttPlaneOptions {
  config: Config;
  url: string;
  commands: Commands;
  events: EventBus;
  logger: Logger;
  version: string;
  /** Overrides MQTT_PROTOCOL_VERSION (the embedded aedes broker speaks 3.1.1 only). */
  protocolVersion?: 4 | 5;
  /** Shared with other parts so the schemas compile once per node. */
  schemas?: SchemaRegistry;
  /** Extra telemetry fields from other parts (load, clock health, delivery counts...). */
  telemetryExtras?: () => Record<string, unknown>;
  /** The broker is the node's own embedded one (shown in the status). */
  embedded?: boolean;
  /** Where the command journal lives (command ids that ran, across restarts); null keeps it in memory. */
  journalPath?: string | null;
  /** The clock's health, for judging commands' freshness (see freshness.ts). */
  clock?: () => ClockHealth | null;
}

export interface MqttPlaneStatus {
  connected: boolean;
  /** The broker URL without credentials. */
  broker: string;
  embedded: boolean;
  client_id: string;
  protocol_version: 4 | 5;
  /** The groups this node takes `<prefix>/group/<name>/cmd` commands for. */
  groups: string[];
  connects: number;
  last_error: string | null;
}

/**
 * The node on MQTT: takes commands from its own, the broadcast and its group topics, answers each,
 * and keeps availability, status and telemetry retained.
 *
 * Other parts (image delivery, Home Assistant) build on it without owning a connection:
 * `client()` is the mqtt.js client (null before start and after stop; check `.connected` before a
 * publish that must not wait for a reconnect), `registerAction()` adds a command action (validated
 * by its own schema, answered, deduplicated and error-mapped like the built-in ones), and
 * `onConnect()` runs a hook after every (re)connect, once the node is subscribed and online.
 */
export interface MqttPlane {
  readonly topics: NodeTopics;
  start(): Promise<void>;
  stop(): Promise<void>;
  status(): MqttPlaneStatus;
  client(): MqttClient | null;
  /** The largest packet the broker accepts, from its CONNACK (MQTT 5); null when it announced none. */
  brokerMaxPacketSize(): number | null;
  registerAction(name: string, action: ActionDefinition): void;
  onConnect(hook: () => void | Promise<void>): void;
}

const OWNER = 'mqtt';
const STATUS_DEBOUNCE_MS = 200;
const STARTUP_WAIT_MS = 3000;
/** How long stop() waits for the broker (offline acknowledged, in-flight messages sent) before cutting the socket. */
const STOP_WAIT_MS = 2000;
const FORWARDED_EVENTS: NodeEventName[] = ['captured', 'deleted', 'evicted', 'capture_failed'];
const STATUS_EVENTS: NodeEventName[] = [...FORWARDED_EVENTS, 'camera_changed', 'status_changed', 'delivered', 'delivery_failed'];

/** True when `work` settled within `ms`; the timer never outlives the wait. */
async function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([
      work.then(
        () => true,
        () => true,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export function createMqttPlane(options: MqttPlaneOptions): MqttPlane {
  const { config, commands, events } = options;
  const logger = options.logger.child({ part: 'mqtt' });
  const topics = nodeTopics(config.mqtt_topic_prefix, config.node_id);
  const subscriptions = commandTopics(config.mqtt_topic_prefix, config.node_id, config.groups);
  const protocolVersion = options.protocolVersion ?? config.mqtt_protocol_version;
  const schemas = options.schemas ?? createSchemaRegistry({ useDefaults: true });
  const actions = builtInActions(commands, schemas);
  const limits = createCommandLimits({ maxInFlight: config.mqtt_max_in_flight, perMinute: config.mqtt_rate_limit });
  const freshness = {
    maxAgeMs: config.max_command_age_s * 1000,
    toleranceMs: config.schedule_tolerance_ms,
    ...(options.clock ? { clock: options.clock } : {}),
  };
  let journal: CommandJournal<Reply> | null = null;
  let handler: CommandHandler | null = null;
  const connectHooks: Array<() => void | Promise<void>> = [];
  const state = { connected: false, connects: 0, failures: 0, lastError: null as string | null, maxPacketSize: null as number | null };
  let client: MqttClient | null = null;
  let telemetryTimer: NodeJS.Timeout | null = null;
  let statusTimer: NodeJS.Timeout | null = null;
  let stopping = false;

  const publish = async (topic: string, payload: string | Buffer, retain = false): Promise<void> => {
    if (!client || stopping) return;
    try {
      await client.publishAsync(topic, payload, { qos: 1, retain });
    } catch (err) {
      logger.warn({ topic, err: (err as Error).message }, 'publish failed');
    }
  };
  const publishJson = (topic: string, value: unknown, retain = false) => publish(topic, JSON.stringify(value), retain);

  // Retained state is only sent while connected (it is republished on every connect), so a long
  // outage does not pile status and telemetry messages up in mqtt.js's outgoing queue.
  const publishStatus = async () => {
    if (state.connected) await publishJson(topics.status, commands.status(), true);
  };
  const publishTelemetry = async () => {
    if (state.connected) await publishJson(topics.telemetry, telemetryMessage(commands.status(), options.telemetryExtras?.() ?? {}), true);
  };
  const scheduleStatus = (): void => {
    statusTimer ??= setTimeout(() => {
      statusTimer = null;
      void publishStatus();
    }, STATUS_DEBOUNCE_MS);
  };

  /**
   * `reply_to` first: `<res>/<requester>` is under the node's own namespace, where the fleet ACL lets
   * only this node write, so a controller can trust who answered. An MQTT 5 Response Topic is still
   * honoured for clients that use one (Correlation Data is echoed whenever present).
   */
  async function sendReply(packet: IPublishPacket, reply: Reply, replyTo: string | null): Promise<void> {
    const responseTopic = packet.properties?.responseTopic;
    const correlationData = packet.properties?.correlationData;
    const topic = replyTo ? `${topics.res}/${replyTo}` : (responseTopic ?? topics.res);
    if (!client || stopping) return;
    try {
      await client.publishAsync(topic, JSON.stringify(reply), {
        qos: 1,
        retain: false,
        ...(correlationData ? { properties: { correlationData } } : {}),
      });
    } catch (err) {
      logger.warn({ topic, id: reply.id, err: (err as Error).message }, 'reply not sent');
    }
  }

  function onMessage(topic: string, payload: Buffer, packet: IPublishPacket): void {
    if (!subscriptions.includes(topic) || !handler) return;
    const responseTopic = packet.properties?.responseTopic;
    void handler
      .handleMessage(payload, topic, responseTopic ? { responseTopic } : {})
      .then(({ reply, replyTo }) => sendReply(packet, reply, replyTo));
  }

  async function onConnect(): Promise<void> {
    state.connected = true;
    state.connects += 1;
    state.failures = 0;
    state.lastError = null;
    if (client) {
      client.options.reconnectPeriod = reconnectDelay(0);
      // Replies are small packets: Nagle's algorithm would hold each one for a delayed ACK (~40 ms).
      (client.stream as Partial<Socket> | undefined)?.setNoDelay?.(true);
    }
    logger.info({ broker: displayUrl(options.url), connects: state.connects }, 'connected to the MQTT broker');
    try {
      await client?.subscribeAsync(subscriptions, { qos: 1 });
    } catch (err) {
      logger.error({ err }, 'subscribing to the command topics failed');
    }
    await publish(topics.availability, 'online', true);
    await Promise.all([publishStatus(), publishTelemetry()]);
    for (const hook of connectHooks) {
      try {
        await hook();
      } catch (err) {
        logger.error({ err }, 'connect hook failed');
      }
    }
  }

  return {
    topics,
    client: () => client,
    brokerMaxPacketSize: () => state.maxPacketSize,
    registerAction(name, action) {
      if (actions.has(name)) throw new Error(`action ${name} is already registered`);
      actions.set(name, action);
    },
    onConnect(hook) {
      connectHooks.push(hook);
    },
    status: () => ({
      connected: state.connected,
      broker: displayUrl(options.url),
      embedded: options.embedded ?? false,
      client_id: clientIdFor(config.node_id),
      protocol_version: protocolVersion,
      groups: [...config.groups],
      connects: state.connects,
      last_error: state.lastError,
    }),

    async start() {
      journal = options.journalPath
        ? await CommandJournal.open<Reply>({
            path: options.journalPath,
            limits: DEDUPE_LIMITS,
            logger,
            interrupted: (id) => ({
              id,
              node_id: config.node_id,
              action: null,
              status: 'error',
              error: { code: 'interrupted', message: 'the node stopped while running this command; it is not run again' },
            }),
          })
        : CommandJournal.inMemory<Reply>(DEDUPE_LIMITS, logger);
      handler = createCommandHandler({
        nodeId: config.node_id,
        maxCommandBytes: config.mqtt_max_command_bytes,
        actions,
        logger,
        journal,
        freshness,
        limits,
      });
      const settings = await connectionSettings(config, options.url, topics.availability, protocolVersion);
      const mqttClient = mqtt.connect(settings.url, settings.options);
      client = mqttClient;
      mqttClient.on('message', onMessage);
      mqttClient.on('connect', (connack) => {
        state.maxPacketSize = connack.properties?.maximumPacketSize ?? null;
        void onConnect();
      });
      mqttClient.on('error', (err) => {
        state.lastError = err.message;
        logger.warn({ err: err.message }, 'MQTT error');
      });
      mqttClient.on('close', () => {
        if (state.connected && !stopping) logger.warn('disconnected from the MQTT broker; reconnecting');
        state.connected = false;
      });
      // mqtt.js retries at a fixed period, read when it arms the next attempt: growing it at each
      // attempt spares a broker that is down (the first connection is retried the same way).
      mqttClient.on('reconnect', () => {
        state.failures += 1;
        mqttClient.options.reconnectPeriod = reconnectDelay(state.failures);
      });
      for (const event of STATUS_EVENTS) events.on(OWNER, event, scheduleStatus);
      for (const event of FORWARDED_EVENTS) {
        events.on(OWNER, event, (payload) => {
          const message = eventMessage(config.node_id, event, payload);
          if (message && state.connected) void publishJson(topics.events, message);
        });
      }
      telemetryTimer = setInterval(() => void publishTelemetry(), config.telemetry_interval_s * 1000);
      telemetryTimer.unref();

      // Wait for the first connection only briefly: a node that boots before its broker comes up
      // anyway and keeps retrying in the background.
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          mqttClient.off('connect', done);
          mqttClient.off('offline', done);
          resolve();
        };
        const timer = setTimeout(done, STARTUP_WAIT_MS);
        mqttClient.once('connect', done);
        mqttClient.once('offline', done);
      });
      if (!state.connected) logger.warn({ broker: displayUrl(options.url) }, 'MQTT broker not reachable yet; retrying in the background');
    },

    async stop() {
      events.removeOwner(OWNER);
      if (telemetryTimer) clearInterval(telemetryTimer);
      if (statusTimer) clearTimeout(statusTimer);
      telemetryTimer = statusTimer = null;
      const mqttClient = client;
      if (!mqttClient) {
        await journal?.close();
        journal = handler = null;
        return;
      }
      // Retained offline first, so dashboards see a clean stop the same as a lost node. A broker that
      // stopped answering must not hold the shutdown up: past the wait the socket is cut.
      const acknowledged = mqttClient.connected && (await settlesWithin(publish(topics.availability, 'offline', true), STOP_WAIT_MS));
      stopping = true;
      const ended = await settlesWithin(mqttClient.endAsync(!acknowledged), STOP_WAIT_MS);
      if (!ended) mqttClient.stream?.destroy();
      state.connected = false;
      client = null;
      await journal?.close();
      journal = handler = null;
      logger.info('disconnected from the MQTT broker');
    },
  };
}
