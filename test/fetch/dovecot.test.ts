/**
 * `relay365 fetch` against a real Dovecot 2.3 (IMAP and POP3), which validates the sandbox's
 * access tokens itself (oauth2 passdb, local JWT validation with the sandbox's published key).
 * The sandbox only issues the tokens here; the mailboxes are Dovecot's Maildirs.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sandbox } from '../helpers/sandbox.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { addAccount } from '../helpers/accounts.js';
import { dovecotMissing, startDovecot, startSandboxDovecot, sandboxSigningKeys, type Dovecot } from '../helpers/dovecot.js';
import type { Sandbox } from '../../src/sandbox/index.js';

const D = 'contoso.onmicrosoft.com';
const ALICE = `alice@${D}`;
const BOB = `bob@${D}`;
const CAROL = `carol@${D}`;
const PASSWORDS: Record<string, string> = { [ALICE]: 'alice-Passw0rd!', [BOB]: 'bob-Passw0rd!', [CAROL]: 'carol-Passw0rd!' };

const skip = dovecotMissing();
let sb: Sandbox;
let dc: Dovecot;
let state: string;

before(async () => {
  if (skip) return;
  sb = await sandbox();
  dc = await startSandboxDovecot(sb, { users: [ALICE, BOB, CAROL] });
  state = tempDir('relay365-dovecot-fetch-');
  for (const user of [ALICE, BOB, CAROL]) await addAccount(sb, state, user, { password: PASSWORDS[user]!, scopes: 'imap,pop' });
});
after(async () => {
  await dc?.stop();
  await sb?.stop();
});

const message = (n: string, to = ALICE) => `From: sender@example.net\r\nTo: ${to}\r\nSubject: message ${n}\r\nMessage-ID: <${n}@example.net>\r\n\r\nbody ${n}\r\n.leading dot line\r\nFrom the middle\r\n`;
const idOf = (raw: Buffer | string) => /^Message-ID: <([^>]+)>/im.exec(raw.toString())?.[1];
const maildirIds = (dir: string) => (existsSync(join(dir, 'new')) ? readdirSync(join(dir, 'new')).map((f) => idOf(readFileSync(join(dir, 'new', f)))!).sort() : []);
const upstream = (user: string) => dc.messages(user).map((m) => idOf(m.raw)!).sort();
const ports = () => ({ imap: { implicit: dc.ports.imaps, starttls: dc.ports.imap }, pop3: { implicit: dc.ports.pop3s, starttls: dc.ports.pop3 } });

function fetchArgs(account: string, protocol: 'imap' | 'pop3', tls: 'implicit' | 'starttls', ...extra: string[]): string[] {
  return ['--state', state, 'fetch', account, '--protocol', protocol, '--host', '127.0.0.1', '--port', String(ports()[protocol][tls]), '--tls', tls, '--ca-file', dc.caFile, ...extra];
}

/** Dovecot's log line for the login of `user` after `mark`: it shows the mechanism and TLS. */
const login = async (user: string, mark: number) => (await dc.waitForLog(new RegExp(`Login: user=<${user}>`), { after: mark })).at(-1)!;

test('IMAP: Dovecot accepts the sandbox token; only new mail on the second run; --delete expunges only what is stored', { skip }, async () => {
  const raw1 = Buffer.from(message('i1'));
  dc.deliver(ALICE, raw1);
  dc.deliver(ALICE, message('i2'));
  const dir = tempDir('relay365-maildir-');
  const mark = dc.logMark();
  let r = await runCli(fetchArgs(ALICE, 'imap', 'implicit', '--to', `maildir:${dir}`));
  assert.equal(r.code, 0, `${r.stderr}\n${dc.logTail()}`);
  assert.match(r.stdout, /2 new message\(s\)/);
  assert.deepEqual(maildirIds(dir), ['i1@example.net', 'i2@example.net']);
  // imapflow prefers OAUTHBEARER when the server offers it, as Dovecot does.
  assert.match(await login(ALICE, mark), /method=OAUTHBEARER, .*TLS/);
  const stored = readdirSync(join(dir, 'new')).map((f) => readFileSync(join(dir, 'new', f)));
  assert.ok(
    stored.some((s) => s.equals(raw1)),
    'stored byte for byte as delivered to Dovecot',
  );

  dc.deliver(ALICE, message('i3'));
  r = await runCli(fetchArgs(ALICE, 'imap', 'starttls', '--to', `maildir:${dir}`, '--json'));
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { delivered: 1, alreadyFetched: 2, deleted: 0, markedSeen: 0, mailbox: ALICE });
  assert.deepEqual(maildirIds(dir), ['i1@example.net', 'i2@example.net', 'i3@example.net']);
  assert.deepEqual(upstream(ALICE), ['i1@example.net', 'i2@example.net', 'i3@example.net'], 'nothing deleted without --delete');

  dc.deliver(ALICE, message('i4'));
  r = await runCli(fetchArgs(ALICE, 'imap', 'implicit', '--to', `maildir:${dir}`, '--delete', '--json'));
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { delivered: 1, alreadyFetched: 3, deleted: 4, markedSeen: 0, mailbox: ALICE });
  assert.deepEqual(upstream(ALICE), [], 'expunged in Dovecot');
  assert.deepEqual(maildirIds(dir), ['i1@example.net', 'i2@example.net', 'i3@example.net', 'i4@example.net'], 'no duplicates');
});

test('POP3: AUTH XOAUTH2 over STLS and implicit TLS, new mail only, --delete at QUIT, dot-stuffing undone', { skip }, async () => {
  dc.deliver(BOB, message('p1', BOB));
  const dir = tempDir('relay365-mbox-');
  const mbox = join(dir, 'bob.mbox');
  const mark = dc.logMark();
  let r = await runCli(fetchArgs(BOB, 'pop3', 'starttls', '--to', `mbox:${mbox}`, '--debug'));
  assert.equal(r.code, 0, `${r.stderr}\n${dc.logTail()}`);
  assert.match(r.stdout, /1 new message/);
  assert.match(r.stderr, /S: \+OK Dovecot/);
  assert.match(r.stderr, /C: AUTH XOAUTH2/);
  assert.match(r.stderr, /S: \+OK Logged in\./);
  assert.doesNotMatch(r.stderr, /eyJ|dXNlcj1/, 'no token or SASL payload in the transcript');
  assert.match(await login(BOB, mark), /method=XOAUTH2, .*TLS/);

  dc.deliver(BOB, message('p2', BOB));
  r = await runCli(fetchArgs(BOB, 'pop3', 'implicit', '--to', `mbox:${mbox}`, '--delete'));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /1 new message\(s\).*1 fetched before, 2 deleted/);
  const text = readFileSync(mbox, 'latin1');
  assert.equal(text.match(/^From /gm)?.length, 2, 'two mbox entries');
  assert.match(text, /^>From the middle$/m, 'mboxrd quoting');
  assert.match(text, /^\.leading dot line$/m, 'POP3 dot-stuffing undone');
  assert.deepEqual(upstream(BOB), []);
});

for (const protocol of ['imap', 'pop3'] as const) {
  test(`${protocol}: with --delete, a destination that fails leaves the message in Dovecot`, { skip }, async () => {
    dc.deliver(CAROL, message(`${protocol}-e1`, CAROL));
    let r = await runCli(fetchArgs(CAROL, protocol, 'implicit', '--to', 'exec:cat >/dev/null; echo refused >&2; exit 3', '--delete'));
    assert.equal(r.code, 75, r.stderr);
    assert.match(r.stderr, /exited with 3: refused/);
    assert.deepEqual(upstream(CAROL), [`${protocol}-e1@example.net`], 'not deleted');
    const out = join(tempDir('relay365-exec-'), 'got.eml');
    r = await runCli(fetchArgs(CAROL, protocol, 'implicit', '--to', `exec:cat > ${out}`, '--delete'));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(idOf(readFileSync(out)), `${protocol}-e1@example.net`);
    assert.deepEqual(upstream(CAROL), []);
  });
}

for (const [protocol, user] of [
  ['imap', ALICE],
  ['pop3', BOB],
] as const) {
  test(`${protocol}: a fetch killed with SIGKILL mid-run loses nothing and the next run completes`, { skip }, async () => {
    for (const n of ['k1', 'k2', 'k3']) dc.deliver(user, message(`${protocol}-${n}`, user));
    const dir = tempDir('relay365-kill-');
    // Stores each message, and SIGKILLs relay365 itself right after storing the second.
    const cmd = `exec:f=${dir}/$(date +%s%N).eml; cat > $f; if grep -q 'k2@' $f; then kill -9 $PPID; sleep 5; fi`;
    let r = await runCli(fetchArgs(user, protocol, 'implicit', '--to', cmd, '--delete'));
    assert.equal(r.code, null, `killed (stderr: ${r.stderr})`);
    const ids = () => readdirSync(dir).map((f) => idOf(readFileSync(join(dir, f))));
    assert.ok(ids().includes(`${protocol}-k2@example.net`));
    const left = upstream(user);
    // Dovecot numbers new Maildir files in directory order, so k3 may come before k2: what
    // matters is that each message is either still in Dovecot or stored, and that k2 (stored
    // when the process died) was not deleted.
    assert.ok(left.includes(`${protocol}-k2@example.net`), `k2 still in Dovecot: ${left}`);
    for (const n of ['k1', 'k2', 'k3']) assert.ok(left.includes(`${protocol}-${n}@example.net`) || ids().includes(`${protocol}-${n}@example.net`), `${n} in Dovecot or stored`);
    if (protocol === 'pop3') assert.equal(left.length, 3, 'POP3: no QUIT, so Dovecot forgot every DELE');
    r = await runCli(fetchArgs(user, protocol, 'implicit', '--to', `exec:cat > ${dir}/$(date +%s%N).eml`, '--delete'));
    assert.equal(r.code, 0, r.stderr);
    for (const n of ['k1', 'k2', 'k3']) assert.ok(ids().includes(`${protocol}-${n}@example.net`), `${n} stored`);
    assert.deepEqual(upstream(user), []);
  });
}

test('a token Dovecot cannot verify: IMAP and POP3 fail with a typed auth error after one fresh-token retry', { skip }, async () => {
  // A Dovecot that trusts another key: the sandbox's (valid, unexpired) tokens fail its signature check.
  const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const [real] = await sandboxSigningKeys(sb);
  const other = await startDovecot({
    users: [ALICE],
    signingKeys: [{ kid: real!.kid, publicKeyPem: stranger }],
    clientIds: ['11111111-0000-4000-8000-000000000001'],
    tlsIssuer: { certPem: readFileSync(sb.caFile, 'utf8'), keyPem: readFileSync(join(sb.caFile, '..', 'ca.key'), 'utf8') },
  });
  try {
    const imap = await runCli(['--state', state, 'fetch', ALICE, '--host', '127.0.0.1', '--port', String(other.ports.imaps), '--ca-file', sb.caFile]);
    assert.equal(imap.code, 1, imap.stderr);
    assert.match(imap.stderr, /IMAP AUTHENTICATE OAUTHBEARER as alice@contoso\.onmicrosoft\.com failed: Authentication failed\./);
    const pop = await runCli(['--state', state, 'fetch', ALICE, '--protocol', 'pop3', '--host', '127.0.0.1', '--port', String(other.ports.pop3s), '--ca-file', sb.caFile]);
    assert.equal(pop.code, 1, pop.stderr);
    assert.match(pop.stderr, /POP3 AUTH as alice@contoso\.onmicrosoft\.com failed: -ERR \[AUTH\] Authentication failed\./);
    // Per protocol: the cached token, then exactly one fresh one. The grace period lets a
    // (wrong) fifth refusal reach the asynchronously written log before counting.
    const refusals = await other.waitForLog(/oauth2 failed: Local validation failed: Bad signature/, { count: 4 });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await other.waitForLog(/oauth2 failed:/)).length, 4, refusals.join('\n'));
  } finally {
    await other.stop();
  }
});
