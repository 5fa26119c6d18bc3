import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createHasher } from '../src/client/hasher.js';

for (const worker of [true, false]) {
  test(`the ${worker ? 'worker-thread' : 'in-thread'} SHA-256 equals node:crypto's, for interleaved streams`, async () => {
    const hasher = createHasher({ worker });
    try {
      const parts = Array.from({ length: 40 }, () => randomBytes(64 * 1024 + 3));
      const a = hasher.create();
      const b = hasher.create();
      parts.forEach((part, i) => (i % 2 ? b : a).update(part));
      await hasher.below(0);
      assert.equal(hasher.backlog(), 0, 'everything hashed');
      const expected = (odd: number) =>
        parts
          .filter((_, i) => i % 2 === odd)
          .reduce((hash, part) => hash.update(part), createHash('sha256'))
          .digest('hex');
      assert.deepEqual(await Promise.all([a.digest(), b.digest()]), [expected(0), expected(1)]);
      assert.equal(await hasher.create().digest(), createHash('sha256').digest('hex'), 'an empty stream');
    } finally {
      await hasher.stop();
    }
  });
}
