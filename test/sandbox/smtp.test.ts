import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);
import { sandbox, https, appToken, userToken, RawClient, smtpAuthenticated, xoauth2 } from '../helpers/sandbox.js';
import { tempDir } from '../helpers/cli.js';
import type { Sandbox } from '../../src/sandbox/index.js';

const ALICE = 'alice@contoso.onmicrosoft.com';
const BOB = 'bob@contoso.onmicrosoft.com';
const HOST_BRACKET = /\[SN2PR00CA0018\.namprd00\.prod\.outlook\.com \d{4}-\d\d-\d\dT[\d:.]+Z [0-9A-F]{16}\]$/;

let sb: Sandbox;
let ca: string;
before(async () => {
  sb = await sandbox({ limits: { recipientsPerMessage: 3, recipientsPerDay: 5, sendAsReply: '5.2.252' } });
  ca = readFileSync(sb.caFile, 'utf8');
});
after(() => sb.stop());

test('greeting and EHLO literally as Exchange Online; AUTH only after STARTTLS', async () => {
  const c = await RawClient.connect(sb.endpoints.smtp.port);
  const greeting = await c.smtpReply();
  assert.match(greeting[0]!, /^220 SN2PR00CA0018\.namprd00\.prod\.outlook\.com Microsoft ESMTP MAIL Service ready at \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d \+0000$/);
  const ehlo = await c.cmd('EHLO client.example.org');
  assert.deepEqual(ehlo, [
    '250-SN2PR00CA0018.namprd00.prod.outlook.com Hello [127.0.0.1]',
    '250-SIZE 157286400',
    '250-PIPELINING',
    '250-DSN',
    '250-ENHANCEDSTATUSCODES',
    '250-STARTTLS',
    '250-8BITMIME',
    '250 SMTPUTF8',
  ]);
  assert.deepEqual(await c.cmd('AUTH XOAUTH2'), ['504 5.7.4 Unrecognized authentication type']);
  assert.match((await c.cmd('MAIL FROM:<a@b.c>'))[0]!, /^530 5\.7\.57 Client not authenticated to send mail\. \[/);
  assert.deepEqual(await c.cmd('STARTTLS'), ['220 2.0.0 SMTP server ready']);
  await c.starttls(ca);
  const after = await c.cmd('EHLO client.example.org');
  assert.ok(after.includes('250-AUTH LOGIN XOAUTH2'));
  assert.ok(!after.some((l) => l.includes('STARTTLS')));
  c.close();
});

test('AUTH XOAUTH2 two-step with "334 " and a full submission with Exchange texts', async () => {
  const { access_token } = await userToken(sb, ALICE, 'alice-Passw0rd!');
  const c = await RawClient.connect(sb.endpoints.smtp.port);
  await c.smtpReply();
  await c.cmd('EHLO x');
  await c.cmd('STARTTLS');
  await c.starttls(ca);
  await c.cmd('EHLO x');
  c.send('AUTH XOAUTH2');
  assert.equal(await c.line(), '334 ');
  assert.deepEqual(await c.cmd(xoauth2(ALICE, access_token)), ['235 2.7.0 Authentication successful']);
  assert.deepEqual(await c.cmd(`MAIL FROM:<${ALICE}>`), ['250 2.1.0 Sender OK']);
  assert.deepEqual(await c.cmd(`RCPT TO:<${BOB}>`), ['250 2.1.5 Recipient OK']);
  assert.deepEqual(await c.cmd('DATA'), ['354 Start mail input; end with <CRLF>.<CRLF>']);
  c.send(`From: ${ALICE}\r\nTo: ${BOB}\r\nSubject: two-step\r\nMessage-ID: <two-step@contoso>\r\n\r\n..dot-stuffed line\r\n.`);
  assert.deepEqual(await c.smtpReply(), ['250 2.0.0 OK <two-step@contoso> [Hostname=SN2PR00CA0018.namprd00.prod.outlook.com]']);
  assert.deepEqual(await c.cmd('QUIT'), ['221 2.0.0 Service closing transmission channel']);
  const box = sb.mail.mailbox(BOB).messages;
  assert.match(box.at(-1)!.raw.toString(), /\r\n\.dot-stuffed line\r\n$/);
});

test('535 5.7.3 for a bad token, a Graph-audience token and user= another mailbox', async () => {
  const { access_token } = await userToken(sb, ALICE, 'alice-Passw0rd!');
  const graph = await userToken(sb, ALICE, 'alice-Passw0rd!', 'SMTP.Send');
  for (const [user, token] of [[ALICE, 'not-a-token'], [ALICE, graph.access_token], [BOB, access_token]] as const) {
    const { client, auth } = await smtpAuthenticated(sb, user, token);
    assert.match(auth[0]!, /^535 5\.7\.3 Authentication unsuccessful /);
    assert.match(auth[0]!, HOST_BRACKET);
    client.close();
  }
});

test('535 5.7.139 when SMTP AUTH is disabled for the mailbox or the tenant', async () => {
  const carol = await userToken(sb, 'carol@contoso.onmicrosoft.com', 'carol-Passw0rd!');
  const m = await smtpAuthenticated(sb, 'carol@contoso.onmicrosoft.com', carol.access_token);
  assert.match(m.auth[0]!, /^535 5\.7\.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox\. Visit https:\/\/aka\.ms\/smtp_auth_disabled for more information\. \[/);
  m.client.close();
  await https(sb, `${sb.endpoints.admin}/tenants/contoso.onmicrosoft.com`, { json: { smtpAuthDisabled: true } });
  try {
    const { access_token } = await userToken(sb, ALICE, 'alice-Passw0rd!');
    const t = await smtpAuthenticated(sb, ALICE, access_token);
    assert.match(t.auth[0]!, /^535 5\.7\.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant\./);
    t.client.close();
  } finally {
    await https(sb, `${sb.endpoints.admin}/tenants/contoso.onmicrosoft.com`, { json: { smtpAuthDisabled: false } });
  }
});

test('SendAs: 554 5.2.252 without the right; allowed with a SendAs grant', async () => {
  const { access_token } = await userToken(sb, ALICE, 'alice-Passw0rd!');
  const { client } = await smtpAuthenticated(sb, ALICE, access_token);
  await client.cmd('MAIL FROM:<info@contoso.onmicrosoft.com>');
  await client.cmd(`RCPT TO:<${BOB}>`);
  await client.cmd('DATA');
  client.send('From: info@contoso.onmicrosoft.com\r\nSubject: x\r\n\r\nbody\r\n.');
  const reply = await client.smtpReply();
  assert.match(reply[0]!, /^554 5\.2\.252 SendAsDenied; alice@contoso\.onmicrosoft\.com not allowed to send as info@contoso\.onmicrosoft\.com; STOREDRV\.Submission\.Exception:SendAsDeniedException/);
  client.close();
  const bob = await userToken(sb, BOB, 'bob-Passw0rd!');
  const b = await smtpAuthenticated(sb, BOB, bob.access_token);
  await b.client.cmd('MAIL FROM:<info@contoso.onmicrosoft.com>');
  await b.client.cmd(`RCPT TO:<${ALICE}>`);
  await b.client.cmd('DATA');
  b.client.send('From: info@contoso.onmicrosoft.com\r\nSubject: x\r\n\r\nbody\r\n.');
  assert.match((await b.client.smtpReply())[0]!, /^250 2\.0\.0 OK </);
  b.client.close();
});

test('app-only: no service principal → 535 5.7.3; SP without FullAccess → 430 4.2.0 at end of DATA', async () => {
  const nosp = await appToken(sb, 'https://outlook.office365.com/.default', '11111111-0000-4000-8000-000000000006', 'sandbox-nosp-secret');
  const a = await smtpAuthenticated(sb, ALICE, nosp);
  assert.match(a.auth[0]!, /^535 5\.7\.3 /);
  a.client.close();
  const daemon = await appToken(sb);
  const b = await smtpAuthenticated(sb, BOB, daemon);
  assert.deepEqual(b.auth, ['235 2.7.0 Authentication successful']);
  await b.client.cmd(`MAIL FROM:<${BOB}>`);
  await b.client.cmd(`RCPT TO:<${ALICE}>`);
  await b.client.cmd('DATA');
  b.client.send(`From: ${BOB}\r\n\r\nx\r\n.`);
  assert.match((await b.client.smtpReply())[0]!, /^430 4\.2\.0 STOREDRV; mailbox logon failure; .*MapiExceptionLogonFailed.*Cannot open mailbox\./);
  b.client.close();
});

test('limits: 452 4.5.3 too many recipients, 554 5.2.0 daily quota, 432 4.3.2 on the 4th connection', async () => {
  const daemon = await appToken(sb);
  const { client } = await smtpAuthenticated(sb, 'info@contoso.onmicrosoft.com', daemon);
  await client.cmd('MAIL FROM:<info@contoso.onmicrosoft.com>');
  for (let i = 0; i < 3; i++) assert.deepEqual(await client.cmd(`RCPT TO:<r${i}@example.net>`), ['250 2.1.5 Recipient OK']);
  assert.deepEqual(await client.cmd('RCPT TO:<r3@example.net>'), ['452 4.5.3 Too many recipients']);
  await client.cmd('DATA');
  client.send('From: info@contoso.onmicrosoft.com\r\n\r\nx\r\n.');
  assert.match((await client.smtpReply())[0]!, /^250 /);
  await client.cmd('MAIL FROM:<info@contoso.onmicrosoft.com>');
  for (let i = 0; i < 3; i++) await client.cmd(`RCPT TO:<q${i}@example.net>`);
  await client.cmd('DATA');
  client.send('From: info@contoso.onmicrosoft.com\r\n\r\nx\r\n.');
  assert.match((await client.smtpReply())[0]!, /^554 5\.2\.0 STOREDRV\.Submission\.Exception:SubmissionQuotaExceededException; /);
  const conns = [client];
  for (let i = 0; i < 2; i++) conns.push((await smtpAuthenticated(sb, 'info@contoso.onmicrosoft.com', daemon)).client);
  const fourth = await smtpAuthenticated(sb, 'info@contoso.onmicrosoft.com', daemon);
  assert.match(fourth.auth[0]!, /^432 4\.3\.2 Concurrent connections limit exceeded\. Visit https:\/\/aka\.ms\/concurrent_sending/);
  for (const c of [...conns, fourth.client]) c.close();
});

test('OAUTHBEARER: success, and the RFC 7628 error challenge answered with ^A', async () => {
  const { access_token } = await userToken(sb, ALICE, 'alice-Passw0rd!');
  const bearer = (token: string) => Buffer.from(`n,a=${ALICE},\x01host=localhost\x01port=587\x01auth=Bearer ${token}\x01\x01`).toString('base64');
  const c = await RawClient.connect(sb.endpoints.smtp.port);
  await c.smtpReply();
  await c.cmd('EHLO x');
  await c.cmd('STARTTLS');
  await c.starttls(ca);
  await c.cmd('EHLO x');
  const challenge = await c.cmd(`AUTH OAUTHBEARER ${bearer('garbage.token.value')}`);
  assert.match(challenge[0]!, /^334 /);
  assert.equal(JSON.parse(Buffer.from(challenge[0]!.slice(4), 'base64').toString()).status, 'invalid_token');
  assert.match((await c.cmd('AQ=='))[0]!, /^535 5\.7\.3 /);
  assert.deepEqual(await c.cmd(`AUTH OAUTHBEARER ${bearer(access_token)}`), ['235 2.7.0 Authentication successful']);
  c.close();
});

test('HVE: 501 5.5.127 for a token with less than 10 minutes left', async () => {
  const short = await sandbox({ tokenLifetimeSeconds: 300 });
  try {
    const daemon = await appToken(short);
    const r = await smtpAuthenticated(short, ALICE, daemon, short.endpoints.smtpHve.port);
    assert.deepEqual(r.auth, ['501 5.5.127 Invalid XOAUTH2 auth data - Token will expire soon']);
    r.client.close();
    const bad = await smtpAuthenticated(short, ALICE, 'x', short.endpoints.smtpHve.port);
    assert.deepEqual(bad.auth, ['501 5.5.124 Invalid XOAUTH2 auth data']);
    bad.client.close();
  } finally {
    await short.stop();
  }
});

test('fault injection: 451 at RCPT, dropped connection at DATA end', async () => {
  const { access_token } = await userToken(sb, ALICE, 'alice-Passw0rd!');
  sb.faults.add({ stage: 'smtp.rcpt', action: { kind: 'reply', reply: '451 4.7.500 Server busy. Please try again later.' } });
  const { client } = await smtpAuthenticated(sb, ALICE, access_token);
  await client.cmd(`MAIL FROM:<${ALICE}>`);
  assert.deepEqual(await client.cmd(`RCPT TO:<${BOB}>`), ['451 4.7.500 Server busy. Please try again later.']);
  assert.deepEqual(await client.cmd(`RCPT TO:<${BOB}>`), ['250 2.1.5 Recipient OK']);
  sb.faults.add({ stage: 'smtp.dataEnd', action: { kind: 'drop' } });
  await client.cmd('DATA');
  client.send('Subject: x\r\n\r\nx\r\n.');
  await assert.rejects(client.smtpReply(), /connection closed/);
});

test('executable example: a token fetched with curl, a message sent with Python smtplib, found in the mailbox', async () => {
  const dir = tempDir();
  const curl = await run('curl', ['-s', '--cacert', sb.caFile, '-d', 'client_id=11111111-0000-4000-8000-000000000003', '-d', 'client_secret=sandbox-daemon-secret', '-d', 'grant_type=client_credentials', '--data-urlencode', 'scope=https://outlook.office365.com/.default', `${sb.endpoints.authorityHost}/contoso.onmicrosoft.com/oauth2/v2.0/token`], { encoding: 'utf8', timeout: 20_000 });
  const token = JSON.parse(curl.stdout).access_token as string;
  const script = join(dir, 'send.py');
  writeFileSync(
    script,
    `import smtplib, ssl, sys
user, token, port, ca = sys.argv[1:5]
s = smtplib.SMTP('127.0.0.1', int(port))
s.starttls(context=ssl.create_default_context(cafile=ca))
s.ehlo()
s.auth('XOAUTH2', lambda challenge=None: f"user={user}\\x01auth=Bearer {token}\\x01\\x01", initial_response_ok=True)
s.sendmail(user, ['bob@contoso.onmicrosoft.com'], f"From: {user}\\r\\nTo: bob@contoso.onmicrosoft.com\\r\\nSubject: via smtplib\\r\\nMessage-ID: <smtplib-example@contoso>\\r\\n\\r\\nhello from python\\r\\n")
s.quit()
`,
  );
  await run('python3', [script, ALICE, token, String(sb.endpoints.smtp.port), sb.caFile], { encoding: 'utf8', timeout: 20_000 });
  const rec = await sb.mail.waitForOutbound((r) => r.messageId === 'smtplib-example@contoso');
  assert.equal(rec.identity, 'app:11111111-0000-4000-8000-000000000003');
  assert.ok(sb.mail.mailbox(BOB).messages.some((m) => m.raw.toString().includes('hello from python')));
});
