import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { acceptReply, commandPayload, commandPublishProperties, replyTopic, replyTopicFilter } from '../src/client/request.js';

describe('controller requests and replies', () => {
  test('a command carries a fresh id, sent_at and reply_to beside its parameters', () => {
    const before = Date.now();
    const a = commandPayload('capture', { shutter_us: 1000 }, { requester: 'cli-1' });
    const b = commandPayload('capture', {}, { requester: 'cli-1' });
    assert.equal(a.action, 'capture');
    assert.equal(a['shutter_us'], 1000);
    assert.equal(a.reply_to, 'cli-1');
    assert.ok(a.sent_at >= before && a.sent_at <= Date.now());
    assert.notEqual(a.id, b.id);
    assert.equal(commandPayload('list', {}, { requester: 'x', id: 'fixed', sentAt: 5, expiresAt: 9 }).id, 'fixed');
    assert.equal(commandPayload('list', {}, { requester: 'x', expiresAt: 9 })['expires_at'], 9);
    assert.throws(() => commandPayload('list', {}, { requester: 'a/b' }), /requester/);
    assert.throws(() => commandPayload('list', {}, { requester: '+' }), /requester/);
  });

  test('replies are accepted only from the node whose namespace they were published in', () => {
    assert.equal(replyTopicFilter('cameras', 'cli-1'), 'cameras/+/res/cli-1');
    const topic = replyTopic('cameras', 'pi-1', 'cli-1');
    const reply = JSON.stringify({ id: 'c1', node_id: 'pi-1', status: 'success' });
    assert.equal(acceptReply('cameras', 'cli-1', topic, reply)?.id, 'c1');
    const forged = JSON.stringify({ id: 'c1', node_id: 'pi-2', status: 'success' });
    assert.equal(acceptReply('cameras', 'cli-1', topic, forged), null);
    assert.equal(acceptReply('cameras', 'cli-2', topic, reply), null);
    assert.equal(acceptReply('cameras', 'cli-1', 'cameras/pi-1/res', reply), null);
    assert.equal(acceptReply('cameras', 'cli-1', topic, 'not json'), null);
    assert.equal(acceptReply('cameras', 'cli-1', topic, '[1]'), null);
  });

  test('MQTT 5 commands carry a message expiry; 3.1.1 ones cannot', () => {
    assert.deepEqual(commandPublishProperties(true, 30), { properties: { messageExpiryInterval: 30 } });
    assert.deepEqual(commandPublishProperties(false, 30), {});
  });
});
