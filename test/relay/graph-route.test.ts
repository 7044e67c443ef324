/**
 * A graph route through the relay: legacy SMTP in, Microsoft Graph sendMail out (the sandbox's
 * Graph), and Graph refusing the account (403) holding mail instead of bouncing it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sandbox } from '../helpers/sandbox.js';
import { tempDir } from '../helpers/cli.js';
import { addAccount } from '../helpers/accounts.js';
import { deferredWith, relayYaml, submitMessage } from '../helpers/relay.js';
import { RelayService } from '../../src/relay/index.js';
import { parseConfigText } from '../../src/config/index.js';
import { createLogger } from '../../src/core/log.js';
import type { Sandbox } from '../../src/sandbox/index.js';

const ALICE = 'alice@contoso.onmicrosoft.com';
const BOB = 'bob@contoso.onmicrosoft.com';

let sb: Sandbox;
let state: string;
let relay: RelayService;

before(async () => {
  sb = await sandbox({ limits: { messagesPerMinute: 1_000_000 } });
  state = tempDir();
  await addAccount(sb, state, ALICE, { password: 'alice-Passw0rd!', scopes: 'graph' });
  const yaml = relayYaml(sb, { relay: `  routes:\n    g365: { type: graph, account: ${ALICE}, base_url: "${sb.endpoints.graph}" }\n  default_route: g365`, delivery: '  messages_per_minute_per_account: 100000' }).replace('web:\n  port: 0', 'web:\n  enabled: false');
  relay = await RelayService.start({ config: parseConfigText(yaml, 'graph.yaml').config, stateDir: state, log: createLogger({ level: 'silent' }) });
});
after(async () => {
  await relay.stop();
  await sb.stop();
});

test('SMTP in, Graph sendMail out: the message arrives through Graph as the account', async () => {
  await submitMessage(relay.smtpPort, ALICE, 'graph-1@relay365.test', [BOB]);
  const rec = await sb.mail.waitForOutbound((r) => r.messageId === 'graph-1@relay365.test');
  assert.equal(rec.via, 'graph');
  assert.deepEqual(rec.to, [BOB]);
  assert.match(rec.raw.toString('latin1'), /^Subject: graph-1@relay365\.test$/m);
});

test('Graph refusing the account (403) defers the message and pauses the account; it is not bounced', async (t) => {
  sb.faults.add({ stage: 'graph.sendMail', action: { kind: 'http', status: 403, body: { error: { code: 'ErrorAccessDenied', message: 'Access is denied. Check credentials and try again.' } } } });
  t.after(() => sb.faults.clear());
  await submitMessage(relay.smtpPort, ALICE, 'graph-403@relay365.test', [BOB]);
  const entry = await deferredWith(relay, 'graph-403@relay365.test', /403 ErrorAccessDenied/);
  assert.equal(entry.recipients[0]!.state, 'deferred');
  await submitMessage(relay.smtpPort, ALICE, 'graph-403b@relay365.test', [BOB]);
  await deferredWith(relay, 'graph-403b@relay365.test', /Account alice@contoso\.onmicrosoft\.com is paused until .*403 ErrorAccessDenied/);
  assert.equal(sb.mail.outbound().some((r) => r.messageId?.startsWith('graph-403')), false);
});
