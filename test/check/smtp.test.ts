import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { runCli } from '../helpers/cli.js';
import { AccountStore } from '../../src/oauth/index.js';
import { checkFixture, failure, step, ALICE, BOB, CAROL, D, type CheckFixture } from './fixture.js';

let f: CheckFixture;
before(async () => {
  f = await checkFixture(['alice', 'carol']);
});
after(() => f.stop());

test('every SMTP step passes for a working account; a test message is delivered; exit 0', async () => {
  const r = await runCli(f.cliArgs(ALICE, 'smtp', '--send-test-to', BOB));
  assert.equal(r.code, 0, r.stdout + r.stderr);
  for (const name of ['configuration', 'DNS', 'TCP', 'greeting', 'TLS', 'capabilities', 'token', 'token claims', 'AUTH', 'MAIL FROM', 'test message']) assert.match(r.stdout, new RegExp(`✓ ${name}\\s+\\d+ ms`), name);
  assert.match(r.stdout, /TLSv1\.[23] .*chain verified/);
  assert.match(r.stdout, /aud https:\/\/outlook\.office\.com, scp .*SMTP\.Send/);
  assert.match(r.stdout, /235 2\.7\.0 Authentication successful/);
  assert.match(r.stdout, /Result: every step passed\./);
  assert.doesNotMatch(r.stdout, /eyJ[A-Za-z0-9_-]{10,}|dXNlcj1/, 'no token in the output');
  const sent = await f.sb.mail.waitForOutbound((o) => o.to.includes(BOB) && o.from === ALICE);
  assert.match(sent.raw.toString(), /Subject: relay365 check: test message/);
});

test('SMTP AUTH disabled for the mailbox: 5.7.139 with the Set-CASMailbox fix, in English and Japanese', async () => {
  const en = await runCli(f.cliArgs(CAROL, 'smtp'));
  assert.equal(en.code, 1, en.stderr);
  assert.match(en.stdout, /✗ AUTH/);
  assert.match(en.stdout, /Server said: 535 5\.7\.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox/);
  assert.match(en.stdout, /Cause: SMTP AUTH is disabled for this mailbox/);
  assert.match(en.stdout, /Fix: Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled \$false/);
  assert.match(en.stdout, /- MAIL FROM/, 'later steps skipped');
  const ja = await runCli(f.cliArgs(CAROL, 'smtp'), { env: { LANG: 'ja_JP.UTF-8' } });
  assert.equal(ja.code, 1);
  assert.match(ja.stdout, /✗ 認証 \(AUTH\)/);
  assert.match(ja.stdout, /原因: このメールボックスで SMTP AUTH が無効です/);
  assert.match(ja.stdout, /対処: Set-CASMailbox -Identity <メールボックス> -SmtpClientAuthenticationDisabled \$false/);
  assert.match(ja.stdout, /結果: 1 個のステップが失敗しました。/);
  const json = JSON.parse((await runCli([...f.cliArgs(CAROL, 'smtp'), '--json', '--lang', 'ja'])).stdout);
  assert.equal(json.ok, false);
  const auth = json.protocols[0].steps.find((s: { id: string }) => s.id === 'auth');
  assert.equal(auth.explanation.id, 'smtp-5.7.139-mailbox');
  assert.match(auth.explanation.fix, /Set-CASMailbox/);
  const transcript = json.protocols[0].transcript as string[];
  assert.ok(transcript.includes('C: AUTH XOAUTH2') && transcript.includes('C: <XOAUTH2 initial response>'), 'transcript without the SASL payload');
});

test('SMTP AUTH disabled for the tenant (admin switch): Set-TransportConfig', async () => {
  const tenant = f.sb.directory.tenant(D)!;
  tenant.smtpAuthDisabled = true;
  try {
    const report = await f.check(ALICE, ['smtp']);
    const s = failure(report);
    assert.equal(s.id, 'auth');
    assert.match(s.reply!, /disabled for the Tenant/);
    assert.equal(s.explanation!.id, 'smtp-5.7.139-tenant');
    assert.match(s.explanation!.en.fix, /Set-TransportConfig -SmtpClientAuthenticationDisabled \$false/);
  } finally {
    tenant.smtpAuthDisabled = false;
  }
});

test('Security Defaults on: 5.7.139 explained as Security Defaults', async () => {
  const tenant = f.sb.directory.tenant(D)!;
  tenant.securityDefaults = true;
  try {
    const s = failure(await f.check(ALICE, ['smtp']));
    assert.equal(s.explanation!.id, 'smtp-5.7.139-security-defaults');
    assert.match(s.explanation!.en.fix, /Security Defaults/);
  } finally {
    tenant.securityDefaults = false;
  }
});

test('a delegated token used for another mailbox: claims warn (upn ≠ user=), AUTH fails 535 5.7.3', async () => {
  const report = await f.check(ALICE, ['smtp'], { mailbox: BOB });
  assert.equal(step(report, 'claims').status, 'warn');
  assert.equal(step(report, 'claims').explanation!.id, 'claims-upn-mismatch');
  const s = failure(report);
  assert.equal(s.id, 'auth');
  assert.match(s.reply!, /^535 5\.7\.3 Authentication unsuccessful/);
  assert.equal(s.explanation!.id, 'smtp-5.7.3');
});

test('a Graph-audience token from a bare "SMTP.Send" scope: claims name the cause, the server says 535 5.7.3', async () => {
  const store = new AccountStore(f.state);
  const alice = (await store.get(ALICE))!;
  // As imported from an old sasl-xoauth2 setup that asked for the unprefixed scope.
  await store.put({ ...alice, email: `legacy@${D}`, mailbox: ALICE, scope: 'offline_access SMTP.Send', access: undefined });
  const report = await f.check(`legacy@${D}`, ['smtp']);
  const claims = step(report, 'claims');
  assert.equal(claims.status, 'fail');
  assert.match(claims.detail, /aud https:\/\/graph\.microsoft\.com/);
  assert.equal(claims.explanation!.id, 'claims-graph-audience');
  assert.match(claims.explanation!.en.fix, /https:\/\/outlook\.office\.com\/SMTP\.Send/);
  assert.match(step(report, 'auth').reply!, /535 5\.7\.3/);
});

test('revoked refresh token (password changed): the token step names AADSTS50173 and `account reauth`', async () => {
  f.sb.directory.user(CAROL)!.tokensValidFrom = Date.now() + 1;
  const r = await runCli(f.cliArgs(CAROL, 'smtp'));
  assert.equal(r.code, 1);
  assert.match(r.stdout, /✗ token/);
  assert.match(r.stdout, /AADSTS50173/);
  assert.match(r.stdout, /Cause: The refresh token was revoked/);
  assert.match(r.stdout, /Fix: Run `relay365 account reauth carol@contoso\.onmicrosoft\.com`/);
});

test('unknown tenant: AADSTS90002', async () => {
  const tenant = f.sb.directory.tenant(D)!;
  const domains = tenant.domains;
  tenant.domains = ['renamed.example'];
  try {
    const s = failure(await f.check(ALICE, ['smtp']));
    assert.equal(s.id, 'token');
    assert.equal(s.explanation!.id, 'AADSTS90002');
  } finally {
    tenant.domains = domains;
  }
});

test('an untrusted certificate stops the check before any token is sent; a closed port fails at TCP', async () => {
  const report = await f.check(ALICE, ['smtp'], { caFile: null });
  const s = failure(report);
  assert.equal(s.id, 'tls');
  assert.equal(s.explanation!.id, 'tls-unverified');
  assert.match(s.detail, /NOT verified/);
  assert.equal(step(report, 'token').status, 'skip');
  assert.ok(!report.protocols[0]!.transcript.some((l) => l.includes('AUTH')), 'no AUTH attempted');
  const port = await closedPort();
  const closed = failure(await f.check(ALICE, ['smtp'], { port }));
  assert.equal(closed.id, 'tcp');
  assert.equal(closed.explanation!.id, 'tcp-failed');
});

/** A port that was free a moment ago and has nothing listening now. */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}
