import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from '../helpers/cli.js';
import { AccountStore } from '../../src/oauth/index.js';
import { checkFixture, failure, step, ALICE, BOB, INFO, D, NOSP, type CheckFixture } from './fixture.js';

let f: CheckFixture;
before(async () => {
  f = await checkFixture(['alice', 'info']);
});
after(() => f.stop());

async function derivedAppAccount(email: string, clientId: string, secret: string, mailbox: string): Promise<void> {
  const store = new AccountStore(f.state);
  const info = (await store.get(INFO))!;
  await store.put({ ...info, email, mailbox, clientId, credential: { type: 'secret', secret }, access: undefined, state: 'valid', lastError: undefined });
}

test('a working delegated account passes every step of SMTP, IMAP, POP3 (STLS) and Graph', async () => {
  const report = await f.check(ALICE, ['smtp', 'imap', 'pop3', 'graph']);
  assert.equal(report.ok, true, JSON.stringify(report, null, 1));
  for (const p of report.protocols) {
    for (const s of p.steps) assert.ok(s.status === 'pass' || (s.status === 'skip' && s.id === 'test-message'), `${p.protocol} ${s.id}: ${s.status} ${s.detail}`);
  }
  assert.match(step({ ...report, protocols: [report.protocols[1]!] }, 'mailbox').detail, /INBOX of alice@contoso\.onmicrosoft\.com: \d+ message\(s\), UIDVALIDITY \d+/);
  assert.match(step({ ...report, protocols: [report.protocols[3]!] }, 'claims').detail, /aud https:\/\/graph\.microsoft\.com, scp Mail\.Send/);
});

test('app-only without FullAccess on the mailbox: IMAP "authenticated but not connected", POP3 -ERR, both with Add-MailboxPermission', async () => {
  const report = await f.check(INFO, ['imap', 'pop3'], { mailbox: BOB });
  const [imap, pop] = report.protocols;
  assert.equal(imap!.steps.find((s) => s.id === 'auth')!.status, 'pass', 'the token itself is accepted');
  const mbox = imap!.steps.find((s) => s.id === 'mailbox')!;
  assert.equal(mbox.status, 'fail');
  assert.match(mbox.reply!, /BAD User is authenticated but not connected\./);
  assert.equal(mbox.explanation!.id, 'imap-not-connected');
  assert.match(mbox.explanation!.en.fix, /Add-MailboxPermission -Identity <mailbox> .*-AccessRights FullAccess/);
  const popAuth = pop!.steps.find((s) => s.id === 'auth')!;
  assert.equal(popAuth.status, 'fail');
  assert.equal(popAuth.explanation!.id, 'pop-auth-failed');
  assert.match(popAuth.explanation!.en.fix, /Add-MailboxPermission/);
  const ja = await runCli(f.cliArgs(INFO, 'imap', '--mailbox', BOB), { env: { LANG: 'ja_JP.UTF-8' } });
  assert.equal(ja.code, 1);
  assert.match(ja.stdout, /✗ メールボックス/);
  assert.match(ja.stdout, /原因: トークンは受け付けられましたが、user= のメールボックスにアクセス権がありません/);
  assert.match(ja.stdout, /対処: Add-MailboxPermission -Identity <メールボックス>/);
});

test('an app with no Exchange service principal: IMAP NO AUTHENTICATE failed → New-ServicePrincipal with the Enterprise Application object id', async () => {
  await derivedAppAccount(`nosp@${D}`, NOSP, 'sandbox-nosp-secret', ALICE);
  const report = await f.check(`nosp@${D}`, ['imap']);
  assert.equal(step(report, 'claims').status, 'pass', 'roles IMAP.AccessAsApp are in the token');
  const s = failure(report);
  assert.equal(s.id, 'auth');
  assert.match(s.reply!, /^C\d+ NO AUTHENTICATE failed\.$/);
  assert.equal(s.explanation!.id, 'imap-auth-failed');
  assert.match(s.explanation!.en.fix, /New-ServicePrincipal -AppId <application id> -ObjectId <Enterprise Application object id>/);
  assert.match(s.explanation!.en.fix, /not the App registration's object id/);
});

test('an expired client secret: AADSTS7000222 with "create a new client secret"', async () => {
  await derivedAppAccount(`expired@${D}`, '11111111-0000-4000-8000-000000000004', 'sandbox-expired-secret', ALICE);
  const r = await runCli([...f.cliArgs(`expired@${D}`, 'imap'), '--json']);
  assert.equal(r.code, 1);
  const token = JSON.parse(r.stdout).protocols[0].steps.find((s: { id: string }) => s.id === 'token');
  assert.equal(token.status, 'fail');
  assert.match(token.detail, /AADSTS7000222/);
  assert.equal(token.explanation.id, 'AADSTS7000222');
  assert.match(token.explanation.fix, /new client secret/);
});

test('Graph: a mailbox without an Exchange Online licence fails the probe; app-only sends the test message', async () => {
  f.sb.directory.user(ALICE)!.noMailbox = true;
  try {
    const s = failure(await f.check(ALICE, ['graph']));
    assert.equal(s.id, 'auth');
    assert.equal(s.explanation!.id, 'graph-MailboxNotEnabledForRESTAPI');
  } finally {
    f.sb.directory.user(ALICE)!.noMailbox = false;
  }
  const report = await f.check(INFO, ['graph'], { sendTestTo: BOB });
  assert.equal(report.ok, true, JSON.stringify(report, null, 1));
  assert.match(step(report, 'claims').detail, /roles .*Mail\.Send/);
  assert.match(step(report, 'test-message').detail, /202 Accepted/);
  await f.sb.mail.waitForOutbound((o) => o.via === 'graph' && o.to.includes(BOB));
});
