import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { sandbox, https, appToken, userToken, RawClient, xoauth2 } from '../helpers/sandbox.js';
import type { Sandbox } from '../../src/sandbox/index.js';

const ALICE = 'alice@contoso.onmicrosoft.com';
const BOB = 'bob@contoso.onmicrosoft.com';
let sb: Sandbox;
let ca: string;
before(async () => {
  sb = await sandbox();
  ca = readFileSync(sb.caFile, 'utf8');
});
after(() => sb.stop());

test('POP3 over TLS: greeting, AUTH XOAUTH2 two-step, STAT/LIST/UIDL/RETR/DELE/QUIT', async () => {
  sb.mail.append(ALICE, 'Subject: one\r\n\r\n.starts with a dot\r\n');
  sb.mail.append(ALICE, 'Subject: two\r\n\r\nsecond\r\n');
  const { access_token } = await userToken(sb, ALICE, 'alice-Passw0rd!', 'https://outlook.office.com/POP.AccessAsUser.All');
  const c = await RawClient.connect(sb.endpoints.pop3.port, { tls: true, ca });
  const greeting = await c.line();
  assert.equal(greeting, `+OK The Microsoft Exchange POP3 service is ready. [${Buffer.from('SN2PR00CA0018.namprd00.prod.outlook.com', 'utf16le').toString('base64')}]`);
  c.send('AUTH XOAUTH2');
  assert.equal(await c.line(), '+ ');
  c.send(xoauth2(ALICE, access_token));
  assert.equal(await c.line(), '+OK User successfully authenticated.');
  c.send('STAT');
  assert.match(await c.line(), /^\+OK 2 \d+$/);
  c.send('UIDL');
  assert.deepEqual(await c.until(/^\.$/), ['+OK', '1 1', '2 2', '.']);
  c.send('RETR 1');
  const lines = await c.until(/^\.$/);
  assert.deepEqual(lines, ['+OK', 'Subject: one', '', '..starts with a dot', '.']);
  c.send('DELE 1');
  assert.equal(await c.line(), '+OK');
  c.send('QUIT');
  assert.match(await c.line(), /^\+OK/);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(sb.mail.mailbox(ALICE).messages.length, 1, 'deleted at QUIT');
});

test('POP3 STLS and the failure line for a token without access', async () => {
  const daemonNoSp = await appToken(sb, 'https://outlook.office365.com/.default', '11111111-0000-4000-8000-000000000006', 'sandbox-nosp-secret');
  const c = await RawClient.connect(sb.endpoints.pop3Stls.port);
  await c.line();
  c.send('CAPA');
  assert.ok((await c.until(/^\.$/)).includes('STLS'));
  c.send('STLS');
  assert.match(await c.line(), /^\+OK/);
  await c.starttls(ca);
  c.send(`AUTH XOAUTH2 ${xoauth2(ALICE, daemonNoSp)}`);
  assert.equal(await c.line(), '-ERR Authentication failure: unknown user name or bad password.');
  const daemon = await appToken(sb);
  c.send(`AUTH XOAUTH2 ${xoauth2('info@contoso.onmicrosoft.com', daemon)}`);
  assert.equal(await c.line(), '+OK User successfully authenticated.');
  c.close();
});

test('Graph sendMail: MIME and JSON bodies → 202; errors of fact sheet §6.6', async () => {
  const graphApp = await appToken(sb, 'https://graph.microsoft.com/.default');
  const mime = Buffer.from(`From: ${ALICE}\r\nTo: ${BOB}\r\nSubject: via graph\r\nMessage-ID: <graph-1@contoso>\r\n\r\nhello\r\n`).toString('base64');
  const url = `${sb.endpoints.graph}/v1.0/users/${ALICE}/sendMail`;
  const ok = await https(sb, url, { body: mime, headers: { authorization: `Bearer ${graphApp}`, 'content-type': 'text/plain' } });
  assert.equal(ok.status, 202);
  assert.equal(ok.text, '');
  assert.ok(sb.mail.outbound().some((r) => r.via === 'graph' && r.messageId === 'graph-1@contoso'));
  const json = await https(sb, url, { json: { message: { subject: 'Meet for lunch?', body: { contentType: 'Text', content: 'The new cafeteria is open.' }, toRecipients: [{ emailAddress: { address: BOB } }] }, saveToSentItems: 'false' }, headers: { authorization: `Bearer ${graphApp}` } });
  assert.equal(json.status, 202);

  const badB64 = await https(sb, url, { body: '!!!not base64', headers: { authorization: `Bearer ${graphApp}`, 'content-type': 'text/plain' } });
  assert.equal(badB64.status, 400);
  assert.deepEqual(badB64.json.error.code, 'ErrorMimeContentInvalidBase64String');
  const outlookToken = await appToken(sb);
  const wrongAud = await https(sb, url, { body: mime, headers: { authorization: `Bearer ${outlookToken}`, 'content-type': 'text/plain' } });
  assert.equal(wrongAud.status, 401);
  assert.equal(wrongAud.json.error.code, 'InvalidAuthenticationToken');
  const big = await https(sb, url, { body: 'A'.repeat(4 * 1024 * 1024 + 8), headers: { authorization: `Bearer ${graphApp}`, 'content-type': 'text/plain' } });
  assert.equal(big.status, 400);
  assert.equal(big.json.error.message, 'The maximum request length supported is 4MB.');
  sb.faults.add({ stage: 'graph.sendMail', action: { kind: 'http', status: 429, retryAfter: 3 } });
  const throttled = await https(sb, url, { body: mime, headers: { authorization: `Bearer ${graphApp}`, 'content-type': 'text/plain' } });
  assert.equal(throttled.status, 429);
  assert.equal(throttled.headers['retry-after'], '3');
  assert.equal(throttled.json.error.code, 'TooManyRequests');
  const delegated = await userToken(sb, ALICE, 'alice-Passw0rd!', 'https://graph.microsoft.com/Mail.Send');
  const sendAs = await https(sb, `${sb.endpoints.graph}/v1.0/me/sendMail`, { body: Buffer.from(`From: info@contoso.onmicrosoft.com\r\nTo: ${BOB}\r\n\r\nx\r\n`).toString('base64'), headers: { authorization: `Bearer ${delegated.access_token}`, 'content-type': 'text/plain' } });
  assert.equal(sendAs.status, 403);
  assert.equal(sendAs.json.error.code, 'ErrorSendAsDenied');
});
