/**
 * Exchange's per-mailbox limits: the pace (delivery.messages_per_minute_per_account), which one
 * busy account must not turn into every worker waiting, and 3 connections per mailbox, whichever
 * route opened them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../helpers/cli.js';
import { addAccount, sandboxWithAccount } from '../helpers/accounts.js';
import { relayYaml, submitMessage } from '../helpers/relay.js';
import { RelayService } from '../../src/relay/index.js';
import { parseConfigText } from '../../src/config/index.js';
import { createLogger } from '../../src/core/log.js';

const ALICE = 'alice@contoso.onmicrosoft.com';
const BOB = 'bob@contoso.onmicrosoft.com';

const fixture = sandboxWithAccount(ALICE, 'alice-Passw0rd!');
let bobAdded: Promise<void> | undefined;
/** Bob's account beside Alice's (added once, in the first test that needs it). */
const withBob = () => (bobAdded ??= addAccount(fixture.sb, fixture.state, BOB, { password: 'bob-Passw0rd!' }));

test("a burst from one account is paced at its per-minute limit without holding the workers another account's mail needs", async (t) => {
  await withBob();
  const delivery = '  workers: 4\n  messages_per_minute_per_account: 2\n  connections_per_account: 1';
  const yaml = relayYaml(fixture.sb, { delivery }).replace('web:\n  port: 0', `queue:\n  dir: ${join(tempDir(), 'queue')}\nweb:\n  enabled: false`);
  const relay = await RelayService.start({ config: parseConfigText(yaml, 'pacing.yaml').config, stateDir: fixture.state, log: createLogger({ level: 'silent' }) });
  t.after(() => relay.stop());

  for (let i = 0; i < 8; i++) await submitMessage(relay.smtpPort, ALICE, `burst-${i}@test`, [BOB]);
  await submitMessage(relay.smtpPort, BOB, 'other-account@test', [ALICE]);
  const started = Date.now();
  // Bob's message goes out at once, although Alice's burst came first and is 6 over her pace.
  await fixture.sb.mail.waitForOutbound((m) => m.messageId === 'other-account@test', 10_000);
  assert.ok(Date.now() - started < 10_000);

  const sent = () => fixture.sb.mail.outbound().filter((m) => m.messageId?.startsWith('burst-')).length;
  const deadline = Date.now() + 10_000;
  while (sent() < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(sent(), 2, "two of Alice's messages in the first minute, and no more");
  const entries = await relay.queue.list({ search: 'burst-' });
  const paced = entries.filter((e) => e.state === 'deferred' && /452 4\.2\.0 Account alice@contoso\.onmicrosoft\.com sends at most 2 messages a minute; next try at /.test(e.recipients[0]?.lastReply ?? ''));
  assert.ok(paced.length >= 4, `the rest wait in the queue, not in workers (${paced.length} deferred)`);
  for (const e of paced) assert.ok(Date.parse(e.nextAttemptAt) > Date.now() + 30_000, 'and come back when the window has room');
});

test('stopping the relay does not wait out a pace', async () => {
  const delivery = '  messages_per_minute_per_account: 1';
  const yaml = relayYaml(fixture.sb, { delivery }).replace('web:\n  port: 0', `queue:\n  dir: ${join(tempDir(), 'queue')}\nweb:\n  enabled: false`);
  const relay = await RelayService.start({ config: parseConfigText(yaml, 'pacing.yaml').config, stateDir: fixture.state, log: createLogger({ level: 'silent' }) });
  await submitMessage(relay.smtpPort, ALICE, 'pace-1@test', [BOB]);
  await submitMessage(relay.smtpPort, ALICE, 'pace-2@test', [BOB]);
  await fixture.sb.mail.waitForOutbound((m) => m.messageId === 'pace-1@test', 10_000);
  await new Promise((r) => setTimeout(r, 300));
  const started = Date.now();
  await relay.stop();
  assert.ok(Date.now() - started < 5_000, `stopped in ${Date.now() - started} ms`);
});

test("two routes through one account share the mailbox's 3 connections (Exchange counts per mailbox, not per route; 432 4.3.2 beyond)", async (t) => {
  // A rule sends fabrikam mail through an explicit route (spelling out the default mechanism), the
  // rest goes by sender: the same mailbox, reached the same way, so one pool of 3 connections, not
  // one per route.
  const routes = `  routes:\n    m365: { type: smtp, account: ${ALICE}, host: 127.0.0.1, port: ${fixture.sb.endpoints.smtp.port}, mechanism: XOAUTH2 }\n  rules:\n    - { recipient_domain: fabrikam.test, route: m365 }`;
  const yaml = relayYaml(fixture.sb, { relay: routes, delivery: '  messages_per_minute_per_account: 100000' }).replace('web:\n  port: 0', `queue:\n  dir: ${join(tempDir(), 'queue')}\nweb:\n  enabled: false`);
  const relay = await RelayService.start({ config: parseConfigText(yaml, 'pacing.yaml').config, stateDir: fixture.state, log: createLogger({ level: 'silent' }) });
  t.after(() => relay.stop());
  // Each message takes a while at the end of DATA, so both pools open all the connections they may.
  fixture.sb.faults.add({ stage: 'smtp.dataEnd', action: { kind: 'delay', ms: 300 }, count: -1 });
  t.after(() => fixture.sb.faults.clear());
  const ids = Array.from({ length: 16 }, (_, i) => `shared-${i}@test`);
  await Promise.all(ids.map((id, i) => submitMessage(relay.smtpPort, ALICE, id, [i % 2 ? BOB : 'someone@fabrikam.test'])));
  for (const id of ids) await fixture.sb.mail.waitForOutbound((m) => m.messageId === id, 20_000);
  const refused = [];
  for (const e of await relay.queue.list({ search: 'shared-' })) {
    for (const a of (await relay.queue.get(e.id))?.history ?? []) if (/432 4\.3\.2/.test(a.reply)) refused.push(`${e.messageId}: ${a.reply}`);
  }
  assert.deepEqual(refused, [], 'no delivery was refused for a fourth connection');
});
