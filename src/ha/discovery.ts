/**
 * Home Assistant MQTT discovery payloads for one node: pure functions, no I/O, so the rules Home
 * Assistant documents (required keys, stable unique ids, topics that exist) are tested directly.
 *
 * One config per entity on the per-component topic
 * `<ha_prefix>/<component>/<node_id>/<object_id>/config`, all sharing one `device` block so Home
 * Assistant shows a single device per node. Full key names rather than abbreviations (`stat_t`...):
 * the payloads are a few hundred bytes either way and people read them with mosquitto_sub.
 */

import { nodeTopics } from '../mqtt/topics.js';

export type HaComponent = 'button' | 'sensor' | 'binary_sensor' | 'image';

export interface DiscoveryInput {
  nodeId: string;
  /** The node's topic prefix (`cameras`). */
  topicPrefix: string;
  /** Home Assistant's discovery prefix (`homeassistant`). */
  haPrefix: string;
  version: string;
  /** Camera sensor model (`imx477`), null when no camera is connected. */
  sensor: string | null;
  /** Where a person reaches the node's HTTP API; Home Assistant shows it as "Visit". */
  configurationUrl: string | null;
}

export interface DiscoveryMessage {
  component: HaComponent;
  objectId: string;
  topic: string;
  payload: Record<string, unknown>;
}

export const uniqueIdPrefix = 'camera_node_';
export const deviceIdentifier = (nodeId: string): string => `${uniqueIdPrefix}${nodeId}`;
export const uniqueId = (nodeId: string, objectId: string): string => `${uniqueIdPrefix}${nodeId}_${objectId}`;

export function discoveryTopic(haPrefix: string, component: HaComponent, nodeId: string, objectId: string): string {
  return `${haPrefix}/${component}/${nodeId}/${objectId}/config`;
}

/** Home Assistant's birth and last-will topic under its discovery prefix. */
export const haStatusTopic = (haPrefix: string): string => `${haPrefix}/status`;

/**
 * The capture command a press sends. Home Assistant cannot give each press a fresh id from a static
 * `payload_press`, and the MQTT plane drops a repeated id within its dedupe window as a retry, so a
 * constant id would make the second press a no-op. The button therefore carries a `command_template`
 * that renders the press time into the id (`now()` is available in MQTT command templates), and into
 * `sent_at`, so a press that waited in the broker while the node was away is refused as expired
 * rather than captured late (Home Assistant's MQTT client speaks 3.1.1: no message expiry).
 * `payload_press` (no id: the plane treats it as a fresh command) is what a template-less consumer sees.
 */
export const CAPTURE_PAYLOAD_PRESS = '{"action":"capture"}';
const PRESS_MS = '{{ (now().timestamp() * 1000) | int }}';
export const CAPTURE_COMMAND_TEMPLATE = `{"action":"capture","id":"ha-${PRESS_MS}","sent_at":${PRESS_MS}}`;

/**
 * Fields of the retained telemetry message (schemas/telemetry.schema.json) as the entities read them
 * (`value_json.<path>`). A field that is null (no thermal zone) renders `None`, which Home
 * Assistant's MQTT sensor takes as unknown.
 */
interface SensorSpec {
  objectId: string;
  name: string;
  path: string;
  unit?: string;
  deviceClass?: string;
  icon?: string;
  diagnostic: boolean;
  /** Uptime has none: a value that only grows needs no long-term statistics. */
  stateClass?: 'measurement';
}

export const SENSORS: readonly SensorSpec[] = [
  {
    objectId: 'cpu_temperature',
    name: 'CPU temperature',
    path: 'cpu_temperature',
    unit: '°C',
    deviceClass: 'temperature',
    diagnostic: true,
    stateClass: 'measurement',
  },
  {
    objectId: 'cpu_percent',
    name: 'CPU',
    path: 'cpu_percent',
    unit: '%',
    icon: 'mdi:cpu-64-bit',
    diagnostic: true,
    stateClass: 'measurement',
  },
  {
    objectId: 'memory_percent',
    name: 'Memory',
    path: 'memory_percent',
    unit: '%',
    icon: 'mdi:memory',
    diagnostic: true,
    stateClass: 'measurement',
  },
  {
    objectId: 'disk_percent',
    name: 'Disk',
    path: 'disk_usage',
    unit: '%',
    icon: 'mdi:harddisk',
    diagnostic: true,
    stateClass: 'measurement',
  },
  {
    objectId: 'storage_used',
    name: 'Storage used',
    path: 'storage.used_mb',
    unit: 'MiB',
    deviceClass: 'data_size',
    diagnostic: false,
    stateClass: 'measurement',
  },
  {
    objectId: 'image_count',
    name: 'Images',
    path: 'image_count',
    unit: 'images',
    icon: 'mdi:image-multiple',
    diagnostic: false,
    stateClass: 'measurement',
  },
  { objectId: 'uptime', name: 'Uptime', path: 'uptime', unit: 's', deviceClass: 'duration', diagnostic: true },
];

/** Every (component, object id) this version publishes: what `ha-remove` and HA_DISCOVERY=false clear. */
export const ENTITIES: ReadonlyArray<{ component: HaComponent; objectId: string }> = [
  { component: 'button', objectId: 'capture' },
  ...SENSORS.map((sensor) => ({ component: 'sensor' as const, objectId: sensor.objectId })),
  { component: 'binary_sensor', objectId: 'camera' },
  { component: 'image', objectId: 'latest' },
];

export function discoveryMessages(input: DiscoveryInput): DiscoveryMessage[] {
  const topics = nodeTopics(input.topicPrefix, input.nodeId);
  const device: Record<string, unknown> = {
    identifiers: [deviceIdentifier(input.nodeId)],
    name: input.nodeId,
    manufacturer: 'Raspberry Pi',
    model: input.sensor ? `camera-node (${input.sensor})` : 'camera-node',
    sw_version: input.version,
  };
  if (input.configurationUrl) device['configuration_url'] = input.configurationUrl;

  // Shared by every entity: the node's retained availability (its last will says offline).
  const common = (objectId: string): Record<string, unknown> => ({
    unique_id: uniqueId(input.nodeId, objectId),
    device,
    origin: { name: 'camera-node', sw_version: input.version },
    availability_topic: topics.availability,
    payload_available: 'online',
    payload_not_available: 'offline',
  });
  const message = (component: HaComponent, objectId: string, payload: Record<string, unknown>): DiscoveryMessage => ({
    component,
    objectId,
    topic: discoveryTopic(input.haPrefix, component, input.nodeId, objectId),
    payload: { ...common(objectId), ...payload },
  });

  const messages: DiscoveryMessage[] = [
    message('button', 'capture', {
      name: 'Capture',
      icon: 'mdi:camera',
      command_topic: topics.cmd,
      payload_press: CAPTURE_PAYLOAD_PRESS,
      command_template: CAPTURE_COMMAND_TEMPLATE,
      qos: 1,
      retain: false,
    }),
  ];
  for (const sensor of SENSORS) {
    messages.push(
      message('sensor', sensor.objectId, {
        name: sensor.name,
        state_topic: topics.telemetry,
        value_template: `{{ value_json.${sensor.path} }}`,
        ...(sensor.unit ? { unit_of_measurement: sensor.unit } : {}),
        ...(sensor.deviceClass ? { device_class: sensor.deviceClass } : {}),
        ...(sensor.stateClass ? { state_class: sensor.stateClass } : {}),
        ...(sensor.icon ? { icon: sensor.icon } : {}),
        ...(sensor.diagnostic ? { entity_category: 'diagnostic' } : {}),
      }),
    );
  }
  messages.push(
    message('binary_sensor', 'camera', {
      name: 'Camera',
      device_class: 'connectivity',
      entity_category: 'diagnostic',
      state_topic: topics.status,
      value_template: "{{ 'ON' if value_json.camera.connected else 'OFF' }}",
      payload_on: 'ON',
      payload_off: 'OFF',
    }),
    message('image', 'latest', {
      name: 'Latest capture',
      image_topic: topics.preview,
      content_type: 'image/jpeg',
    }),
  );
  return messages;
}

/** Discovery topics of every entity this version publishes for a node (for removal). */
export function discoveryTopicsFor(haPrefix: string, nodeId: string): string[] {
  return ENTITIES.map((entity) => discoveryTopic(haPrefix, entity.component, nodeId, entity.objectId));
}

/**
 * The node id of a retained discovery config that camera-node published, or null for anyone else's.
 * Read from the topic and confirmed by the payload's unique id, so another integration's entity with a
 * similar topic is never cleared.
 */
export function ownedDiscovery(haPrefix: string, topic: string, payload: Buffer): { nodeId: string; objectId: string } | null {
  if (!topic.startsWith(`${haPrefix}/`) || payload.length === 0) return null;
  const parts = topic.slice(haPrefix.length + 1).split('/');
  if (parts.length !== 4 || parts[3] !== 'config') return null;
  const nodeId = parts[1] ?? '';
  const objectId = parts[2] ?? '';
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload.toString('utf8'));
  } catch {
    return null;
  }
  const id = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>)['unique_id'] : undefined;
  return id === uniqueId(nodeId, objectId) ? { nodeId, objectId } : null;
}
