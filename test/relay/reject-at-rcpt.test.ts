/**
 * A recipient whose route is a reject is refused at RCPT TO (550 5.7.1 and the route's message),
 * not accepted with 250 and bounced later: that bounce would go to a sender that may be forged
 * (backscatter). Driven by real SMTP conversations, with the inbound server in its own thread and
 * in the main event loop, and across a reload (SIGHUP).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../helpers/cli.js';
import { sandboxWithAccount } from '../helpers/accounts.js';
import { relayYaml, say, smtpSession } from '../helpers/relay.js';
import type { RawClient } from '../helpers/sandbox.js';
import { RelayService, hashPassword } from '../../src/relay/index.js';
import { parseConfigText, type Config } from '../../src/config/index.js';
import { createLogger } from '../../src/core/log.js';

const ALICE = 'alice@contoso.onmicrosoft.com';
const BOB = 'bob@contoso.onmicrosoft.com';
const PARTNER = 'orders@fabrikam.test';

const fixture = sandboxWithAccount(ALICE, 'alice-Passw0rd!');

/** Mail to fabrikam.test is refused; everything else goes by-sender (Alice's account, the sandbox). */
const REJECT_FABRIKAM = `  routes:
    blocked: { type: reject, message: "Mail to fabrikam.test is not relayed from here" }
  rules:
    - { recipient_domain: fabrikam.test, route: blocked }`;

/** A relay configuration for one test; `relay` lines go under relay:, each with its own queue. */
function configFor(relay: string, dir: string): Config {
  const yaml = relayYaml(fixture.sb, { relay, delivery: '  messages_per_minute_per_account: 100000' }).replace('web:\n  port: 0', `queue:\n  dir: ${join(dir, 'queue')}\nweb:\n  enabled: false`);
  return parseConfigText(yaml, 'reject-at-rcpt.yaml').config;
}

/** A relay for one test, stopped when it ends, and a maker of configurations (for reloads) with its queue. */
async function startRelay(t: TestContext, relayLines: string): Promise<{ relay: RelayService; config(relay: string): Config }> {
  const dir = tempDir();
  const config = (relay: string) => configFor(relay, dir);
  const relay = await RelayService.start({ config: config(relayLines), stateDir: fixture.state, log: createLogger({ level: 'silent' }) });
  t.after(() => relay.stop());
  return { relay, config };
}

/** The reply to RCPT TO in a fresh transaction (RSET, MAIL FROM) of session `c`. */
async function rcptReply(c: RawClient, from: string, rcpt: string): Promise<string> {
  assert.match(await say(c, 'RSET'), /^250/);
  assert.match(await say(c, `MAIL FROM:<${from}>`), /^250/);
  return say(c, `RCPT TO:<${rcpt}>`);
}

/**
 * The first RCPT reply after a reload that matches `expected`. Without the inbound thread the
 * reload is synchronous and the very next RCPT must see it; the thread hears of it by message, so
 * there the reply may change a moment later.
 */
async function rcptAfterReload(c: RawClient, thread: boolean, from: string, rcpt: string, expected: RegExp): Promise<string> {
  const deadline = Date.now() + (thread ? 5_000 : 0);
  for (;;) {
    const reply = await rcptReply(c, from, rcpt);
    if (expected.test(reply) || Date.now() >= deadline) return reply;
    await new Promise((r) => setTimeout(r, 20));
  }
}

for (const thread of [true, false]) {
  test(`inbound_thread: ${thread}: a rejected recipient gets 550 5.7.1 at RCPT, the others of the message are delivered; a reload applies to the next RCPT`, async (t) => {
    const { relay, config } = await startRelay(t, `  inbound_thread: ${thread}\n${REJECT_FABRIKAM}`);
    const id = `mixed-${thread}@reject.test`;
    const c = await smtpSession(relay.smtpPort);
    assert.match(await say(c, `MAIL FROM:<${ALICE}>`), /^250/);
    assert.equal(await say(c, `RCPT TO:<${PARTNER}>`), '550 5.7.1 Mail to fabrikam.test is not relayed from here');
    assert.match(await say(c, 'RCPT TO:<Sales@FABRIKAM.test>'), /^550 5\.7\.1 /, 'the domain in any case');
    assert.match(await say(c, `RCPT TO:<${BOB}>`), /^250/);
    assert.match(await say(c, 'DATA'), /^354/);
    c.socket.write(`From: ${ALICE}\r\nTo: ${BOB}, ${PARTNER}\r\nSubject: mixed\r\nMessage-ID: <${id}>\r\n\r\nbody\r\n.\r\n`);
    assert.match((await c.smtpReply(10_000)).join('\n'), /^250/);

    const sent = await fixture.sb.mail.waitForOutbound((m) => m.messageId === id, 15_000);
    assert.deepEqual(sent.to, [BOB], 'sent upstream to the accepted recipient only');
    const entry = (await relay.queue.list({ search: id }))[0]!;
    assert.deepEqual(entry.recipients.map((r) => r.address), [BOB], 'the refused recipients never entered the queue, so nothing bounces');

    // SIGHUP: now Bob's domain is refused and fabrikam.test is relayed.
    relay.reload(config(`  inbound_thread: ${thread}\n  routes:\n    blocked: { type: reject, message: "No mail to contoso today" }\n  rules:\n    - { recipient_domain: contoso.onmicrosoft.com, route: blocked }`));
    assert.equal(await rcptAfterReload(c, thread, ALICE, BOB, /^550/), '550 5.7.1 No mail to contoso today');
    assert.match(await rcptReply(c, ALICE, PARTNER), /^250/);
    await say(c, 'QUIT');
  });
}

test('the facts known at RCPT decide: sender, authenticated user and client IP; with every recipient refused, DATA is refused', async (t) => {
  const users = `  users: [{ name: scanner, password_hash: "${hashPassword('scan-pw-123')}", allowed_senders: ["*"] }]`;
  const rules = `  routes:
    blocked: { type: reject, message: Refused by policy }
  rules:
    - { sender: "@spoofed.test", route: blocked }
    - { user: scanner, recipient_domain: fabrikam.test, route: blocked }
    - { client: 127.0.0.0/8, sender: "<>", recipient_domain: fabrikam.test, route: blocked }`;
  const { relay } = await startRelay(t, `${users}\n${rules}`);
  const c = await smtpSession(relay.smtpPort);
  assert.equal(await rcptReply(c, 'ceo@spoofed.test', BOB), '550 5.7.1 Refused by policy', 'by sender');
  assert.match(await rcptReply(c, ALICE, PARTNER), /^250/, 'not authenticated: the user rule does not apply');
  assert.match(await rcptReply(c, '', BOB), /^250/, 'a bounce to another domain');
  assert.equal(await rcptReply(c, '', PARTNER), '550 5.7.1 Refused by policy', 'by client, null sender and domain');

  assert.match(await say(c, 'RSET'), /^250/);
  assert.match(await say(c, `AUTH PLAIN ${Buffer.from('\0scanner\0scan-pw-123').toString('base64')}`), /^235/);
  assert.equal(await rcptReply(c, ALICE, PARTNER), '550 5.7.1 Refused by policy', 'by authenticated user');
  assert.match(await rcptReply(c, ALICE, BOB), /^250/);

  assert.match(await say(c, 'RSET'), /^250/);
  assert.match(await say(c, `MAIL FROM:<${ALICE}>`), /^250/);
  assert.match(await say(c, `RCPT TO:<${PARTNER}>`), /^550 5\.7\.1 /);
  assert.match(await say(c, 'DATA'), /^503 /, 'no recipient was accepted');
  await say(c, 'QUIT');
  assert.deepEqual(await relay.queue.list(), [], 'nothing queued');
});

test('the open-relay checks come first: a client outside allow_networks hears "authenticate first", not the route', async (t) => {
  const { relay } = await startRelay(t, `  allow_networks: [192.0.2.0/24]\n${REJECT_FABRIKAM}`);
  const c = await smtpSession(relay.smtpPort);
  assert.match(await say(c, `MAIL FROM:<${ALICE}>`), /^250/);
  assert.match(await say(c, `RCPT TO:<${PARTNER}>`), /^550 5\.7\.1 Relay access denied: authenticate first/);
  assert.match(await say(c, 'RCPT TO:<a%b@fabrikam.test>'), /^550 5\.7\.1 Relay access denied: the % relay hack/);
  await say(c, 'QUIT');
});
