import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { sandbox } from '../helpers/sandbox.js';
import { runCli, tempDir } from '../helpers/cli.js';
import type { Sandbox } from '../../src/sandbox/index.js';

const D = 'contoso.onmicrosoft.com';
const INFO = `info@${D}`;
const ALICE = `alice@${D}`;
const DAEMON = '11111111-0000-4000-8000-000000000003';
const PUBLIC = '11111111-0000-4000-8000-000000000001';

let sb: Sandbox;
let state: string;

before(async () => {
  sb = await sandbox();
  state = tempDir('relay365-fetch-');
  const common = ['--state', state, 'account', 'add', '--tenant', D, '--authority-host', sb.endpoints.authorityHost, '--ca-file', sb.caFile, '--scopes', 'imap,pop'];
  // App-only access to the shared mailbox info@ (the daemon's service principal has FullAccess on it).
  let r = await runCli([...common, INFO, '--client-id', DAEMON, '--client-secret-env', 'S'], { env: { S: 'sandbox-daemon-secret' } });
  assert.equal(r.code, 0, r.stderr);
  r = await runCli([...common, ALICE, '--client-id', PUBLIC, '--flow', 'password', '--username', ALICE, '--password-env', 'PW'], { env: { PW: 'alice-Passw0rd!' } });
  assert.equal(r.code, 0, r.stderr);
});
after(() => sb.stop());

const message = (n: string) => `From: sender@example.net\r\nTo: ${INFO}\r\nSubject: message ${n}\r\nMessage-ID: <${n}@example.net>\r\n\r\nbody ${n}\r\n.leading dot line\r\nFrom the middle\r\n`;
const maildirIds = (dir: string) =>
  existsSync(join(dir, 'new'))
    ? readdirSync(join(dir, 'new'))
        .map((f) => /^Message-ID: <([^>]+)>/im.exec(readFileSync(join(dir, 'new', f), 'latin1'))![1]!)
        .sort()
    : [];
const upstream = (mailbox: string) => sb.mail.mailbox(mailbox).messages.map((m) => /Message-ID: <([^>]+)>/.exec(m.raw.toString())![1]).sort();

function fetchArgs(account: string, protocol: 'imap' | 'pop3', tls: 'implicit' | 'starttls', ...extra: string[]): string[] {
  const ep = protocol === 'imap' ? (tls === 'implicit' ? sb.endpoints.imap : sb.endpoints.imapStarttls) : tls === 'implicit' ? sb.endpoints.pop3 : sb.endpoints.pop3Stls;
  return ['--state', state, 'fetch', account, '--protocol', protocol, '--host', '127.0.0.1', '--port', String(ep.port), '--tls', tls, '--ca-file', sb.caFile, ...extra];
}

test('IMAP, app-only on a shared mailbox: only new mail on the second run; --delete removes only what is stored', async () => {
  sb.mail.append(INFO, message('i1'));
  sb.mail.append(INFO, message('i2'));
  const dir = tempDir('relay365-maildir-');
  let r = await runCli(fetchArgs(INFO, 'imap', 'implicit', '--to', `maildir:${dir}`));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /2 new message\(s\)/);
  assert.deepEqual(maildirIds(dir), ['i1@example.net', 'i2@example.net']);
  const stored = readFileSync(join(dir, 'new', readdirSync(join(dir, 'new'))[0]!), 'latin1');
  assert.match(stored, /\r\n\.leading dot line\r\n/, 'stored byte for byte');
  sb.mail.append(INFO, message('i3'));
  r = await runCli(fetchArgs(INFO, 'imap', 'starttls', '--to', `maildir:${dir}`, '--json'));
  assert.equal(r.code, 0, r.stderr);
  const counts = JSON.parse(r.stdout);
  assert.equal(counts.delivered, 1, 'only the new message');
  assert.equal(counts.alreadyFetched, 2);
  assert.deepEqual(maildirIds(dir), ['i1@example.net', 'i2@example.net', 'i3@example.net']);
  assert.deepEqual(upstream(INFO), ['i1@example.net', 'i2@example.net', 'i3@example.net'], 'nothing deleted without --delete');
  r = await runCli(fetchArgs(INFO, 'imap', 'implicit', '--to', `maildir:${dir}`, '--delete', '--json'));
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { delivered: 0, alreadyFetched: 3, deleted: 3, markedSeen: 0, mailbox: INFO });
  assert.deepEqual(upstream(INFO), []);
  assert.equal(maildirIds(dir).length, 3, 'no duplicates');
});

test('POP3 with STLS, delegated: mbox destination, new mail only, --delete at QUIT', async () => {
  sb.mail.append(ALICE, message('p1'));
  const dir = tempDir('relay365-mbox-');
  const mbox = join(dir, 'alice.mbox');
  let r = await runCli(fetchArgs(ALICE, 'pop3', 'starttls', '--to', `mbox:${mbox}`, '--debug'));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /1 new message/);
  assert.match(r.stderr, /C: AUTH XOAUTH2/);
  assert.match(r.stderr, /S: \+OK User successfully authenticated\./);
  assert.doesNotMatch(r.stderr, /eyJ|dXNlcj1/, 'no token or SASL payload in the transcript');
  sb.mail.append(ALICE, message('p2'));
  r = await runCli(fetchArgs(ALICE, 'pop3', 'implicit', '--to', `mbox:${mbox}`, '--delete'));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /1 new message\(s\).*1 fetched before, 2 deleted/);
  const text = readFileSync(mbox, 'latin1');
  assert.equal(text.match(/^From /gm)?.length, 2, 'two mbox entries');
  assert.match(text, /^>From the middle$/m, 'mboxrd quoting');
  assert.match(text, /^\.leading dot line$/m, 'POP3 dot-stuffing undone');
  assert.deepEqual(upstream(ALICE), []);
});

test('exec: a failing command keeps the message upstream and unrecorded; a working one delivers it', async () => {
  sb.mail.append(ALICE, message('e1'));
  let r = await runCli(fetchArgs(ALICE, 'imap', 'implicit', '--to', 'exec:cat >/dev/null; echo refused >&2; exit 3', '--delete'));
  assert.equal(r.code, 75, r.stderr);
  assert.match(r.stderr, /exited with 3: refused/);
  assert.deepEqual(upstream(ALICE), ['e1@example.net'], 'not deleted');
  const out = join(tempDir('relay365-exec-'), 'got.eml');
  r = await runCli(fetchArgs(ALICE, 'imap', 'implicit', '--to', `exec:cat > ${out}`, '--delete'));
  assert.equal(r.code, 0, r.stderr);
  assert.match(readFileSync(out, 'latin1'), /Message-ID: <e1@example\.net>/);
  assert.deepEqual(upstream(ALICE), []);
});

for (const protocol of ['imap', 'pop3'] as const) {
  test(`${protocol}: a fetch killed with SIGKILL mid-run loses nothing`, async () => {
    for (const n of ['k1', 'k2', 'k3']) sb.mail.append(ALICE, message(`${protocol}-${n}`));
    const dir = tempDir('relay365-kill-');
    // The command stores each message, and kills relay365 itself (kill -9) right after the second.
    const cmd = `exec:f=${dir}/$(date +%s%N).eml; cat > $f; if grep -q 'k2@' $f; then kill -9 $PPID; sleep 5; fi`;
    let r = await runCli(fetchArgs(ALICE, protocol, 'implicit', '--to', cmd, '--delete'));
    assert.equal(r.code, null, `killed (stderr: ${r.stderr})`);
    const ids = () => readdirSync(dir).map((f) => /Message-ID: <([^>]+)>/.exec(readFileSync(join(dir, f), 'latin1'))![1]);
    assert.ok(ids().includes(`${protocol}-k2@example.net`));
    const left = upstream(ALICE);
    assert.ok(left.includes(`${protocol}-k2@example.net`) && left.includes(`${protocol}-k3@example.net`), `k2 and k3 still upstream: ${left}`);
    r = await runCli(fetchArgs(ALICE, protocol, 'implicit', '--to', `exec:cat > ${dir}/$(date +%s%N).eml`, '--delete'));
    assert.equal(r.code, 0, r.stderr);
    for (const n of ['k1', 'k2', 'k3']) assert.ok(ids().includes(`${protocol}-${n}@example.net`), `${n} stored`);
    assert.deepEqual(upstream(ALICE), []);
  });
}

test('app-only access to a mailbox without FullAccess: "authenticated but not connected" explained', async () => {
  const r = await runCli(fetchArgs(INFO, 'imap', 'implicit', '--mailbox', `bob@${D}`, '--to', 'stdout'));
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /User is authenticated but not connected/);
  assert.match(r.stderr, /Add-MailboxPermission -Identity <mailbox>/);
  assert.match(r.stderr, /Enterprise Application/);
  const pop = await runCli(fetchArgs(INFO, 'pop3', 'implicit', '--mailbox', `bob@${D}`));
  assert.equal(pop.code, 1, pop.stderr);
  assert.match(pop.stderr, /-ERR Authentication failure/);
  assert.match(pop.stderr, /FullAccess/);
});

test('--unseen --mark-seen to stdout: unseen mail only, marked \\Seen upstream (kept), in mboxrd form; --since in the future finds nothing', async () => {
  const BOB = `bob@${D}`;
  const r0 = await runCli(['--state', state, 'account', 'add', BOB, '--tenant', D, '--authority-host', sb.endpoints.authorityHost, '--ca-file', sb.caFile, '--scopes', 'imap', '--client-id', PUBLIC, '--flow', 'password', '--username', BOB, '--password-env', 'PW'], { env: { PW: 'bob-Passw0rd!' } });
  assert.equal(r0.code, 0, r0.stderr);
  sb.mail.append(BOB, message('s1'));
  sb.mail.append(BOB, message('s2'));
  sb.mail.mailbox(BOB).messages.find((m) => m.raw.toString().includes('<s1@example.net>'))!.flags.add('\\Seen');
  let r = await runCli(fetchArgs(BOB, 'imap', 'implicit', '--unseen', '--mark-seen', '--to', 'stdout'));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^From MAILER-DAEMON /, 'mbox separator line');
  assert.match(r.stdout, /Message-ID: <s2@example\.net>/);
  assert.doesNotMatch(r.stdout, /s1@example\.net/, 'the seen message is not fetched');
  assert.match(r.stdout, /\n>From the middle\r?\n/, 'mboxrd quoting of From lines');
  assert.match(r.stderr, /1 new message\(s\) to stdout, 0 fetched before, 1 marked seen/, 'with --to stdout the summary goes to stderr');
  const box = sb.mail.mailbox(BOB).messages;
  assert.equal(box.length, 2, 'nothing deleted');
  assert.ok(box.every((m) => m.flags.has('\\Seen')), 'marked \\Seen upstream');
  r = await runCli(fetchArgs(BOB, 'imap', 'implicit', '--since', '2099-01-01', '--to', 'stdout'));
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /0 new message\(s\)/);
});
