import assert from 'node:assert/strict';
import type { Sandbox } from '../../src/sandbox/index.js';
import { parseConfigText, type Config } from '../../src/config/index.js';
import type { QueueEntry } from '../../src/queue/index.js';
import type { RelayService } from '../../src/relay/index.js';
import { RawClient } from './sandbox.js';

/**
 * A relay configuration for tests: SMTP on a free port, fast retries, upstream = the sandbox.
 * Extra lines (two-space indented) are added under `relay:` and `delivery:`.
 */
export function relayYaml(sb: Sandbox, extra: { relay?: string; delivery?: string } = {}): string {
  const relayExtra = extra.relay ?? '';
  return `relay:
  listen: [{ address: 127.0.0.1, port: 0 }]
  hostname: relay.test
${relayExtra}
delivery:
  poll_interval_ms: 100
  retry_initial_seconds: 1
  retry_max_seconds: 2
  ca_file: ${sb.caFile}
  smtp_host: 127.0.0.1
  smtp_port: ${sb.endpoints.smtp.port}
${extra.delivery ?? ''}
web:
  port: 0
`;
}

export function relayConfig(sb: Sandbox, relayExtra = ''): Config {
  return parseConfigText(relayYaml(sb, { relay: relayExtra }), 'test.yaml').config;
}

/** Sends one command line and returns the (possibly multi-line) reply. */
export async function say(c: RawClient, line: string): Promise<string> {
  c.socket.write(`${line}\r\n`);
  return (await c.smtpReply(10_000)).join('\n');
}

/** A greeted SMTP session after EHLO. */
export async function smtpSession(port: number): Promise<RawClient> {
  const c = await RawClient.connect(port);
  assert.match((await c.smtpReply()).join('\n'), /^220 /);
  assert.match(await say(c, 'EHLO client.test'), /^250/);
  return c;
}

/** One message (Message-ID `id`) in its own session, accepted with 250. */
export async function submitMessage(port: number, from: string, id: string, rcpts: string[]): Promise<void> {
  const c = await smtpSession(port);
  assert.match(await say(c, `MAIL FROM:<${from}>`), /^250/);
  for (const r of rcpts) assert.match(await say(c, `RCPT TO:<${r}>`), /^250/);
  assert.match(await say(c, 'DATA'), /^354/);
  c.socket.write(`From: ${from}\r\nSubject: ${id}\r\nMessage-ID: <${id}>\r\n\r\nbody\r\n.\r\n`);
  assert.match((await c.smtpReply(10_000)).join('\n'), /^250/);
  await say(c, 'QUIT');
}

/** Waits until the entry for `id` is deferred with a first-recipient reply matching `re`. */
export async function deferredWith(relay: RelayService, id: string, re: RegExp, timeoutMs = 15_000): Promise<QueueEntry> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const e = (await relay.queue.list({ search: id }))[0];
    if (e?.state === 'deferred' && re.test(e.recipients[0]?.lastReply ?? '')) return e;
    if (Date.now() > deadline) throw new Error(`${id}: ${JSON.stringify(e)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
