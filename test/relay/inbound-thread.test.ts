/**
 * The inbound SMTP server in its own thread (relay.inbound_thread, the default): what the thread
 * reports to the main thread (accepted messages, connections, log lines without secrets), start-up
 * errors carried across, a clean stop, and the single-thread mode delivering the same way.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Writable } from 'node:stream';
import { RawClient } from '../helpers/sandbox.js';
import { tempDir } from '../helpers/cli.js';
import { sandboxWithAccount } from '../helpers/accounts.js';
import { relayYaml } from '../helpers/relay.js';
import { RelayService, hashPassword } from '../../src/relay/index.js';
import { parseConfigText } from '../../src/config/index.js';
import { createLogger } from '../../src/core/log.js';
import { Relay365Error } from '../../src/core/errors.js';
import type { QueueEntry } from '../../src/queue/index.js';

const ALICE = 'alice@contoso.onmicrosoft.com';
const WRONG_PASSWORD = 'Wr0ng-pa55word-never-logged';

const fixture = sandboxWithAccount(ALICE, 'alice-Passw0rd!');

function captureLog(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      cb();
    },
  });
  return { lines, stream };
}

async function startRelay(t: TestContext, relayExtra: string, opts: { stream?: Writable } = {}): Promise<RelayService> {
  const dir = tempDir();
  const yaml = relayYaml(fixture.sb, { relay: relayExtra }).replace('web:\n  port: 0', `queue:\n  dir: ${dir}/queue\nweb:\n  enabled: false`);
  const log = createLogger({ level: opts.stream ? 'info' : 'silent', destination: opts.stream });
  const relay = await RelayService.start({ config: parseConfigText(yaml, 'thread.yaml').config, stateDir: fixture.state, log });
  t.after(() => relay.stop());
  return relay;
}

async function say(c: RawClient, line: string): Promise<string> {
  c.socket.write(`${line}\r\n`);
  return (await c.smtpReply(10_000)).join('\n');
}

async function sendOne(port: number, subject: string): Promise<string> {
  const c = await RawClient.connect(port);
  try {
    assert.match((await c.smtpReply()).join('\n'), /^220 /);
    assert.match(await say(c, 'EHLO client.test'), /^250/);
    assert.match(await say(c, `MAIL FROM:<${ALICE}>`), /^250/);
    assert.match(await say(c, 'RCPT TO:<someone@example.net>'), /^250/);
    assert.match(await say(c, 'DATA'), /^354/);
    const reply = await say(c, `From: ${ALICE}\r\nTo: someone@example.net\r\nSubject: ${subject}\r\n\r\nbody\r\n.`);
    assert.match(reply, /^250 2\.0\.0 Ok: queued as \w+/);
    return /queued as (\w+)/.exec(reply)![1]!;
  } finally {
    c.socket.destroy();
  }
}

async function settled(relay: RelayService, id: string): Promise<QueueEntry> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const e = await relay.queue.get(id);
    if (e && (e.state === 'done' || e.state === 'bounced')) return e;
    if (Date.now() > deadline) throw new Error(`${id} not settled: ${JSON.stringify(e)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('the thread reports accepted messages, connections and its log lines (without the password) to the main thread', async (t) => {
  const log = captureLog();
  const relay = await startRelay(t, `  users: [{ name: scanner, password_hash: "${hashPassword('scan-pw-123')}", allowed_senders: ["${ALICE}"] }]`, { stream: log.stream });
  const accepted: QueueEntry[] = [];
  let connections = 0;
  relay.events.on('accepted', (e: QueueEntry) => accepted.push(e));
  relay.events.on('connection', () => connections++);

  const c = await RawClient.connect(relay.smtpPort);
  await c.smtpReply();
  await say(c, 'EHLO client.test');
  const refused = await say(c, `AUTH PLAIN ${Buffer.from(`\0scanner\0${WRONG_PASSWORD}`).toString('base64')}`);
  assert.match(refused, /^535 5\.7\.8 /);
  c.socket.destroy();

  const id = await sendOne(relay.smtpPort, 'via the inbound thread');
  const done = await settled(relay, id);
  assert.equal(done.state, 'done');
  assert.ok(fixture.sb.mail.outbound().some((m) => m.raw.includes('Subject: via the inbound thread')), 'delivered upstream');
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(accepted.map((e) => e.id), [id], "the main thread heard of the accepted message (and delivery was woken by it)");
  assert.equal(accepted[0]!.sender, ALICE);
  assert.ok(accepted[0]!.leasedTo, 'handed to delivery leased, without a queue claim');
  assert.equal(connections, 2);

  const authLine = log.lines.find((l) => l.includes('relay AUTH failed'));
  assert.ok(authLine, `the thread's warning reached the main log: ${log.lines.join('\n')}`);
  assert.equal(JSON.parse(authLine).user, 'scanner');
  assert.ok(!log.lines.some((l) => l.includes(WRONG_PASSWORD)), 'no password in the log');
});

test('a taken port fails start-up with the reason and the hint, carried from the thread', async (t) => {
  const first = await startRelay(t, '');
  const yaml = relayYaml(fixture.sb).replace('port: 0 }', `port: ${first.smtpPort} }`).replace('web:\n  port: 0', `queue:\n  dir: ${tempDir()}/queue\nweb:\n  enabled: false`);
  await assert.rejects(RelayService.start({ config: parseConfigText(yaml, 'taken.yaml').config, stateDir: fixture.state, log: createLogger({ level: 'silent' }) }), (err: unknown) => {
    assert.ok(err instanceof Relay365Error);
    assert.equal(err.code, 'NETWORK');
    assert.match(err.message, /EADDRINUSE/);
    assert.match(err.hint ?? '', /Another process/);
    return true;
  });
});

test('stop() ends the thread and closes the listener', async () => {
  const yaml = relayYaml(fixture.sb).replace('web:\n  port: 0', `queue:\n  dir: ${tempDir()}/queue\nweb:\n  enabled: false`);
  const relay = await RelayService.start({ config: parseConfigText(yaml, 'stop.yaml').config, stateDir: fixture.state, log: createLogger({ level: 'silent' }) });
  const port = relay.smtpPort;
  await relay.stop();
  const refused = await new Promise<boolean>((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
  assert.ok(refused, 'nothing listens after stop()');
});

test('inbound_thread: false accepts and delivers in one event loop', async (t) => {
  const relay = await startRelay(t, '  inbound_thread: false');
  const id = await sendOne(relay.smtpPort, 'single event loop');
  assert.equal((await settled(relay, id)).state, 'done');
  assert.ok(fixture.sb.mail.outbound().some((m) => m.raw.includes('Subject: single event loop')));
});
