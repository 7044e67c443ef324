import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { sandbox } from '../helpers/sandbox.js';
import { tempDir, repoRoot } from '../helpers/cli.js';
import { addAccount } from '../helpers/accounts.js';
import { RawClient } from '../helpers/sandbox.js';
import { RelayService, hashPassword } from '../../src/relay/index.js';
import { relayConfig, relayYaml } from '../helpers/relay.js';
import { parseConfigText } from '../../src/config/index.js';
import { createLogger } from '../../src/core/log.js';
import type { QueueEntry } from '../../src/queue/index.js';
import type { Sandbox } from '../../src/sandbox/index.js';

const run = promisify(execFile);
const ALICE = 'alice@contoso.onmicrosoft.com';
const BOB = 'bob@contoso.onmicrosoft.com';
const PY = join(repoRoot, 'test', 'helpers', 'smtp-client.py');

let sb: Sandbox;
let state: string;
let relay: RelayService;

const config = (extra = '') => relayConfig(sb, extra);

before(async () => {
  sb = await sandbox();
  state = tempDir();
  await addAccount(sb, state, ALICE, { password: 'alice-Passw0rd!' });
  relay = await RelayService.start({ config: config(`  users: [{ name: scanner, password_hash: "${hashPassword('scan-pw-123')}", allowed_senders: ["${ALICE}"] }]`), stateDir: state, log: createLogger({ level: 'silent' }) });
});
after(async () => {
  await relay.stop();
  await sb.stop();
});

/** The queue entry for a Message-ID once delivery has settled it (the upstream may see it first). */
async function settled(messageId: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const e = (await relay.queue.list({ search: messageId }))[0];
    if (e && (e.state === 'done' || e.state === 'bounced')) return e;
    if (Date.now() > deadline) throw new Error(`${messageId} not settled: ${JSON.stringify(e)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function sendPy(port: number, from: string, to: string, count: number, prefix: string, creds: string[] = []): Promise<Array<{ id: string; code: number }>> {
  const { stdout } = await run('python3', [PY, String(port), from, to, String(count), prefix, ...creds], { timeout: 60_000 });
  return stdout.trim().split('\n').map((l) => {
    const [id, code] = l.split(' ');
    return { id: id!, code: Number(code) };
  });
}

test('smtplib → relay → Microsoft 365 (sandbox) with XOAUTH2; 250 carries the queue id', async () => {
  const sent = await sendPy(relay.smtpPort, ALICE, BOB, 3, 'basic');
  assert.deepEqual(sent.map((s) => s.code), [250, 250, 250]);
  for (const s of sent) {
    const rec = await sb.mail.waitForOutbound((r) => r.messageId === s.id);
    assert.deepEqual(rec.to, [BOB]);
    assert.equal(rec.identity, ALICE);
    assert.match(rec.raw.toString(), /^Received: from [\s\S]*?by relay\.test \(relay365\)/);
  }
  const entry = await settled('basic-0@relay365.test');
  assert.equal(entry.state, 'done');
  assert.equal(entry.messageId, 'basic-0@relay365.test');
});

test('swaks (a client we did not write) through the relay', async () => {
  const { stdout } = await run('swaks', ['--server', `127.0.0.1:${relay.smtpPort}`, '--from', ALICE, '--to', BOB, '--header', 'Message-Id: <swaks-1@relay365.test>', '--header', `From: ${ALICE}`], { timeout: 30_000 });
  assert.match(stdout, /<- {2}250 2\.0\.0 Ok: queued as [0-9A-Z]+/);
  await sb.mail.waitForOutbound((r) => r.messageId === 'swaks-1@relay365.test');
});

test('4xx from upstream → deferred, retried with back-off, delivered', async () => {
  sb.faults.add({ stage: 'smtp.rcpt', action: { kind: 'reply', reply: '451 4.7.500 Server busy. Please try again later.' }, count: 1, match: 'info@' });
  const [s] = await sendPy(relay.smtpPort, ALICE, 'info@contoso.onmicrosoft.com', 1, 'retry4xx');
  assert.equal(s!.code, 250);
  await sb.mail.waitForOutbound((r) => r.messageId === s!.id, 15_000);
  const done = await settled(s!.id);
  assert.equal(done.state, 'done');
  assert.equal(done.attempts, 2, 'the first attempt was deferred');
  const full = await relay.queue.get(done.id);
  assert.match(full!.history![0]!.reply, /451/);
  assert.equal(full!.history!.at(-1)!.outcome, 'delivered');
});

test('dropped upstream connection → retried and delivered', async () => {
  sb.faults.add({ stage: 'smtp.dataEnd', action: { kind: 'drop' }, count: 1 });
  const [s] = await sendPy(relay.smtpPort, ALICE, BOB, 1, 'drop');
  assert.equal(s!.code, 250);
  await sb.mail.waitForOutbound((r) => r.messageId === s!.id, 20_000);
});

test('5xx → the recipient bounces and the sender gets an RFC 3464 DSN', async () => {
  sb.faults.add({ stage: 'smtp.rcpt', action: { kind: 'reply', reply: '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup' }, count: 1, match: 'nobody@' });
  const [s] = await sendPy(relay.smtpPort, ALICE, 'nobody@contoso.onmicrosoft.com', 1, 'bounce');
  assert.equal(s!.code, 250);
  const dsn = await sb.mail.waitForOutbound((r) => r.to.includes(ALICE) && r.raw.toString().includes('nobody@contoso.onmicrosoft.com'), 15_000);
  const text = dsn.raw.toString();
  assert.match(text, /Content-Type: multipart\/report; report-type=delivery-status/);
  assert.match(text, /Final-Recipient: rfc822; nobody@contoso\.onmicrosoft\.com/);
  assert.match(text, /Action: failed/);
  assert.match(text, /Status: 5\.1\.10/);
  assert.match(text, /Message-ID: <bounce-0@relay365\.test>/, 'original headers included');
});

test('token endpoint down → deferred; delivered after recovery; refresh token intact', async () => {
  const file = join(state, 'accounts', `${ALICE}.json`);
  const rec = JSON.parse(readFileSync(file, 'utf8'));
  const rt = rec.refreshToken;
  rec.access.outlook.expiresAt = Date.now() - 1000;
  writeFileSync(file, JSON.stringify(rec), { mode: 0o600 });
  // The relay's token manager also caches in memory: drop that copy as a restart would.
  (relay.tokens as unknown as { memory: Map<string, unknown> }).memory.clear();
  // …and pooled upstream connections are already authenticated: start from fresh ones.
  await relay.delivery.resetTransports();
  sb.faults.add({ stage: 'token', action: { kind: 'http', status: 503 }, count: 2 });
  const [s] = await sendPy(relay.smtpPort, ALICE, BOB, 1, 'tokendown');
  assert.equal(s!.code, 250);
  await sb.mail.waitForOutbound((r) => r.messageId === s!.id, 20_000);
  const after = JSON.parse(readFileSync(file, 'utf8'));
  assert.ok(after.refreshToken && after.refreshToken !== rt, 'refresh token kept through the outage and rotated after');
  assert.equal(after.state, 'valid');
});

test('SMTP AUTH relay user: accepted for allowed senders, refused for others', async () => {
  const ok = await sendPy(relay.smtpPort, ALICE, BOB, 1, 'authuser', ['scanner', 'scan-pw-123']);
  assert.equal(ok[0]!.code, 250);
  const c = await RawClient.connect(relay.smtpPort);
  await c.smtpReply();
  await c.cmd('EHLO x');
  assert.match((await c.cmd(`AUTH PLAIN ${Buffer.from('\0scanner\0wrong').toString('base64')}`))[0]!, /^535 /);
  assert.match((await c.cmd(`AUTH PLAIN ${Buffer.from('\0scanner\0scan-pw-123').toString('base64')}`))[0]!, /^235 /);
  assert.match((await c.cmd('MAIL FROM:<ceo@contoso.onmicrosoft.com>'))[0]!, /^553 5\.7\.1 /);
  c.close();
});

test('rewrite_sender: a device with a fixed From: the mailbox may not send as goes out as the account, the original in Reply-To', async () => {
  // Without the rewrite Exchange (the sandbox) refuses both the envelope sender and the From:
  // field with 554 5.2.252 SendAsDenied.
  const routed = `  routes:\n    as-alice: { type: smtp, account: ${ALICE}, host: 127.0.0.1, port: ${sb.endpoints.smtp.port}, rewrite_sender: true }\n  rules:\n    - { sender: "*@printers.test", route: as-alice }`;
  const own = tempDir();
  await addAccount(sb, own, ALICE, { password: 'alice-Passw0rd!' });
  const rewriting = await RelayService.start({ config: config(routed), stateDir: own, log: createLogger({ level: 'silent' }) });
  try {
    await run('swaks', ['--server', `127.0.0.1:${rewriting.smtpPort}`, '--from', 'mfp@printers.test', '--to', BOB, '--header', 'Message-Id: <rewrite-1@relay365.test>', '--header', 'From: "MFP 3rd floor" <mfp@printers.test>', '--body', 'scan attached'], { timeout: 30_000 });
    const rec = await sb.mail.waitForOutbound((r) => r.messageId === 'rewrite-1@relay365.test');
    assert.equal(rec.from, ALICE);
    const header = rec.raw.toString('latin1').split('\r\n\r\n')[0]!;
    assert.match(header, new RegExp(`^From: ${ALICE}$`, 'm'));
    assert.match(header, /^Reply-To: "MFP 3rd floor" <mfp@printers\.test>$/m);
    assert.equal(header.match(/^From:/gim)?.length, 1);
  } finally {
    await rewriting.stop();
  }
});

test('never an open relay: unknown networks and relay tricks are refused at RCPT with 5.7.1', async () => {
  const closed = await RelayService.start({ config: config('  allow_networks: ["10.0.0.0/8"]'), stateDir: tempDir(), log: createLogger({ level: 'silent' }) });
  try {
    const c = await RawClient.connect(closed.smtpPort);
    await c.smtpReply();
    await c.cmd('EHLO x');
    await c.cmd('MAIL FROM:<a@b.example>');
    // Source routes are stripped (RFC 5321 §C) and the final address still needs permission.
    for (const rcpt of ['victim@example.net', `${ALICE}`, '@contoso.onmicrosoft.com:victim@example.net', 'victim%example.net@contoso.onmicrosoft.com', 'example.net!victim@contoso.onmicrosoft.com', '"victim@example.net"@contoso.onmicrosoft.com']) {
      // (smtp-server itself refuses a quoted local part holding an @ as bad syntax: 501 5.1.3.)
      assert.match((await c.cmd(`RCPT TO:<${rcpt}>`))[0]!, /^(550 5\.7\.1 Relay access denied|501 5\.1\.3 )/, rcpt);
    }
    c.close();
  } finally {
    await closed.stop();
  }
  const c = await RawClient.connect(relay.smtpPort);
  await c.smtpReply();
  await c.cmd('EHLO x');
  await c.cmd(`MAIL FROM:<${ALICE}>`);
  // Even for an allowed client, addresses that a downstream MTA could re-route are refused.
  for (const trick of ['victim%example.net@contoso.onmicrosoft.com', 'example.net!victim@contoso.onmicrosoft.com', '"victim@example.net"@contoso.onmicrosoft.com']) {
    const reply = (await c.cmd(`RCPT TO:<${trick}>`))[0]!;
    assert.match(reply, /^(550 5\.7\.1 Relay access denied|501 5\.1\.3 )/, `${trick} → ${reply}`);
  }
  c.close();
});

test('the relay prunes finished entries by itself: keep_finished_days 0 removes a delivered message at the next pass; a reload applies a new value', async () => {
  // A state of its own: the queue is the one under test, and the shared relay keeps its token store to itself.
  const own = tempDir();
  await addAccount(sb, own, ALICE, { password: 'alice-Passw0rd!' });
  const keeping = (days: number) => parseConfigText(relayYaml(sb).replace('web:\n  port: 0', `queue:\n  keep_finished_days: ${days}\nweb:\n  port: 0`), 'prune.yaml').config;
  const logLines = new PassThrough();
  const logged: Array<{ msg: string; removed?: number; cutoff?: string }> = [];
  let partial = '';
  logLines.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop()!;
    for (const l of lines) logged.push(JSON.parse(l));
  });
  const pruning = await RelayService.start({ config: keeping(0), stateDir: own, log: createLogger({ level: 'info', destination: logLines }), pruneSchedule: { firstMs: 100, everyMs: 100 } });
  try {
    const deliver = async (prefix: string): Promise<QueueEntry> => {
      const messageId = `${prefix}-0@relay365.test`;
      const settledEntry = new Promise<QueueEntry>((resolve) => pruning.events.on('settled', (e: QueueEntry) => e.messageId === messageId && resolve(e)));
      const [s] = await sendPy(pruning.smtpPort, ALICE, BOB, 1, prefix);
      assert.equal(s!.code, 250);
      const e = await settledEntry;
      assert.equal(e.state, 'done');
      return e;
    };
    const pruned = await deliver('pruned');
    // The pass logs once it has finished (after the commit that the queue already shows).
    const passLine = () => logged.find((l) => l.msg === 'removed finished queue entries');
    const deadline = Date.now() + 5000;
    while (((await pruning.queue.get(pruned.id)) || !passLine()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(await pruning.queue.get(pruned.id), undefined, 'removed without any command');
    const line = passLine();
    assert.equal(line?.removed, 1, 'one line per pass, with the count');
    assert.ok(Date.parse(line.cutoff!) >= Date.parse(pruned.nextAttemptAt), `cutoff ${line.cutoff} after the finish at ${pruned.nextAttemptAt}`);

    pruning.reload(keeping(7));
    const kept = await deliver('kept');
    // Several passes run meanwhile (every 100 ms); a week has not passed.
    await new Promise((r) => setTimeout(r, 600));
    assert.equal((await pruning.queue.get(kept.id))?.state, 'done');
    assert.equal(logged.filter((l) => l.msg === 'removed finished queue entries').length, 1);
  } finally {
    await pruning.stop();
  }
});
