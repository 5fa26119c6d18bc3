import type { MqttClient, Packet } from 'mqtt';

type Callback = (err?: Error) => void;
interface StoreInternals {
  _storeAndSend(packet: Packet, cb: Callback | undefined, cbStorePut: () => void): void;
  _removeTopicAliasAndRecoverTopicName(packet: Packet): Error | undefined;
  _writePacket(packet: Packet, cb: Callback | undefined): void;
  outgoingStore: { put(packet: Packet, cb: (err?: Error) => void): unknown };
}

/**
 * mqtt.js keeps every QoS 1 PUBLISH in its outgoing store until the PUBACK, and first deep-copies it
 * (payload included) so the stored packet keeps its topic name when a topic alias is sent. For
 * image chunks that is a second copy of every byte delivered, and most of the garbage collector's
 * work. This keeps the same store and the same topic recovery on a shallow copy: the payload is
 * shared, which is safe because nothing here changes a payload before its PUBACK (the chunk
 * publisher reuses a buffer only once its publish has resolved, after the store let it go).
 *
 * It replaces a method mqtt.js does not document; when the client does not have the methods it
 * expects (another mqtt.js), the client is left as it is.
 */
export function sharePublishPayloads(client: MqttClient): boolean {
  const internals = client as unknown as Partial<StoreInternals>;
  if (
    typeof internals._storeAndSend !== 'function' ||
    typeof internals._removeTopicAliasAndRecoverTopicName !== 'function' ||
    typeof internals._writePacket !== 'function' ||
    typeof internals.outgoingStore?.put !== 'function'
  )
    return false;
  internals._storeAndSend = function storeAndSend(this: StoreInternals, packet, cb, cbStorePut) {
    let stored = packet;
    if (packet.cmd === 'publish') {
      stored = { ...packet, ...(packet.properties ? { properties: { ...packet.properties } } : {}) };
      const err = this._removeTopicAliasAndRecoverTopicName(stored);
      if (err) return cb?.(err);
    }
    this.outgoingStore.put(stored, (err) => {
      if (err) return cb?.(err);
      cbStorePut();
      this._writePacket(packet, cb);
    });
  };
  return true;
}
