/**
 * The relay's listeners and limits: TLS listeners driven by Python's smtplib (a client we did not
 * write), EHLO extensions, per-client connection and message rates, size and recipient limits,
 * the daily recipient budget per account, and optional delay notices.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RawClient } from '../helpers/sandbox.js';
import { tempDir } from '../helpers/cli.js';
import { sandboxWithAccount } from '../helpers/accounts.js';
import { deferredWith, relayYaml, say, smtpSession as session, submitMessage } from '../helpers/relay.js';
import { RelayService } from '../../src/relay/index.js';
import { parseConfigText } from '../../src/config/index.js';
import { createCertificate } from '../../src/sandbox/ca.js';
import { createLogger } from '../../src/core/log.js';

const run = promisify(execFile);
const ALICE = 'alice@contoso.onmicrosoft.com';
const BOB = 'bob@contoso.onmicrosoft.com';
const CAROL = 'carol@contoso.onmicrosoft.com';

const fixture = sandboxWithAccount(ALICE, 'alice-Passw0rd!');

/** A relay for one test, stopped when the test ends: Exchange (and the sandbox) allow only 3 connections per mailbox, and an idle relay keeps its pooled ones. */
async function startRelay(t: TestContext, extra: { relay?: string; delivery?: string }, dir = tempDir()): Promise<RelayService> {
  // Every relay shares the account store but has its own queue.
  const yaml = relayYaml(fixture.sb, { relay: extra.relay, delivery: `${extra.delivery ?? ''}\n  messages_per_minute_per_account: 100000` }).replace('web:\n  port: 0', `queue:\n  dir: ${join(dir, 'queue')}\nweb:\n  enabled: false`);
  const relay = await RelayService.start({ config: parseConfigText(yaml, 'limits.yaml').config, stateDir: fixture.state, log: createLogger({ level: 'silent' }) });
  t.after(() => relay.stop());
  return relay;
}

/** One message from Alice in its own session, accepted with 250. */
const submit = (port: number, id: string, rcpts: string[] = [BOB]) => submitMessage(port, ALICE, id, rcpts);

test('STARTTLS and implicit-TLS listeners: smtplib verifies the certificate, then relays', async (t) => {
  const dir = tempDir();
  const ca = createCertificate({ commonName: 'relay365 test CA', isCa: true });
  const server = createCertificate({ commonName: 'localhost', altNames: [{ dns: 'localhost' }, { ip: '127.0.0.1' }], issuer: ca });
  writeFileSync(join(dir, 'ca.pem'), ca.certPem);
  writeFileSync(join(dir, 'cert.pem'), server.certPem);
  writeFileSync(join(dir, 'key.pem'), server.keyPem, { mode: 0o600 });
  const tlsRelay = await RelayService.start({
    config: parseConfigText(
      relayYaml(fixture.sb, { delivery: '  messages_per_minute_per_account: 100000' })
        .replace('  listen: [{ address: 127.0.0.1, port: 0 }]', `  listen:\n    - { address: 127.0.0.1, port: 0, tls: starttls, cert_file: ${dir}/cert.pem, key_file: ${dir}/key.pem }\n    - { address: 127.0.0.1, port: 0, tls: implicit, cert_file: ${dir}/cert.pem, key_file: ${dir}/key.pem }`)
        .replace('web:\n  port: 0', `queue:\n  dir: ${dir}/queue\nweb:\n  enabled: false`),
      'tls.yaml',
    ).config,
    stateDir: fixture.state,
    log: createLogger({ level: 'silent' }),
  });
  t.after(() => tlsRelay.stop());
  const [starttls, implicit] = tlsRelay.inbound.bound;
  assert.equal(starttls!.tls, 'starttls');
  assert.equal(implicit!.tls, 'implicit');
  const script = `
import smtplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
ctx.check_hostname = True
msg = "From: ${ALICE}\\r\\nTo: ${BOB}\\r\\nSubject: tls\\r\\nMessage-ID: <{}>\\r\\n\\r\\nover TLS\\r\\n"
s = smtplib.SMTP('localhost', int(sys.argv[2]), timeout=20)
s.ehlo()
assert s.has_extn('starttls'), 'STARTTLS offered'
s.starttls(context=ctx)
s.ehlo()
print(s.sock.version(), s.sendmail('${ALICE}', ['${BOB}'], msg.format('starttls@tls.test')) or 'ok')
s.quit()
s = smtplib.SMTP_SSL('localhost', int(sys.argv[3]), context=ctx, timeout=20)
s.ehlo()
print(s.sock.version(), s.sendmail('${ALICE}', ['${BOB}'], msg.format('implicit@tls.test')) or 'ok')
s.quit()
`;
  const { stdout } = await run('python3', ['-c', script, join(dir, 'ca.pem'), String(starttls!.port), String(implicit!.port)], { timeout: 60_000 });
  assert.match(stdout, /^TLSv1\.[23] ok\nTLSv1\.[23] ok\n$/);
  for (const id of ['starttls@tls.test', 'implicit@tls.test']) {
    const r = await fixture.sb.mail.waitForOutbound((m) => m.messageId === id, 15_000);
    assert.match(r.raw.toString(), /with ESMTPS/, 'the Received header records the TLS session');
  }
});

test('EHLO advertises PIPELINING, 8BITMIME, SMTPUTF8, SIZE, ENHANCEDSTATUSCODES and DSN; size and recipient limits', async (t) => {
  const relay = await startRelay(t, { relay: '  max_message_size: 2048\n  max_recipients: 2' });
  const c = await RawClient.connect(relay.smtpPort);
  await c.smtpReply();
  const ehlo = await say(c, 'EHLO client.test');
  for (const ext of ['PIPELINING', '8BITMIME', 'SMTPUTF8', 'SIZE 2048', 'ENHANCEDSTATUSCODES', 'DSN']) assert.match(ehlo, new RegExp(`^250[ -]${ext}$`, 'm'), ext);
  assert.match(await say(c, `MAIL FROM:<${ALICE}> SIZE=4096`), /^552 5\.3\.4 /);
  assert.match(await say(c, `MAIL FROM:<${ALICE}>`), /^250/);
  assert.match(await say(c, `RCPT TO:<${BOB}>`), /^250/);
  assert.match(await say(c, `RCPT TO:<${CAROL}>`), /^250/);
  assert.match(await say(c, 'RCPT TO:<info@contoso.onmicrosoft.com>'), /^452 4\.5\.3 /);
  assert.match(await say(c, 'DATA'), /^354/);
  c.socket.write(`Subject: big\r\n\r\n${'x'.repeat(76)}\r\n`.repeat(40) + '.\r\n');
  assert.match((await c.smtpReply(10_000)).join('\n'), /^552 5\.3\.4 /);
  assert.deepEqual(await relay.queue.list(), [], 'nothing queued');
  c.socket.destroy();
});

test('a reload changes the size limit, the idle timeout and the queue lifetime for what comes next (smtp-server and the queue alike)', async (t) => {
  const dir = tempDir();
  const yamlWith = (size: number, timeout: number, lifetime = 86_400) =>
    relayYaml(fixture.sb, { relay: `  max_message_size: ${size}\n  socket_timeout_seconds: ${timeout}`, delivery: `  messages_per_minute_per_account: 100000\n  max_lifetime_seconds: ${lifetime}` }).replace('web:\n  port: 0', `queue:\n  dir: ${join(dir, 'queue')}\nweb:\n  enabled: false`);
  const relay = await RelayService.start({ config: parseConfigText(yamlWith(2048, 300), 'size.yaml').config, stateDir: fixture.state, log: createLogger({ level: 'silent' }) });
  t.after(() => relay.stop());
  const body = `Subject: 5 KB\r\n\r\n${'x'.repeat(76)}\r\n`.repeat(64);
  const send = async () => {
    const c = await session(relay.smtpPort);
    assert.match(await say(c, `MAIL FROM:<${ALICE}>`), /^250/);
    assert.match(await say(c, `RCPT TO:<${BOB}>`), /^250/);
    assert.match(await say(c, 'DATA'), /^354/);
    c.socket.write(`${body}.\r\n`);
    const reply = (await c.smtpReply(10_000)).join('\n');
    c.socket.destroy();
    return reply;
  };
  assert.match(await send(), /^552 5\.3\.4 /);
  relay.reload(parseConfigText(yamlWith(10_000, 1, 7_200), 'size.yaml').config);
  // The inbound thread gets the new configuration as a message: the next session may still be early.
  const deadline = Date.now() + 5_000;
  let ehlo = '';
  while (!/^250[ -]SIZE 10000$/m.test(ehlo) && Date.now() < deadline) {
    const c = await RawClient.connect(relay.smtpPort);
    await c.smtpReply();
    ehlo = await say(c, 'EHLO client.test');
    c.socket.destroy();
  }
  assert.match(ehlo, /^250[ -]SIZE 10000$/m);
  const accepted = await send();
  assert.match(accepted, /^250 /, 'the larger limit holds in the queue too');
  const entry = (await relay.queue.get(/queued as (\w+)/.exec(accepted)![1]!))!;
  assert.equal(Date.parse(entry.expiresAt) - Date.parse(entry.createdAt), 7_200_000, 'queued with the new lifetime');
  const idle = await session(relay.smtpPort);
  const started = Date.now();
  assert.match((await idle.smtpReply(5_000)).join('\n'), /^421 /, 'an idle session is closed after the new timeout');
  assert.ok(Date.now() - started < 4_000);
});

test('per-client limits: concurrent connections → 421, messages per minute → 450, both temporary', async (t) => {
  const relay = await startRelay(t, { relay: '  max_connections_per_client: 2\n  max_messages_per_minute_per_client: 3' });
  const a = await session(relay.smtpPort);
  const b = await session(relay.smtpPort);
  const c = await RawClient.connect(relay.smtpPort);
  assert.match((await c.smtpReply()).join('\n'), /^421 4\.7\.0 Too many connections/);
  b.socket.destroy();
  await new Promise((r) => setTimeout(r, 200));
  const d = await session(relay.smtpPort);
  d.socket.destroy();
  for (let i = 0; i < 3; i++) {
    assert.match(await say(a, `MAIL FROM:<${ALICE}>`), /^250/, `message ${i + 1}`);
    assert.match(await say(a, 'RSET'), /^250/);
  }
  assert.match(await say(a, `MAIL FROM:<${ALICE}>`), /^450 4\.7\.1 Too many messages/);
  a.socket.destroy();
});

test('daily recipient budget per account: beyond it the account pauses instead of hitting Exchange', async (t) => {
  const relay = await startRelay(t, { delivery: '  recipients_per_day_per_account: 3' });
  await submit(relay.smtpPort, 'budget-1@test', [BOB, CAROL]);
  await fixture.sb.mail.waitForOutbound((m) => m.messageId === 'budget-1@test', 15_000);
  await submit(relay.smtpPort, 'budget-2@test', [BOB, CAROL]);
  const entry = await deferredWith(relay, 'budget-2@test', /452 4\.2\.0 Account alice@contoso\.onmicrosoft\.com is paused until .*3 recipients in 24 hours reached/);
  const wait = Date.parse(entry.nextAttemptAt) - Date.now();
  assert.ok(wait > 23 * 3600_000 && wait <= 24 * 3600_000, `held for the rest of the 24-hour window (${wait} ms)`);
  assert.equal(fixture.sb.mail.outbound().filter((m) => m.messageId === 'budget-2@test').length, 0, 'not sent upstream');
});

test('delay notices: one RFC 3464 "delayed" DSN while retries go on, then the message is delivered', async (t) => {
  const relay = await startRelay(t, { delivery: '  delay_notice_after_seconds: 1' });
  fixture.sb.faults.add({ stage: 'smtp.rcpt', action: { kind: 'reply', reply: '451 4.7.500 Server busy. Please try again later.' }, count: 3, match: 'carol@' });
  const c = await session(relay.smtpPort);
  assert.match(await say(c, `MAIL FROM:<${ALICE}>`), /^250/);
  assert.match(await say(c, `RCPT TO:<${CAROL}>`), /^250/);
  assert.match(await say(c, 'DATA'), /^354/);
  c.socket.write(`From: ${ALICE}\r\nTo: ${CAROL}\r\nSubject: slow\r\nMessage-ID: <delayed@test>\r\n\r\nbody\r\n.\r\n`);
  assert.match((await c.smtpReply(10_000)).join('\n'), /^250/);
  await say(c, 'QUIT');
  const delivered = await fixture.sb.mail.waitForOutbound((m) => m.messageId === 'delayed@test', 30_000).catch(async (e) => {
    throw new Error(`${e.message}: ${JSON.stringify(await relay.queue.list())} ${JSON.stringify(fixture.sb.faults.list())}`);
  });
  assert.ok(delivered);
  const notices = fixture.sb.mail.outbound().filter((m) => m.to.includes(ALICE) && /Action: delayed/.test(m.raw.toString()));
  assert.equal(notices.length, 1, 'exactly one delay notice');
  const text = notices[0]!.raw.toString();
  assert.match(text, /Subject: Delayed Mail \(still being retried\)/);
  assert.match(text, /Final-Recipient: rfc822; carol@contoso\.onmicrosoft\.com/);
  assert.match(text, /Status: 4\.7\.500/);
  const entry = (await relay.queue.list({ search: 'delayed@test' }))[0]!;
  const history = (await relay.queue.get(entry.id))!.history!;
  assert.equal(history.filter((a) => a.route === 'delay-notice').length, 1, 'the notice is in the attempt history');
});

test('a refused login pauses the account and flags it with the fix; the first success clears both', async (t) => {
  const relay = await startRelay(t, {});
  const tenant = fixture.sb.directory.tenant('contoso.onmicrosoft.com')!;
  tenant.smtpAuthDisabled = true;
  t.after(() => {
    tenant.smtpAuthDisabled = false;
  });
  await submit(relay.smtpPort, 'refused-1@test');
  await deferredWith(relay, 'refused-1@test', /535 5\.7\.139/);
  const flagged = (await relay.tokens.accounts()).find((a) => a.email === ALICE)!;
  assert.equal(flagged.state, 'valid', 'the token itself is fine');
  assert.match(flagged.lastError?.message ?? '', /5\.7\.139 .*disabled for the Tenant/);
  assert.match(flagged.fix ?? '', /Set-TransportConfig -SmtpClientAuthenticationDisabled \$false/);
  // While paused, the next message does not try to log in again.
  await submit(relay.smtpPort, 'refused-2@test');
  await deferredWith(relay, 'refused-2@test', /451 4\.7\.0 Account alice@contoso\.onmicrosoft\.com is paused until .* after the server refused its login: 535 5\.7\.139/);

  tenant.smtpAuthDisabled = false;
  for (const id of ['refused-1@test', 'refused-2@test']) await fixture.sb.mail.waitForOutbound((m) => m.messageId === id, 20_000);
  const deadline = Date.now() + 5_000;
  while ((await relay.tokens.accounts()).find((a) => a.email === ALICE)!.lastError && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.equal((await relay.tokens.accounts()).find((a) => a.email === ALICE)!.lastError, undefined, 'the flag is cleared by the first delivery');
});
