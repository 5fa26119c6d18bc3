import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readSchema, type JsonSchema } from '../src/schemas.js';
import {
  CAPTURE_COMMAND_TEMPLATE,
  CAPTURE_PAYLOAD_PRESS,
  discoveryMessages,
  discoveryTopicsFor,
  ENTITIES,
  ownedDiscovery,
  type DiscoveryInput,
} from '../src/ha/discovery.js';
import { nodeTopics } from '../src/mqtt/topics.js';

/**
 * The rules Home Assistant documents for MQTT discovery (integrations/mqtt "Discovery", and each
 * platform's page: button.mqtt, sensor.mqtt, binary_sensor.mqtt, image.mqtt; sensor device classes
 * and their units), written down here so a payload that Home Assistant would refuse fails a test.
 */
const TOPIC_ID = /^[a-zA-Z0-9_-]+$/;
const COMMON_KEYS = new Set([
  'availability_topic',
  'payload_available',
  'payload_not_available',
  'availability',
  'availability_mode',
  'availability_template',
  'device',
  'origin',
  'unique_id',
  'name',
  'icon',
  'entity_category',
  'enabled_by_default',
  'object_id',
  'default_entity_id',
  'qos',
  'json_attributes_topic',
  'json_attributes_template',
  'encoding',
  'entity_picture',
]);
const PLATFORM: Record<string, { required: string[]; keys: string[] }> = {
  button: { required: ['command_topic'], keys: ['command_topic', 'command_template', 'payload_press', 'retain', 'device_class'] },
  sensor: {
    required: ['state_topic'],
    keys: [
      'state_topic',
      'value_template',
      'unit_of_measurement',
      'device_class',
      'state_class',
      'expire_after',
      'force_update',
      'suggested_display_precision',
      'last_reset_value_template',
      'options',
    ],
  },
  binary_sensor: {
    required: ['state_topic'],
    keys: ['state_topic', 'value_template', 'payload_on', 'payload_off', 'device_class', 'expire_after', 'force_update', 'off_delay'],
  },
  image: { required: [], keys: ['image_topic', 'url_topic', 'url_template', 'content_type', 'image_encoding'] },
};
/** Sensor device classes used here, with the units Home Assistant accepts for them. */
const SENSOR_UNITS: Record<string, string[]> = {
  temperature: ['°C', '°F', 'K'],
  data_size: ['bit', 'kbit', 'Mbit', 'Gbit', 'B', 'kB', 'MB', 'GB', 'TB', 'KiB', 'MiB', 'GiB', 'TiB'],
  duration: ['d', 'h', 'min', 's', 'ms'],
};
const BINARY_SENSOR_CLASSES = new Set(['connectivity', 'problem', 'running', 'power', 'plug']);
const STATE_CLASSES = new Set(['measurement', 'total', 'total_increasing', 'measurement_angle']);

const input: DiscoveryInput = {
  nodeId: 'cam-kitchen',
  topicPrefix: 'cameras',
  haPrefix: 'homeassistant',
  version: '1.2.3',
  sensor: 'imx477',
  configurationUrl: 'http://cam-kitchen.local:5003/status',
};

test('every discovery config follows Home Assistant’s documented rules', () => {
  const messages = discoveryMessages(input);
  const topics = nodeTopics('cameras', 'cam-kitchen');
  assert.equal(messages.length, ENTITIES.length);
  for (const { component, objectId, topic, payload } of messages) {
    const where = `${component}/${objectId}`;
    // <discovery_prefix>/<component>/[<node_id>/]<object_id>/config with [a-zA-Z0-9_-] ids.
    assert.equal(topic, `homeassistant/${component}/cam-kitchen/${objectId}/config`);
    assert.match(objectId, TOPIC_ID);
    const platform = PLATFORM[component];
    assert.ok(platform, `${where}: unsupported component`);
    for (const key of Object.keys(payload)) {
      assert.ok(COMMON_KEYS.has(key) || platform.keys.includes(key), `${where}: unknown key ${key}`);
    }
    for (const key of platform.required) assert.ok(typeof payload[key] === 'string' && payload[key] !== '', `${where}: needs ${key}`);
    // A device block needs unique_id on the entity and identifiers (or connections) on the device.
    assert.match(String(payload['unique_id']), /^camera_node_cam-kitchen_/);
    const device = payload['device'] as Record<string, unknown>;
    assert.deepEqual(device['identifiers'], ['camera_node_cam-kitchen']);
    assert.equal(device['name'], 'cam-kitchen');
    assert.equal(device['sw_version'], '1.2.3');
    assert.match(String(device['model']), /imx477/);
    assert.match(String(device['configuration_url']), /^https?:\/\//);
    assert.equal(typeof (payload['origin'] as Record<string, unknown>)['name'], 'string');
    // Availability from the node's retained availability topic, with the plane's payloads.
    assert.equal(payload['availability_topic'], topics.availability);
    assert.equal(payload['payload_available'], 'online');
    assert.equal(payload['payload_not_available'], 'offline');
    // Names are the entity's own (has_entity_name style): Home Assistant prefixes the device name.
    assert.ok(typeof payload['name'] === 'string' && !String(payload['name']).startsWith('cam-kitchen'), `${where}: name`);
    if ('entity_category' in payload) {
      assert.ok(payload['entity_category'] === 'diagnostic' || (payload['entity_category'] === 'config' && component !== 'sensor'));
    }
    if ('icon' in payload) assert.match(String(payload['icon']), /^mdi:[a-z0-9-]+$/);
    if ('value_template' in payload) assert.match(String(payload['value_template']), /^\{\{.*\}\}$/);
  }
});

test('unique ids are unique and stable: they depend on the node id only', () => {
  const ids = discoveryMessages(input).map((m) => m.payload['unique_id']);
  assert.equal(new Set(ids).size, ids.length);
  const later = discoveryMessages({ ...input, version: '9.9.9', sensor: null, configurationUrl: null, topicPrefix: 'other' });
  assert.deepEqual(
    later.map((m) => m.payload['unique_id']),
    ids,
  );
  assert.deepEqual(
    later.map((m) => m.topic),
    discoveryMessages(input).map((m) => m.topic),
  );
  // No sensor and no URL: the device block still valid, without a made-up URL.
  const device = later[0]?.payload['device'] as Record<string, unknown>;
  assert.equal(device['model'], 'camera-node');
  assert.ok(!('configuration_url' in device));
});

test('sensors: device classes with units Home Assistant accepts, state classes, topics of the node', () => {
  const topics = nodeTopics('cameras', 'cam-kitchen');
  const sensors = discoveryMessages(input).filter((m) => m.component === 'sensor');
  const byId = new Map(sensors.map((m) => [m.objectId, m.payload]));
  for (const wanted of ['cpu_temperature', 'cpu_percent', 'memory_percent', 'disk_percent', 'storage_used', 'image_count', 'uptime']) {
    assert.ok(byId.has(wanted), `missing sensor ${wanted}`);
  }
  for (const { objectId, payload } of sensors) {
    assert.equal(payload['state_topic'], topics.telemetry, objectId);
    const deviceClass = payload['device_class'];
    if (typeof deviceClass === 'string') {
      const units = SENSOR_UNITS[deviceClass];
      assert.ok(units, `${objectId}: device class ${deviceClass} not checked here`);
      assert.ok(units.includes(String(payload['unit_of_measurement'])), `${objectId}: unit ${String(payload['unit_of_measurement'])}`);
    }
    if ('state_class' in payload) assert.ok(STATE_CLASSES.has(String(payload['state_class'])), objectId);
  }
  assert.equal(byId.get('cpu_temperature')?.['device_class'], 'temperature');
  assert.equal(byId.get('uptime')?.['device_class'], 'duration');
  assert.equal(byId.get('storage_used')?.['device_class'], 'data_size');
  assert.equal(byId.get('cpu_percent')?.['entity_category'], 'diagnostic');
  assert.equal(byId.get('image_count')?.['entity_category'], undefined);
});

test('the camera connectivity binary sensor and the latest-preview image entity', () => {
  const topics = nodeTopics('cameras', 'cam-kitchen');
  const messages = discoveryMessages(input);
  const camera = messages.find((m) => m.component === 'binary_sensor')?.payload ?? {};
  assert.ok(BINARY_SENSOR_CLASSES.has(String(camera['device_class'])));
  assert.equal(camera['device_class'], 'connectivity');
  assert.equal(camera['state_topic'], topics.status);
  assert.match(String(camera['value_template']), /value_json\.camera\.connected/);
  const image = messages.find((m) => m.component === 'image')?.payload ?? {};
  // Exactly one of image_topic / url_topic.
  assert.equal(image['image_topic'], topics.preview);
  assert.ok(!('url_topic' in image));
  assert.equal(image['content_type'], 'image/jpeg');
});

test('the Capture button sends a capture command to the node with a fresh id per press', () => {
  const button = discoveryMessages(input).find((m) => m.component === 'button')?.payload ?? {};
  assert.equal(button['command_topic'], 'cameras/cam-kitchen/cmd');
  assert.deepEqual(JSON.parse(CAPTURE_PAYLOAD_PRESS), { action: 'capture' });
  assert.equal(button['payload_press'], CAPTURE_PAYLOAD_PRESS);
  assert.equal(button['command_template'], CAPTURE_COMMAND_TEMPLATE);
  // Render the template the way Jinja would for two presses a millisecond apart.
  const render = (ms: number) => JSON.parse(CAPTURE_COMMAND_TEMPLATE.replace(/\{\{.*?\}\}/g, String(ms))) as Record<string, unknown>;
  const first = render(1_700_000_000_000);
  const second = render(1_700_000_000_001);
  assert.equal(first['action'], 'capture');
  assert.match(String(first['id']), /^ha-\d+$/);
  assert.notEqual(first['id'], second['id']);
  assert.equal(first['sent_at'], 1_700_000_000_000, 'the press time, so a press held by the broker expires');
  assert.equal(button['retain'], false);
});

test('removal covers every published topic; only camera-node’s own configs are recognised', () => {
  const messages = discoveryMessages(input);
  assert.deepEqual(discoveryTopicsFor('homeassistant', 'cam-kitchen').sort(), messages.map((m) => m.topic).sort());
  const first = messages[0];
  assert.ok(first);
  assert.deepEqual(ownedDiscovery('homeassistant', first.topic, Buffer.from(JSON.stringify(first.payload))), {
    nodeId: 'cam-kitchen',
    objectId: first.objectId,
  });
  const foreign = JSON.stringify({ unique_id: 'zigbee_0x1234', state_topic: 'zigbee2mqtt/lamp' });
  assert.equal(ownedDiscovery('homeassistant', 'homeassistant/light/0x1234/light/config', Buffer.from(foreign)), null);
  assert.equal(ownedDiscovery('homeassistant', first.topic, Buffer.alloc(0)), null);
  assert.equal(ownedDiscovery('homeassistant', first.topic, Buffer.from('not json')), null);
  assert.equal(ownedDiscovery('homeassistant', 'homeassistant/status', Buffer.from('online')), null);
});

/** The property a `value_json.a.b` path names in a message schema, or undefined. */
function schemaAt(schema: JsonSchema, path: string): JsonSchema | undefined {
  let node: JsonSchema | undefined = schema;
  for (const key of path.split('.')) node = node?.properties?.[key] as JsonSchema | undefined;
  return node;
}

test('value templates read fields the node publishes: telemetry and status as their schemas describe them', () => {
  const telemetry = readSchema('telemetry.schema.json');
  const status = readSchema('status.schema.json');
  const telemetryRequired = new Set((telemetry['required'] as string[] | undefined) ?? []);
  for (const { component, objectId, payload } of discoveryMessages(input)) {
    const template = payload['value_template'];
    if (typeof template !== 'string') continue;
    const paths = [...template.matchAll(/value_json\.([a-z_.]+)/g)].map((match) => match[1] ?? '');
    assert.equal(paths.length, 1, `${component}/${objectId}: one field`);
    const path = paths[0] ?? '';
    const schema = payload['state_topic'] === nodeTopics('cameras', 'cam-kitchen').telemetry ? telemetry : status;
    const field = schemaAt(schema, path);
    assert.ok(field, `${component}/${objectId}: ${path} is not in ${String(schema['$id'])}`);
    const types = ([] as unknown[]).concat(field['type']);
    assert.ok(
      types.includes(component === 'binary_sensor' ? 'boolean' : 'number') || types.includes('integer'),
      `${objectId}: ${path} type`,
    );
    if (schema === telemetry) assert.ok(telemetryRequired.has(path.split('.')[0] ?? ''), `${objectId}: ${path} is always in telemetry`);
  }
});
