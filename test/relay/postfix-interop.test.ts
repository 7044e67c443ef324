/**
 * Interop with a real Debian Postfix: Postfix as the client of relay365 (relayhost = relay365,
 * the common "smarthost for an existing MTA" set-up), and Postfix's own load generator
 * smtp-source as an SMTP client we did not write. Skipped when Postfix (or root) is missing.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { randomUUID } from 'node:crypto';
import { sandbox } from '../helpers/sandbox.js';
import { tempDir } from '../helpers/cli.js';
import { addAccount } from '../helpers/accounts.js';
import { relayYaml } from '../helpers/relay.js';
import { POSTFIX_BIN, postfixMissing, startPostfix, type Postfix } from '../helpers/postfix.js';
import { RelayService } from '../../src/relay/index.js';
import { parseConfigText } from '../../src/config/index.js';
import { createLogger } from '../../src/core/log.js';
import type { Sandbox } from '../../src/sandbox/index.js';

const run = promisify(execFile);
const ALICE = 'alice@contoso.onmicrosoft.com';
const BOB = 'bob@contoso.onmicrosoft.com';
const skip = postfixMissing();

let sb: Sandbox;
let relay: RelayService;
let pf: Postfix;

before(async () => {
  if (skip) return;
  // Exchange's 30 messages/minute per mailbox (enforced by both the sandbox and the relay) would
  // turn 50 messages into two minutes of waiting: this file tests interop, not rate limits.
  sb = await sandbox({ limits: { messagesPerMinute: 100_000 } });
  const state = tempDir();
  await addAccount(sb, state, ALICE, { password: 'alice-Passw0rd!' });
  const config = parseConfigText(relayYaml(sb, { delivery: '  messages_per_minute_per_account: 100000' }), 'test.yaml').config;
  relay = await RelayService.start({ config, stateDir: state, log: createLogger({ level: 'silent' }) });
  pf = await startPostfix({ relayHost: { host: '127.0.0.1', port: relay.smtpPort } });
});

after(async () => {
  await pf?.stop();
  await relay?.stop();
  await sb?.stop();
});

test('Postfix (relayhost = relay365) → relay365 → Microsoft 365 (sandbox): the message arrives intact', { skip }, async () => {
  const id = `pf-${randomUUID()}@interop.test`;
  // Dot-stuffing, a long line, 8-bit text and a blank line in the body: each hop must keep them.
  const body = ['Hello Bob,', '', '.a line that starts with a dot', '..two dots', `${'x'.repeat(900)}`, 'Grüße aus Köln', '.', 'end'].join('\n');
  const raw = [`From: Alice <${ALICE}>`, `To: Bob <${BOB}>`, 'Subject: Postfix interop', `Message-ID: <${id}>`, 'X-Interop: postfix-relayhost', 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 8bit', '', body, ''].join('\n');
  await pf.sendmail(raw, [BOB], ALICE);

  const rec = await sb.mail.waitForOutbound((r) => r.messageId === id, 30_000);
  assert.equal(rec.from, ALICE);
  assert.deepEqual(rec.to, [BOB]);
  assert.equal(rec.identity, ALICE);
  const text = rec.raw.toString('utf8');
  assert.match(text, /^X-Interop: postfix-relayhost\r$/m);
  // Both hops wrote a Received: header, newest (relay365) on top.
  const received = text.split('\r\n\r\n')[0]!.match(/^Received: .*(?:\r\n[ \t].*)*/gm) ?? [];
  assert.match(received[0]!, /by relay\.test \(relay365\)/);
  assert.ok(received.some((h) => /by postfix\.test \(Postfix/.test(h)), received.join('\n'));
  // The body, byte for byte after CRLF canonicalisation (dot-stuffing undone at every hop).
  assert.equal(text.slice(text.indexOf('\r\n\r\n') + 4), `${body.replace(/\n/g, '\r\n')}\r\n`);

  // Bob's mailbox in the sandbox holds the same message.
  const inbox = sb.mail.mailbox(BOB).messages.find((m) => m.raw.toString('utf8').includes(`Message-ID: <${id}>`));
  assert.ok(inbox, 'message in the recipient mailbox');
  assert.equal(inbox.raw.toString('utf8'), text);

  // Postfix got a durable 250 from relay365 (queue empty, logged as sent to the relay port).
  await pf.waitForEmptyQueue();
  assert.match(pf.logTail(200), new RegExp(`relay=127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${relay.smtpPort},.*status=sent \\(250 `));
});

test('smtp-source (Postfix load generator, 5 sessions) → relay365: all 50 messages delivered to the sandbox', { skip }, async () => {
  const subject = `smtp-source ${randomUUID()}`;
  const before = sb.mail.outbound().length;
  // -c: count, -m: messages, -s: parallel sessions, -l: body size (bytes).
  const { stdout } = await run(POSTFIX_BIN.smtpSource, ['-c', '-m', '50', '-s', '5', '-l', '2048', '-S', subject, '-f', ALICE, '-t', BOB, `127.0.0.1:${relay.smtpPort}`], { timeout: 60_000 });
  assert.match(stdout, /50\s*$/, 'smtp-source counted 50 messages');

  const deadline = Date.now() + 60_000;
  let mine = sb.mail.outbound().slice(before).filter((r) => r.raw.includes(`Subject: ${subject}`));
  while (mine.length < 50 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    mine = sb.mail.outbound().slice(before).filter((r) => r.raw.includes(`Subject: ${subject}`));
  }
  assert.equal(mine.length, 50);
  // 50 distinct messages (no duplicate deliveries), each to Bob, as Alice.
  assert.equal(new Set(mine.map((r) => r.messageId)).size, 50);
  for (const r of mine) {
    assert.deepEqual(r.to, [BOB]);
    assert.equal(r.identity, ALICE);
  }
  // And the relay's queue settled each of them as delivered, after one attempt.
  for (const r of mine) {
    const deadline = Date.now() + 10_000;
    let entry = (await relay.queue.list({ search: r.messageId! }))[0];
    while (entry?.state !== 'done' && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 50));
      entry = (await relay.queue.list({ search: r.messageId! }))[0];
    }
    assert.equal(entry?.state, 'done', r.messageId);
    assert.equal(entry.attempts, 1);
  }
});
