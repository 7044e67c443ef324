/**
 * `relay365 serve` as administrators run it (the CLI in a child process): SIGHUP reloads the
 * policy without dropping an open client connection; SIGTERM lets a delivery in flight finish and
 * leaves nothing half-done in the queue.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RawClient } from '../helpers/sandbox.js';
import { runCli } from '../helpers/cli.js';
import { sandboxWithAccount } from '../helpers/accounts.js';
import { relayYaml } from '../helpers/relay.js';
import { startServe } from '../helpers/serve.js';

const ALICE = 'alice@contoso.onmicrosoft.com';
const BOB = 'bob@contoso.onmicrosoft.com';
const fixture = sandboxWithAccount(ALICE, 'alice-Passw0rd!');

async function say(c: RawClient, line: string): Promise<string> {
  c.socket.write(`${line}\r\n`);
  return (await c.smtpReply(10_000)).join('\n');
}

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('SIGHUP reloads the policy; an open connection survives it and the new policy applies', async (t) => {
  const configFile = join(fixture.state, 'reload.yaml');
  writeFileSync(configFile, relayYaml(fixture.sb, { relay: '  max_recipients: 5' }));
  const relay = await startServe({ state: fixture.state, configFile });
  t.after(() => relay.stop());
  const port = relay.port;
  const c = await RawClient.connect(port);
  await c.smtpReply();
  assert.match(await say(c, 'EHLO printer.test'), /^250/);
  assert.match(await say(c, `MAIL FROM:<${ALICE}>`), /^250/);
  assert.match(await say(c, `RCPT TO:<${BOB}>`), /^250/);
  assert.match(await say(c, 'RSET'), /^250/);

  // The new file refuses every client network: only AUTH users may relay now.
  writeFileSync(configFile, relayYaml(fixture.sb, { relay: '  max_recipients: 5\n  allow_networks: []' }));
  relay.child.kill('SIGHUP');
  await until(() => relay.stderr().includes('configuration reloaded'), 'the reload log line');

  assert.match(await say(c, 'NOOP'), /^250/, 'the connection opened before the reload is still served');
  assert.match(await say(c, `MAIL FROM:<${ALICE}>`), /^250/);
  assert.match(await say(c, `RCPT TO:<${BOB}>`), /^550 5\.7\.1 /, 'the reloaded policy applies');
  await say(c, 'QUIT');

  // A broken file is refused and the running policy kept.
  writeFileSync(configFile, 'relay:\n  max_recipients: -1\n');
  relay.child.kill('SIGHUP');
  await until(() => /reload failed; keeping the running configuration/.test(relay.stderr()), 'the refusal');
  assert.match(relay.stderr(), /max_recipients/, 'the refusal names the key');
  const d = await RawClient.connect(port);
  await d.smtpReply();
  assert.match(await say(d, 'EHLO printer.test'), /^250/);
  assert.match(await say(d, `MAIL FROM:<${ALICE}>`), /^250/);
  assert.match(await say(d, `RCPT TO:<${BOB}>`), /^550 5\.7\.1 /, 'still the last good policy');
  d.socket.destroy();

  assert.deepEqual(await relay.stop(), { code: 0, signal: null }, relay.stderr());
});

test('SIGTERM while a delivery is in flight: it finishes, the process exits 0, nothing is left active', async (t) => {
  const configFile = join(fixture.state, 'graceful.yaml');
  writeFileSync(configFile, relayYaml(fixture.sb));
  // Exchange takes 2 s to answer the end of DATA: the stop arrives in the middle of it.
  fixture.sb.faults.add({ stage: 'smtp.dataEnd', action: { kind: 'delay', ms: 2000 } });
  const relay = await startServe({ state: fixture.state, configFile });
  t.after(() => relay.stop());
  const c = await RawClient.connect(relay.port);
  await c.smtpReply();
  await say(c, 'EHLO cron.test');
  assert.match(await say(c, `MAIL FROM:<${ALICE}>`), /^250/);
  assert.match(await say(c, `RCPT TO:<${BOB}>`), /^250/);
  assert.match(await say(c, 'DATA'), /^354/);
  c.socket.write(`From: ${ALICE}\r\nTo: ${BOB}\r\nSubject: in flight\r\nMessage-ID: <graceful@test>\r\n\r\nbody\r\n.\r\n`);
  assert.match((await c.smtpReply(10_000)).join('\n'), /^250 /);
  await say(c, 'QUIT');
  // The upstream has the DATA but not yet our '250': the delivery is in flight.
  await until(() => fixture.sb.faults.list().length === 0, 'the delivery to reach the end of DATA');
  assert.deepEqual(await relay.stop(), { code: 0, signal: null }, relay.stderr());
  assert.ok(fixture.sb.mail.outbound().some((m) => m.messageId === 'graceful@test'), 'delivered before the process ended');
  const list = await runCli(['--state', fixture.state, '--config', configFile, 'queue', 'list', '--json']);
  assert.equal(list.code, 0, list.stderr);
  const { counts, entries } = JSON.parse(list.stdout) as { counts: Record<string, number>; entries: Array<{ state: string; messageId?: string }> };
  assert.equal(counts.active, 0, 'no entry left active');
  assert.equal(entries.find((e) => e.messageId === 'graceful@test')?.state, 'done');
});
