/**
 * relay365's SMTP transport against a real Dovecot 2.3 submission service: AUTH XOAUTH2 (through
 * `relay365 send`) and OAUTHBEARER (the transport's `mechanism` option, which the relay's upstream
 * routes use), Dovecot validating the sandbox's JWT locally and relaying to a real Postfix that
 * delivers into a Maildir. Refusals by Dovecot must come back as typed relay365 errors.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { generateKeyPairSync } from 'node:crypto';
import { sandbox } from '../helpers/sandbox.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { addAccount } from '../helpers/accounts.js';
import { dovecotMissing, sandboxSigningKeys, startDovecot, startSandboxDovecot, type Dovecot } from '../helpers/dovecot.js';
import { postfixMissing, startPostfix, type Postfix } from '../helpers/postfix.js';
import { SmtpTransport } from '../../src/transport/smtp.js';
import { TransportError } from '../../src/core/errors.js';
import { openTokenManager } from '../../src/oauth/index.js';
import { TokenSigner } from '../../src/sandbox/tokens.js';
import type { TokenProvider } from '../../src/oauth/types.js';
import type { Sandbox } from '../../src/sandbox/index.js';

const ALICE = 'alice@contoso.onmicrosoft.com';
const RCPT = 'rcpt@example.net';

const skip = dovecotMissing() ?? postfixMissing();
let sb: Sandbox;
let pf: Postfix;
let dc: Dovecot;
let state: string;

before(async () => {
  if (skip) return;
  sb = await sandbox();
  pf = await startPostfix({ domains: ['example.net'] });
  dc = await startSandboxDovecot(sb, { users: [ALICE], submissionRelay: { host: pf.host, port: pf.port } });
  state = tempDir('relay365-dovecot-submit-');
  await addAccount(sb, state, ALICE, { password: 'alice-Passw0rd!' });
});
after(async () => {
  await dc?.stop();
  await pf?.stop();
  await sb?.stop();
});

/** Dovecot's log line for the submission login after `mark`: it shows the user, mechanism and TLS. */
const login = async (mark: number) => (await dc.waitForLog(/submission-login: Info: Login: /, { after: mark })).at(-1)!;
const delivered = async (messageId: string) => {
  await pf.waitForMessages(1, { recipient: RCPT, timeoutMs: 30_000 }).catch((e) => assert.fail(`${e.message}\n--- dovecot\n${dc.logTail()}`));
  const end = Date.now() + 30_000;
  for (;;) {
    const m = pf.messages(RCPT).find((x) => x.raw.toString('latin1').includes(`Message-ID: <${messageId}>`));
    if (m) return m.raw.toString('latin1');
    if (Date.now() > end) assert.fail(`${messageId} not delivered by Postfix\n${pf.logTail()}\n--- dovecot\n${dc.logTail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

test('relay365 send → Dovecot submission (AUTH XOAUTH2, STARTTLS) → Postfix → Maildir', { skip }, async () => {
  const mark = dc.logMark();
  const r = await runCli(['--state', state, 'send', '--from', ALICE, '--to', RCPT, '--subject', 'via dovecot', '--body', 'hello from relay365', '--header', 'Message-ID: <dc-xoauth2@contoso>', '--debug', '--json', '--host', '127.0.0.1', '--port', String(dc.ports.submission), '--ca-file', sb.caFile]);
  assert.equal(r.code, 0, `${r.stderr}\n${dc.logTail()}`);
  assert.match(r.stderr, /STARTTLS/);
  assert.match(r.stderr, /AUTH XOAUTH2/);
  assert.match(r.stderr, /235 2\.7\.0 Logged in\./);
  assert.ok(!/eyJ[A-Za-z0-9_-]{20,}\./.test(r.stderr), 'no JWT in the transcript');
  assert.ok(!r.stderr.includes('dXNlcj1'), 'no SASL payload in the transcript');
  assert.match(await login(mark), new RegExp(`user=<${ALICE}>, method=XOAUTH2, .*TLS`));
  const raw = await delivered('dc-xoauth2@contoso');
  assert.match(raw, /^Subject: via dovecot$/m);
  assert.match(raw, /hello from relay365/);
  // Dovecot's own trace header shows the message went through the authenticated submission service.
  assert.match(raw, /^\s+by dovecot\.test with ESMTPSA$/m);
  assert.match(raw, new RegExp(`Return-Path: <${ALICE}>`));
});

test('SmtpTransport with AUTH OAUTHBEARER → Dovecot submission → Postfix', { skip }, async () => {
  const mark = dc.logMark();
  const tokens = openTokenManager({ stateDir: state, caFile: sb.caFile });
  const transport = new SmtpTransport({ host: '127.0.0.1', port: dc.ports.submission, security: 'starttls', caFile: sb.caFile, auth: { kind: 'oauth', account: ALICE, mechanism: 'OAUTHBEARER' }, pool: false }, { tokens });
  try {
    const raw = `From: ${ALICE}\r\nTo: ${RCPT}\r\nSubject: oauthbearer\r\nMessage-ID: <dc-oauthbearer@contoso>\r\n\r\nbody\r\n`;
    const result = await transport.deliver({ from: ALICE, to: [RCPT] }, () => Readable.from([Buffer.from(raw)]));
    assert.deepEqual(result.accepted, [RCPT]);
    assert.deepEqual(result.rejected, []);
    assert.match(result.response, /^250 /);
  } finally {
    await transport.close();
  }
  assert.match(await login(mark), new RegExp(`user=<${ALICE}>, method=OAUTHBEARER, .*TLS`));
  assert.match(await delivered('dc-oauthbearer@contoso'), /^Subject: oauthbearer$/m);
});

/** A token exactly like the sandbox's for alice, signed with its key, but expired a minute ago. */
async function expiredToken(): Promise<string> {
  const tokens = openTokenManager({ stateDir: state, caFile: sb.caFile });
  const fresh = await tokens.getAccessToken(ALICE, { purpose: 'smtp' });
  const claims = JSON.parse(Buffer.from(fresh.token.split('.')[1]!, 'base64url').toString('utf8'));
  const then = Date.now() - 3_600_000;
  const { iat: _iat, nbf: _nbf, uti: _uti, iss: _iss, ...rest } = claims;
  // The sandbox keeps its signing key in its state directory, next to the CA.
  return new TokenSigner(dirname(sb.caFile)).sign({ ...rest, exp: Math.floor(then / 1000) + 3540 }, then);
}

for (const mechanism of ['XOAUTH2', 'OAUTHBEARER'] as const) {
  test(`${mechanism}: an expired token is refused by Dovecot and surfaces as a typed SMTP error`, { skip }, async () => {
    const stale = await expiredToken();
    const calls: string[] = [];
    // Hands out the expired token as if it were still cached as valid (a clock-skewed or stale cache).
    const tokens: TokenProvider = {
      getAccessToken: async (account) => (calls.push('get'), { token: stale, expiresAt: Date.now() + 600_000, account, username: ALICE, purpose: 'smtp' }),
      tokenRejected: async (account) => (calls.push('rejected'), { token: stale, expiresAt: Date.now() + 600_000, account, username: ALICE, purpose: 'smtp' }),
    };
    const transport = new SmtpTransport({ host: '127.0.0.1', port: dc.ports.submission, security: 'starttls', caFile: sb.caFile, auth: { kind: 'oauth', account: ALICE, mechanism }, pool: false }, { tokens });
    const mark = dc.logMark();
    try {
      await assert.rejects(
        transport.deliver({ from: ALICE, to: [RCPT] }, () => Readable.from([Buffer.from('Subject: x\r\n\r\nx\r\n')])),
        (e: unknown) => {
          assert.ok(e instanceof TransportError, String(e));
          assert.equal(e.code, 'SMTP_AUTH', e.message);
          assert.equal(e.temporary, false);
          assert.match(e.message, /535 5\.7\.8/);
          return true;
        },
      );
    } finally {
      await transport.close();
    }
    await dc.waitForLog(/oauth2 failed: Local validation failed: Token has expired/, { after: mark });
    assert.equal(calls[0], 'get');
  });
}

test('a token Dovecot cannot verify (unknown signing key): relay365 send exits 1 with the 535 reply', { skip }, async () => {
  const [real] = await sandboxSigningKeys(sb);
  const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const other = await startDovecot({
    users: [ALICE],
    signingKeys: [{ kid: real!.kid, publicKeyPem: stranger }],
    clientIds: ['11111111-0000-4000-8000-000000000001'],
    submissionRelay: { host: pf.host, port: pf.port },
    tlsIssuer: { certPem: readFileSync(sb.caFile, 'utf8'), keyPem: readFileSync(join(dirname(sb.caFile), 'ca.key'), 'utf8') },
  });
  try {
    const r = await runCli(['--state', state, 'send', '--from', ALICE, '--to', RCPT, '--body', 'x', '--host', '127.0.0.1', '--port', String(other.ports.submission), '--ca-file', sb.caFile]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /535 5\.7\.8 Authentication failed/);
    await other.waitForLog(/oauth2 failed: Local validation failed: Bad signature/);
  } finally {
    await other.stop();
  }
});
