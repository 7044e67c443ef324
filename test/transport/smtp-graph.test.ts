import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { sandbox } from '../helpers/sandbox.js';
import { tempDir } from '../helpers/cli.js';
import { addAccount } from '../helpers/accounts.js';
import { openTokenManager, type TokenManager } from '../../src/oauth/index.js';
import { createTransport, SmtpTransport, GraphTransport } from '../../src/transport/index.js';
import type { TransportError } from '../../src/core/errors.js';
import type { Sandbox } from '../../src/sandbox/index.js';

const ALICE = 'alice@contoso.onmicrosoft.com';
const BOB = 'bob@contoso.onmicrosoft.com';
let sb: Sandbox;
let tokens: TokenManager;

before(async () => {
  sb = await sandbox();
  const state = tempDir();
  await addAccount(sb, state, ALICE, { password: 'alice-Passw0rd!', scopes: 'smtp,graph' });
  await addAccount(sb, state, 'info@contoso.onmicrosoft.com', { app: true, scopes: 'smtp,graph' });
  tokens = openTokenManager({ stateDir: state });
});
after(() => sb.stop());

const msg = (from: string, id: string, extra = '') => () => Readable.from([Buffer.from(`From: ${from}\r\nTo: ${BOB}\r\nSubject: ${id}\r\nMessage-ID: <${id}>\r\n${extra}\r\nbody of ${id}\r\n`)]);

function smtpTransport(account: string, mechanism: 'XOAUTH2' | 'OAUTHBEARER' = 'XOAUTH2', transcript?: (l: string) => void): SmtpTransport {
  return new SmtpTransport({ host: '127.0.0.1', port: sb.endpoints.smtp.port, security: 'starttls', caFile: sb.caFile, auth: { kind: 'oauth', account, mechanism }, transcript }, { tokens });
}

test('XOAUTH2 and OAUTHBEARER deliveries land in the mailbox', async () => {
  for (const mech of ['XOAUTH2', 'OAUTHBEARER'] as const) {
    const t = smtpTransport(ALICE, mech);
    const r = await t.deliver({ from: ALICE, to: [BOB] }, msg(ALICE, `${mech}@test`));
    assert.deepEqual(r.accepted, [BOB]);
    assert.match(r.response, /^250 2\.0\.0 OK </);
    assert.equal(r.messageId, `${mech}@test`);
    await t.close();
  }
  assert.equal(sb.mail.mailbox(BOB).messages.filter((m) => /body of (XOAUTH2|OAUTHBEARER)@test/.test(m.raw.toString())).length, 2);
});

test('535 5.7.3 → one refresh and one retry, then delivered', async () => {
  sb.faults.add({ stage: 'smtp.auth', action: { kind: 'reply', reply: '535 5.7.3 Authentication unsuccessful [SN2PR00CA0018.namprd00.prod.outlook.com]' } });
  const before = sb.identity.stats.tokenRequests;
  const t = smtpTransport(ALICE);
  const r = await t.deliver({ from: ALICE, to: [BOB] }, msg(ALICE, 'retry@test'));
  assert.deepEqual(r.accepted, [BOB]);
  assert.equal(sb.identity.stats.tokenRequests - before, 1, 'exactly one refresh');
  await t.close();
});

test('replies map to typed errors: temporary/permanent and the fix', async (t) => {
  const opened: SmtpTransport[] = [];
  t.after(() => Promise.all(opened.map((x) => x.close())));
  const smtp = (account: string) => {
    const x = smtpTransport(account);
    opened.push(x);
    return x;
  };
  const cases: Array<[() => Promise<unknown>, RegExp, boolean, RegExp]> = [
    [async () => {
      sb.faults.add({ stage: 'smtp.rcpt', action: { kind: 'reply', reply: '451 4.7.500 Server busy. Please try again later.' } });
      return smtp(ALICE).deliver({ from: ALICE, to: [BOB] }, msg(ALICE, 'a'));
    }, /451/, true, /./],
    [() => smtp(ALICE).deliver({ from: 'info@contoso.onmicrosoft.com', to: [BOB] }, msg('info@contoso.onmicrosoft.com', 'b')), /5\.2\.252/, false, /SendAs/],
    [async () => {
      sb.faults.add({ stage: 'smtp.mail', action: { kind: 'reply', reply: '432 4.3.2 Concurrent connections limit exceeded. Visit https://aka.ms/concurrent_sending for more information.' } });
      return smtp(ALICE).deliver({ from: ALICE, to: [BOB] }, msg(ALICE, 'c'));
    }, /4\.3\.2/, true, /3 concurrent/],
    [async () => {
      sb.directory.tenant('contoso.onmicrosoft.com')!.smtpAuthDisabled = true;
      try {
        return await smtp(ALICE).deliver({ from: ALICE, to: [BOB] }, msg(ALICE, 'd'));
      } finally {
        sb.directory.tenant('contoso.onmicrosoft.com')!.smtpAuthDisabled = false;
      }
    }, /5\.7\.139/, false, /Set-TransportConfig -SmtpClientAuthenticationDisabled \$false/],
  ];
  for (const [run, text, temporary, hint] of cases) {
    await assert.rejects(run(), (e: TransportError) => {
      assert.match(e.message, text);
      assert.equal(e.temporary, temporary, e.message);
      assert.match(e.hint ?? '', hint, e.message);
      return true;
    });
  }
});

test('app-only SMTP for a mailbox with FullAccess', async () => {
  const t = createTransport({ type: 'smtp', account: 'info@contoso.onmicrosoft.com', host: '127.0.0.1', port: sb.endpoints.smtp.port, caFile: sb.caFile }, { tokens });
  const r = await t.deliver({ from: 'info@contoso.onmicrosoft.com', to: [BOB] }, msg('info@contoso.onmicrosoft.com', 'app@test'));
  assert.deepEqual(r.accepted, [BOB]);
  await t.close();
});

test('--debug style transcript contains the conversation and no token', async () => {
  const lines: string[] = [];
  const t = smtpTransport(ALICE, 'XOAUTH2', (l) => lines.push(l));
  await t.deliver({ from: ALICE, to: [BOB] }, msg(ALICE, 'transcript@test'));
  await t.close();
  const text = lines.join('\n');
  assert.match(text, /EHLO/);
  assert.match(text, /STARTTLS/);
  assert.match(text, /AUTH XOAUTH2/);
  assert.match(text, /250 2\.0\.0 OK/);
  const token = (await tokens.getAccessToken(ALICE)).token;
  assert.ok(!text.includes(token));
  assert.ok(!text.includes('dXNlcj1'), 'no SASL payload');
});

test('Graph transport: delivered with 202; 429 honoured with Retry-After', async () => {
  const g = new GraphTransport({ account: 'info@contoso.onmicrosoft.com', baseUrl: sb.endpoints.graph, caFile: sb.caFile }, { tokens });
  sb.faults.add({ stage: 'graph.sendMail', action: { kind: 'http', status: 429, retryAfter: 1 } });
  const started = Date.now();
  const r = await g.deliver({ from: ALICE, to: [BOB] }, msg(ALICE, 'graph@test'));
  assert.ok(Date.now() - started >= 1000, 'waited for Retry-After');
  assert.equal(r.response, '202 Accepted');
  assert.ok(sb.mail.outbound().some((o) => o.via === 'graph' && o.messageId === 'graph@test'));
});
