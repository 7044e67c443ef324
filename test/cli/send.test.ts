import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { simpleParser } from 'mailparser';
import { sandbox } from '../helpers/sandbox.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { addAccount } from '../helpers/accounts.js';
import type { Sandbox } from '../../src/sandbox/index.js';

const ALICE = 'alice@contoso.onmicrosoft.com';
const BOB = 'bob@contoso.onmicrosoft.com';
let sb: Sandbox;
let state: string;
before(async () => {
  sb = await sandbox();
  state = tempDir();
  await addAccount(sb, state, ALICE, { password: 'alice-Passw0rd!' });
});
after(() => sb.stop());

const smtpArgs = () => ['--host', '127.0.0.1', '--port', String(sb.endpoints.smtp.port), '--ca-file', sb.caFile];

test('ISO-2022-JP: a Japanese subject and body arrive intact and decode correctly', async () => {
  const subject = '月次レポート（テスト）';
  const body = 'お世話になっております。\n本文は ISO-2022-JP で送信されます。\n';
  const r = await runCli(['--state', state, 'send', '--from', ALICE, '--to', BOB, '--subject', subject, '--charset', 'iso-2022-jp', '--header', 'Message-ID: <jis-1@contoso>', '--json', ...smtpArgs()], { input: body });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).messageId, 'jis-1@contoso');
  const rec = await sb.mail.waitForOutbound((o) => o.messageId === 'jis-1@contoso');
  assert.match(rec.raw.toString('latin1'), /Content-Type: text\/plain; charset=ISO-2022-JP/);
  assert.ok(!/[\x80-\xff]/.test(rec.raw.toString('latin1')), 'the wire form is 7-bit');
  const parsed = await simpleParser(rec.raw);
  assert.equal(parsed.subject, subject);
  assert.equal(parsed.text?.replace(/\r\n/g, '\n').trimEnd(), body.trimEnd());
});

test('--debug prints the whole SMTP conversation and no token', async () => {
  const r = await runCli(['--state', state, 'send', '--from', ALICE, '--to', BOB, '--subject', 'debug', '--body', 'hello', '--debug', ...smtpArgs()]);
  assert.equal(r.code, 0, r.stderr);
  for (const step of [/EHLO/, /STARTTLS/, /AUTH XOAUTH2/, /235 2\.7\.0 Authentication successful/, /MAIL FROM/, /RCPT TO/, /250 2\.0\.0 OK/]) assert.match(r.stderr, step);
  const token = await runCli(['--state', state, 'token', ALICE]);
  assert.ok(!r.stderr.includes(token.stdout.trim()));
  assert.ok(!/eyJ[A-Za-z0-9_-]{20,}\./.test(r.stderr), 'no JWT in the transcript');
  assert.ok(!r.stderr.includes('dXNlcj1'), 'no SASL payload');
});

test('exit codes: 1 for a permanent refusal (SendAs), 75 for a temporary one, 2 for usage', async () => {
  const perm = await runCli(['--state', state, 'send', '--from', 'info@contoso.onmicrosoft.com', '--account', ALICE, '--to', BOB, '--body', 'x', ...smtpArgs()]);
  assert.equal(perm.code, 1, perm.stderr);
  assert.match(perm.stderr, /5\.2\.252/);
  assert.match(perm.stderr, /hint: .*SendAs/);
  sb.faults.add({ stage: 'smtp.mail', action: { kind: 'reply', reply: '451 4.3.2 System not accepting network messages' } });
  const temp = await runCli(['--state', state, 'send', '--from', ALICE, '--to', BOB, '--body', 'x', ...smtpArgs()]);
  assert.equal(temp.code, 75, temp.stderr);
  const usage = await runCli(['--state', state, 'send', '--from', ALICE]);
  assert.equal(usage.code, 2);
});

test('--dry-run prints MIME with attachments and HTML without sending', async () => {
  const r = await runCli(['send', '--from', ALICE, '--to', BOB, '--subject', 'dry', '--body', 'plain', '--attach', 'package.json', '--dry-run']);
  assert.equal(r.code, 0, r.stderr);
  const parsed = await simpleParser(r.stdout);
  assert.equal(parsed.subject, 'dry');
  assert.equal(parsed.attachments[0]?.filename, 'package.json');
  assert.ok(parsed.messageId);
});
