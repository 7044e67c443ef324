/**
 * RFC 3461 DSN parameters end to end: a client gives RET/ENVID and NOTIFY/ORCPT, the queue keeps
 * them, the next hop (a smarthost: a small smtp-server that records what it is given) receives
 * them, and the relay's own DSNs honour NOTIFY and carry Original-Envelope-Id/Original-Recipient.
 */
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { tempDir } from '../helpers/cli.js';
import { sandboxWithAccount } from '../helpers/accounts.js';
import { relayYaml, say, smtpSession } from '../helpers/relay.js';
import { RelayService } from '../../src/relay/index.js';
import { parseConfigText } from '../../src/config/index.js';
import { createLogger } from '../../src/core/log.js';
import type { QueueEntry } from '../../src/queue/index.js';

const ALICE = 'alice@contoso.onmicrosoft.com';
const fixture = sandboxWithAccount(ALICE, 'alice-Passw0rd!');

interface Received {
  ret: string | null | undefined;
  envid: string | null | undefined;
  rcpts: Array<{ address: string; notify?: string[]; orcpt?: string }>;
  body: string;
}

/** The next hop: accepts everything except recipients starting with "nobody", and records the DSN parameters. */
let hop: { server: SMTPServer; port: number; received: Received[] };

before(async () => {
  const received: Received[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    hideDSN: false,
    logger: false,
    onRcptTo(address, _session, cb) {
      if (address.address.startsWith('nobody')) return cb(Object.assign(new Error('5.1.1 No such user'), { responseCode: 550 }));
      cb();
    },
    onData(stream, session, cb) {
      const parts: Buffer[] = [];
      stream.on('data', (c: Buffer) => parts.push(c));
      stream.on('end', () => {
        received.push({ ret: session.envelope.dsn?.ret, envid: session.envelope.dsn?.envid, rcpts: session.envelope.rcptTo.map((r) => ({ address: r.address, ...r.dsn })), body: Buffer.concat(parts).toString() });
        cb();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  hop = { server, port: (server.server.address() as AddressInfo).port, received };
});
after(() => new Promise<void>((resolve) => hop.server.close(() => resolve())));

async function startRelay(t: TestContext): Promise<RelayService> {
  const dir = tempDir();
  const routes = `  routes:\n    hop: { type: smarthost, host: 127.0.0.1, port: ${hop.port}, security: none }\n  rules:\n    - { recipient_domain: fabrikam.test, route: hop }`;
  const yaml = relayYaml(fixture.sb, { relay: routes, delivery: '  messages_per_minute_per_account: 100000' }).replace('web:\n  port: 0', `queue:\n  dir: ${join(dir, 'queue')}\nweb:\n  enabled: false`);
  const relay = await RelayService.start({ config: parseConfigText(yaml, 'dsn.yaml').config, stateDir: fixture.state, log: createLogger({ level: 'silent' }) });
  t.after(() => relay.stop());
  return relay;
}

/** One message with DSN parameters on MAIL FROM and on each RCPT TO. */
async function send(port: number, id: string, mailParams: string, rcpts: Array<[string, string]>, body = 'body'): Promise<void> {
  const c = await smtpSession(port);
  assert.match(await say(c, `MAIL FROM:<${ALICE}> ${mailParams}`), /^250/);
  for (const [rcpt, params] of rcpts) assert.match(await say(c, `RCPT TO:<${rcpt}> ${params}`), /^250/);
  assert.match(await say(c, 'DATA'), /^354/);
  c.socket.write(`From: ${ALICE}\r\nSubject: ${id}\r\nMessage-ID: <${id}>\r\n\r\n${body}\r\n.\r\n`);
  assert.match((await c.smtpReply(10_000)).join('\n'), /^250/);
  await say(c, 'QUIT');
}

async function finished(relay: RelayService, id: string): Promise<QueueEntry> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const e = (await relay.queue.list({ search: id }))[0];
    if (e && (e.state === 'done' || e.state === 'bounced')) return (await relay.queue.get(e.id))!;
    if (Date.now() > deadline) throw new Error(`${id}: ${JSON.stringify(e)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('RET/ENVID and NOTIFY/ORCPT are stored with the entry and passed on to the next hop, per recipient', async (t) => {
  const relay = await startRelay(t);
  await send(relay.smtpPort, 'params@dsn.test', 'RET=HDRS ENVID=QQ+2B314159', [
    ['bob@fabrikam.test', 'NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob+2BTag@Fabrikam.test'],
    ['carol@fabrikam.test', 'NOTIFY=NEVER'],
    ['dave@fabrikam.test', ''],
  ]);
  const entry = await finished(relay, 'params@dsn.test');
  assert.equal(entry.state, 'done');
  assert.deepEqual(entry.dsn, { ret: 'HDRS', envid: 'QQ+314159' }, 'stored xtext-decoded');
  assert.deepEqual(entry.recipients, [
    { address: 'bob@fabrikam.test', state: 'delivered', notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;Bob+Tag@Fabrikam.test' },
    { address: 'carol@fabrikam.test', state: 'delivered', notify: ['NEVER'] },
    { address: 'dave@fabrikam.test', state: 'delivered' },
  ]);
  const got = hop.received.find((r) => r.body.includes('Message-ID: <params@dsn.test>'));
  assert.ok(got, 'the next hop received the message');
  assert.equal(got.ret, 'HDRS');
  // smtp-server decodes xtext: an ENVID sent without encoding its "+" would arrive as "QQ14159".
  assert.equal(got.envid, 'QQ+314159', 'xtext-encoded again on the wire');
  assert.deepEqual(got.rcpts, [
    { address: 'bob@fabrikam.test', notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;Bob+Tag@Fabrikam.test' },
    { address: 'carol@fabrikam.test', notify: ['NEVER'] },
    { address: 'dave@fabrikam.test' },
  ]);
});

test('a failure DSN carries Original-Envelope-Id and Original-Recipient; NOTIFY=NEVER recipients are left out; RET=FULL returns the message', async (t) => {
  const relay = await startRelay(t);
  await send(
    relay.smtpPort,
    'fail@dsn.test',
    'RET=FULL ENVID=env-42',
    [
      ['nobody@fabrikam.test', 'NOTIFY=FAILURE ORCPT=rfc822;nobody@fabrikam.test'],
      ['nobody-silent@fabrikam.test', 'NOTIFY=NEVER'],
    ],
    'THE-ORIGINAL-BODY',
  );
  const dsn = await fixture.sb.mail.waitForOutbound((m) => m.to.includes(ALICE) && m.raw.toString().includes('X-Postfix-Queue-ID') && m.raw.toString().includes('fail@dsn.test'), 15_000);
  const text = dsn.raw.toString();
  assert.match(text, /Original-Envelope-Id: env-42\r\n/);
  assert.match(text, /Original-Recipient: rfc822;nobody@fabrikam\.test\r\nFinal-Recipient: rfc822; nobody@fabrikam\.test\r\nAction: failed/);
  assert.doesNotMatch(text, /nobody-silent/, 'NOTIFY=NEVER: not reported');
  assert.match(text, /Content-Type: message\/rfc822\r\n\r\n[\s\S]*THE-ORIGINAL-BODY/, 'RET=FULL: the whole (small) message');
});

test('NOTIFY=NEVER on every recipient: the message bounces and no DSN is sent', async (t) => {
  const relay = await startRelay(t);
  await send(relay.smtpPort, 'never@dsn.test', '', [['nobody@fabrikam.test', 'NOTIFY=NEVER']]);
  const entry = await finished(relay, 'never@dsn.test');
  assert.equal(entry.state, 'bounced');
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(fixture.sb.mail.outbound().filter((m) => m.raw.toString().includes('never@dsn.test')).length, 0, 'no DSN');
  assert.equal((await relay.queue.list()).filter((e) => e.sender === '').length, 0, 'none queued');
});
