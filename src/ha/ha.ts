import type { MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import type { EventBus } from '../events.js';
import { nodeTopics } from '../mqtt/topics.js';
import { discoveryMessages, discoveryTopicsFor, haStatusTopic, type DiscoveryMessage } from './discovery.js';

/** What the part uses of the mqtt.js client the MQTT plane owns (it never connects or ends it). */
export type HaClient = Pick<MqttClient, 'publishAsync' | 'subscribeAsync' | 'unsubscribeAsync' | 'on' | 'off' | 'connected'>;

export interface HomeAssistantOptions {
  /** The MQTT plane's client, read at start (the plane has connected it by then). */
  client: () => HaClient;
  events: EventBus;
  logger: Logger;
  nodeId: string;
  topicPrefix: string;
  haPrefix: string;
  version: string;
  /** false: publish no discovery and clear this node's configs (entities removed in Home Assistant). */
  discovery: boolean;
  /** The camera's sensor model now (for the device's model); re-read when the camera changes. */
  sensor: () => string | null;
  configurationUrl: string | null;
  /**
   * Wait after Home Assistant's birth message before republishing, plus up to as much again at random:
   * a fleet restarting with Home Assistant then answers spread out, not in one burst. Tests use 0.
   */
  republishDelayMs?: number;
  /** Bound on waiting for in-flight publishes at stop, so a dead broker cannot hold shutdown. */
  stopTimeoutMs?: number;
}

export interface HomeAssistant {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Publishes every discovery config now (also done at start and on Home Assistant's birth). */
  publishDiscovery(): Promise<void>;
}

const OWNER = 'ha';

/**
 * The Home Assistant part: discovery configs (retained) for one device per node, republished when
 * Home Assistant announces itself on `<ha_prefix>/status` or the broker forgot our session; and the
 * latest capture's preview (the EXIF thumbnail the camera app wrote) retained on `<prefix>/<id>/preview`,
 * which the image entity shows and dashboards can use without Home Assistant.
 */
export function createHomeAssistant(options: HomeAssistantOptions): HomeAssistant {
  const logger = options.logger.child({ part: 'ha' });
  const topics = nodeTopics(options.topicPrefix, options.nodeId);
  const statusTopic = haStatusTopic(options.haPrefix);
  const republishDelayMs = options.republishDelayMs ?? 2000;
  const stopTimeoutMs = options.stopTimeoutMs ?? 2000;
  const pending = new Set<Promise<unknown>>();
  let client: HaClient | null = null;
  let republishTimer: NodeJS.Timeout | null = null;
  let lastSensor: string | null = null;
  let stopped = false;
  /** The latest preview taken while offline: sent on the next connect (older ones are superseded). */
  let heldPreview: Buffer | null = null;

  const track = <T>(promise: Promise<T>, what: string): void => {
    const guarded = promise.catch((err: unknown) => logger.warn({ err, what }, 'Home Assistant publish failed'));
    pending.add(guarded);
    void guarded.finally(() => pending.delete(guarded));
  };

  const messages = (): DiscoveryMessage[] => {
    lastSensor = options.sensor();
    return discoveryMessages({
      nodeId: options.nodeId,
      topicPrefix: options.topicPrefix,
      haPrefix: options.haPrefix,
      version: options.version,
      sensor: lastSensor,
      configurationUrl: options.configurationUrl,
    });
  };

  async function publishDiscovery(): Promise<void> {
    const mqtt = client;
    if (!mqtt || stopped) return;
    const list = messages();
    await Promise.all(list.map((m) => mqtt.publishAsync(m.topic, JSON.stringify(m.payload), { qos: 1, retain: true })));
    logger.info({ entities: list.length, prefix: options.haPrefix }, 'Home Assistant discovery published');
  }

  async function removeDiscovery(mqtt: HaClient): Promise<void> {
    // An empty retained message deletes the retained config; Home Assistant then removes the entity.
    const list = discoveryTopicsFor(options.haPrefix, options.nodeId);
    await Promise.all(list.map((topic) => mqtt.publishAsync(topic, '', { qos: 1, retain: true })));
    logger.info({ entities: list.length, prefix: options.haPrefix }, 'Home Assistant discovery off: entities removed');
  }

  // A retained birth is an old one (Home Assistant sends it unretained by default): the configs went
  // out at start or connect already, so only a live birth asks for them again.
  const onMessage = (topic: string, payload: Buffer, packet: { retain?: boolean }): void => {
    if (topic !== statusTopic || packet.retain || payload.toString('utf8').trim() !== 'online' || stopped) return;
    if (republishTimer) clearTimeout(republishTimer);
    const delay = republishDelayMs + Math.floor(Math.random() * republishDelayMs);
    logger.info({ delay_ms: delay }, 'Home Assistant came online: republishing discovery');
    republishTimer = setTimeout(() => {
      republishTimer = null;
      track(publishDiscovery(), 'discovery');
    }, delay);
  };

  // A broker that restarted without persistence lost the retained configs along with our session,
  // and the subscription too (the plane's client does not resubscribe by itself).
  const onConnect = (packet: { sessionPresent?: boolean }): void => {
    const mqtt = client;
    if (packet.sessionPresent || !mqtt) return;
    track(mqtt.subscribeAsync(statusTopic, { qos: 1 }), 'subscribe');
    track(publishDiscovery(), 'discovery');
  };

  const sendHeldPreview = (): void => {
    const mqtt = client;
    if (!heldPreview || !mqtt || stopped) return;
    track(mqtt.publishAsync(topics.preview, heldPreview, { qos: 1, retain: true }), 'preview');
    heldPreview = null;
  };

  return {
    publishDiscovery,
    async start() {
      const mqtt = options.client();
      client = mqtt;
      options.events.on(OWNER, 'captured', (event) => {
        if (!event.preview || stopped) return;
        // Offline, mqtt.js would queue every QoS 1 publish until the broker is back: a timelapse
        // would pile previews up in memory. Only the latest counts (it is retained), so hold that one.
        if (!mqtt.connected) {
          heldPreview = event.preview;
          return;
        }
        // Retained: Home Assistant and dashboards that subscribe later still get the latest preview.
        track(mqtt.publishAsync(topics.preview, event.preview, { qos: 1, retain: true }), 'preview');
      });
      mqtt.on('connect', sendHeldPreview);
      if (!options.discovery) {
        track(removeDiscovery(mqtt), 'discovery removal');
        return;
      }
      options.events.on(OWNER, 'camera_changed', (event) => {
        if (event.camera.sensor !== lastSensor) track(publishDiscovery(), 'discovery');
      });
      mqtt.on('message', onMessage);
      mqtt.on('connect', onConnect);
      // Neither waits for the broker: a node whose broker is down still starts, and mqtt.js sends
      // both once connected (QoS 1 packets are queued while offline).
      track(mqtt.subscribeAsync(statusTopic, { qos: 1 }), 'subscribe');
      track(publishDiscovery(), 'discovery');
    },
    async stop() {
      stopped = true;
      options.events.removeOwner(OWNER);
      if (republishTimer) clearTimeout(republishTimer);
      republishTimer = null;
      const mqtt = client;
      if (!mqtt) return;
      mqtt.off('message', onMessage);
      mqtt.off('connect', onConnect);
      mqtt.off('connect', sendHeldPreview);
      heldPreview = null;
      if (options.discovery && mqtt.connected) track(mqtt.unsubscribeAsync(statusTopic), 'unsubscribe');
      // Discovery stays retained on purpose: on shutdown the entities go unavailable (the node's
      // availability says offline), they do not vanish from Home Assistant.
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, stopTimeoutMs);
      });
      await Promise.race([Promise.allSettled([...pending]), timeout]);
      clearTimeout(timer);
    },
  };
}
