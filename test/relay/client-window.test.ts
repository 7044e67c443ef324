/**
 * The per-client message window (relay.max_messages_per_minute_per_client): exact per client, and
 * forgotten once a client has been quiet for a minute, so memory does not grow with every address
 * the relay has ever seen.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InboundServer } from '../../src/relay/inbound.js';
import { defaultConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/core/log.js';
import type { Queue } from '../../src/queue/index.js';

interface WindowInternals {
  messageAllowed(ip: string, perMinute: number): boolean;
  perClientMessages: Map<string, unknown>;
}

test('per-client windows: the limit holds per address, and quiet clients are forgotten', (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
  const inbound = new InboundServer({ config: defaultConfig(), queue: {} as Queue, log: createLogger({ level: 'silent' }), hostname: 'relay.test', onAccepted: () => {} }) as unknown as WindowInternals;
  for (let i = 0; i < 3; i++) assert.equal(inbound.messageAllowed('10.0.0.1', 3), true);
  assert.equal(inbound.messageAllowed('10.0.0.1', 3), false, 'the fourth message in a minute is refused');
  assert.equal(inbound.messageAllowed('10.0.0.2', 3), true, 'another client has its own window');
  for (let i = 0; i < 5000; i++) inbound.messageAllowed(`10.1.${i >> 8}.${i & 255}`, 3);
  t.mock.timers.tick(61_000);
  assert.equal(inbound.messageAllowed('10.0.0.1', 3), true, 'a minute later the client may send again');
  for (let i = 0; i < 4096; i++) inbound.messageAllowed('10.9.9.9', 1_000_000);
  assert.deepEqual([...inbound.perClientMessages.keys()].sort(), ['10.0.0.1', '10.9.9.9'], 'only clients heard from in the last minute are kept');
});
