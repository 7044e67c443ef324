/**
 * Bounces against the sandbox: expiry at the queue lifetime, `delivery.bounces: false`, a DSN
 * whose own delivery fails (dropped, never bounced), the header section of a bare-LF message, and
 * a message with more recipients than a day's budget (delivered in parts).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { tempDir } from '../helpers/cli.js';
import { sandboxWithAccount } from '../helpers/accounts.js';
import { relayYaml, say, smtpSession, submitMessage } from '../helpers/relay.js';
import { RelayService } from '../../src/relay/index.js';
import { headerEnd, readReturnedContent, FULL_RETURN_MAX } from '../../src/relay/dsn.js';
import { parseConfigText } from '../../src/config/index.js';
import { createLogger } from '../../src/core/log.js';
import type { QueueEntry } from '../../src/queue/index.js';

const ALICE = 'alice@contoso.onmicrosoft.com';
const BOB = 'bob@contoso.onmicrosoft.com';
const CAROL = 'carol@contoso.onmicrosoft.com';
const DAVE = 'dave@contoso.onmicrosoft.com';
const fixture = sandboxWithAccount(ALICE, 'alice-Passw0rd!');

async function startRelay(t: TestContext, delivery = ''): Promise<RelayService> {
  const dir = tempDir();
  const yaml = relayYaml(fixture.sb, { delivery: `${delivery}\n  messages_per_minute_per_account: 100000` }).replace('web:\n  port: 0', `queue:\n  dir: ${join(dir, 'queue')}\nweb:\n  enabled: false`);
  const relay = await RelayService.start({ config: parseConfigText(yaml, 'bounces.yaml').config, stateDir: fixture.state, log: createLogger({ level: 'silent' }) });
  t.after(() => relay.stop());
  return relay;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const entryOf = async (relay: RelayService, id: string, states: QueueEntry['state'][]) => {
  const e = (await relay.queue.list({ search: id }))[0];
  return e && states.includes(e.state) ? e : undefined;
};

const dsnsAbout = (id: string) => fixture.sb.mail.outbound().filter((m) => m.raw.toString().includes('X-Postfix-Queue-ID') && m.raw.toString().includes(id));

test('a message still deferred at the end of its lifetime bounces with 4.4.7', async (t) => {
  const relay = await startRelay(t, '  max_lifetime_seconds: 1');
  fixture.sb.faults.add({ stage: 'smtp.rcpt', action: { kind: 'reply', reply: '451 4.7.500 Server busy. Please try again later.' }, count: 20, match: 'slowpoke@' });
  await submitMessage(relay.smtpPort, ALICE, 'expired@bounces.test', ['slowpoke@contoso.onmicrosoft.com']);
  const dsn = await fixture.sb.mail.waitForOutbound((m) => m.to.includes(ALICE) && m.raw.toString().includes('expired@bounces.test') && /Action: failed/.test(m.raw.toString()), 20_000);
  const text = dsn.raw.toString();
  assert.match(text, /Final-Recipient: rfc822; slowpoke@contoso\.onmicrosoft\.com/);
  assert.match(text, /Status: 4\.4\.7/);
  assert.match(text, /Message expired after \d+ h in the queue; last error: 451 4\.7\.500/);
  assert.ok(await entryOf(relay, 'expired@bounces.test', ['bounced']));
});

test('delivery.bounces: false → a failed recipient gets no DSN', async (t) => {
  const relay = await startRelay(t, '  bounces: false');
  fixture.sb.faults.add({ stage: 'smtp.rcpt', action: { kind: 'reply', reply: '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found' }, count: 1, match: 'gone-quiet@' });
  await submitMessage(relay.smtpPort, ALICE, 'quiet@bounces.test', ['gone-quiet@contoso.onmicrosoft.com']);
  await until('bounced', () => entryOf(relay, 'quiet@bounces.test', ['bounced']));
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(dsnsAbout('quiet@bounces.test').length, 0);
  assert.equal((await relay.queue.list()).filter((e) => e.sender === '').length, 0, 'none queued');
});

test('a DSN whose own delivery fails permanently is dropped, not bounced', async (t) => {
  const relay = await startRelay(t);
  const SENDER = 'ghost@contoso.onmicrosoft.com';
  fixture.sb.faults.add({ stage: 'smtp.rcpt', action: { kind: 'reply', reply: '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found' }, count: 1, match: 'gone-loud@' });
  fixture.sb.faults.add({ stage: 'smtp.rcpt', action: { kind: 'reply', reply: '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found' }, count: 1, match: 'ghost@' });
  await submitMessage(relay.smtpPort, SENDER, 'loop@bounces.test', ['gone-loud@contoso.onmicrosoft.com']);
  await until('original bounced', () => entryOf(relay, 'loop@bounces.test', ['bounced']));
  const dsnEntry = await until('the DSN bounced', async () => (await relay.queue.list()).find((e) => e.sender === '' && e.state === 'bounced'));
  assert.deepEqual(dsnEntry.recipients.map((r) => r.address), [SENDER]);
  await new Promise((r) => setTimeout(r, 1500));
  const all = await relay.queue.list();
  assert.equal(all.length, 2, `the message and its DSN, nothing more: ${JSON.stringify(all.map((e) => [e.sender, e.state]))}`);
  assert.equal(fixture.sb.faults.list().filter((f) => f.match === 'ghost@').length, 0, 'the DSN was tried (the fault was used)');
});

test('the DSN of a bare-LF message returns its header section, not its body', async (t) => {
  const relay = await startRelay(t);
  fixture.sb.faults.add({ stage: 'smtp.rcpt', action: { kind: 'reply', reply: '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found' }, count: 1, match: 'gone-lf@' });
  const c = await smtpSession(relay.smtpPort);
  assert.match(await say(c, `MAIL FROM:<${ALICE}>`), /^250/);
  assert.match(await say(c, 'RCPT TO:<gone-lf@contoso.onmicrosoft.com>'), /^250/);
  assert.match(await say(c, 'DATA'), /^354/);
  c.socket.write(`From: ${ALICE}\nSubject: lf\nMessage-ID: <lf@bounces.test>\n\nSECRET-BODY-LINE\r\n.\r\n`);
  assert.match((await c.smtpReply(10_000)).join('\n'), /^250/);
  await say(c, 'QUIT');
  const dsn = await fixture.sb.mail.waitForOutbound((m) => m.to.includes(ALICE) && m.raw.toString().includes('lf@bounces.test'), 15_000);
  const text = dsn.raw.toString();
  assert.match(text, /Content-Type: text\/rfc822-headers\r\n\r\n[\s\S]*Message-ID: <lf@bounces\.test>/);
  assert.doesNotMatch(text, /SECRET-BODY-LINE/);
});

test('headerEnd and readReturnedContent: CRLF and LF messages, RET=FULL up to its cap', async () => {
  assert.equal(headerEnd(Buffer.from('A: 1\r\nB: 2\r\n\r\nbody\n\nmore')), 10);
  assert.equal(headerEnd(Buffer.from('A: 1\nB: 2\n\nbody\r\n\r\n')), 9);
  assert.equal(headerEnd(Buffer.from('A: 1\r\n')), -1);
  const chunks = (s: string) => Readable.from([Buffer.from(s.slice(0, 5)), Buffer.from(s.slice(5))]);
  assert.deepEqual(await readReturnedContent(chunks('A: 1\nB: 2\n\nbody\n'), false), { kind: 'headers', bytes: Buffer.from('A: 1\nB: 2') });
  assert.deepEqual(await readReturnedContent(chunks('A: 1\r\n\r\nbody\r\n'), true), { kind: 'message', bytes: Buffer.from('A: 1\r\n\r\nbody\r\n') });
  const big = `A: 1\r\n\r\n${'x'.repeat(FULL_RETURN_MAX)}`;
  assert.deepEqual(await readReturnedContent(chunks(big), true), { kind: 'headers', bytes: Buffer.from('A: 1') }, 'too large for RET=FULL: headers only');
});

test('a message with more recipients than the daily budget goes in parts instead of waiting forever', async (t) => {
  const relay = await startRelay(t, '  recipients_per_day_per_account: 2');
  await submitMessage(relay.smtpPort, ALICE, 'parts@bounces.test', [BOB, CAROL, DAVE]);
  const sent = await fixture.sb.mail.waitForOutbound((m) => m.messageId === 'parts@bounces.test', 15_000);
  assert.deepEqual(sent.to, [BOB, CAROL], 'the part that fits the budget');
  const entry = await until('deferred', () => entryOf(relay, 'parts@bounces.test', ['deferred']));
  const rest = entry.recipients.find((r) => r.address === DAVE)!;
  assert.equal(rest.state, 'deferred');
  assert.match(rest.lastReply ?? '', /^452 4\.2\.0 Account alice@contoso\.onmicrosoft\.com has room for 2 recipients in 24 hours and this message has 3: it goes in parts/);
  const wait = Date.parse(entry.nextAttemptAt) - Date.now();
  assert.ok(wait > 23 * 3600_000 && wait <= 24 * 3600_000, `the rest when the window allows (${wait} ms)`);
  assert.deepEqual(entry.recipients.filter((r) => r.state === 'delivered').map((r) => r.address), [BOB, CAROL]);
});
