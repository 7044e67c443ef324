/**
 * SIGHUP reloads the accounts as well as the configuration (RelayService.reload, which `serve`
 * calls on SIGHUP): a paused account gets its next chance at once, a removed account sends nothing
 * more (no cached token, no pooled connection logged in as it), and mail for a route whose account
 * is missing waits for it instead of bouncing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../helpers/cli.js';
import { addAccount, sandboxWithAccount } from '../helpers/accounts.js';
import { deferredWith, relayYaml, submitMessage } from '../helpers/relay.js';
import { RelayService } from '../../src/relay/index.js';
import { parseConfigText } from '../../src/config/index.js';
import { createLogger } from '../../src/core/log.js';

const ALICE = 'alice@contoso.onmicrosoft.com';
const BOB = 'bob@contoso.onmicrosoft.com';
const PASSWORD = 'alice-Passw0rd!';

const fixture = sandboxWithAccount(ALICE, PASSWORD);

/** Long back-off, so that only the reload (not the clock) can explain a delivery. */
function config(relay = '') {
  const yaml = relayYaml(fixture.sb, { relay, delivery: '  messages_per_minute_per_account: 100000' })
    .replace('retry_initial_seconds: 1', 'retry_initial_seconds: 300')
    .replace('retry_max_seconds: 2', 'retry_max_seconds: 600')
    .replace('web:\n  port: 0', `queue:\n  dir: ${join(tempDir(), 'queue')}\nweb:\n  enabled: false`);
  return parseConfigText(yaml, 'reload.yaml').config;
}

/** Retries `id` now (as `relay365 queue retry` would) and waits for its outcome. */
async function retryNow(relay: RelayService, id: string): Promise<void> {
  const entry = (await relay.queue.list({ search: id }))[0]!;
  assert.equal(await relay.queue.retry(entry.id), 1);
  relay.delivery.kick();
}

test('after a reload a paused account is tried at once instead of waiting out its pause', async (t) => {
  const cfg = config();
  const relay = await RelayService.start({ config: cfg, stateDir: fixture.state, log: createLogger({ level: 'silent' }) });
  t.after(() => relay.stop());
  const tenant = fixture.sb.directory.tenant('contoso.onmicrosoft.com')!;
  tenant.smtpAuthDisabled = true;
  t.after(() => {
    tenant.smtpAuthDisabled = false;
  });
  await submitMessage(relay.smtpPort, ALICE, 'paused-1@test', [BOB]);
  await deferredWith(relay, 'paused-1@test', /535 5\.7\.139/);
  tenant.smtpAuthDisabled = false;
  // Fixed, but the account stays paused (5 minutes here): a retry is turned away without a login.
  await retryNow(relay, 'paused-1@test');
  await deferredWith(relay, 'paused-1@test', /451 4\.7\.0 Account .* is paused until/);
  relay.reload(cfg);
  await retryNow(relay, 'paused-1@test');
  await fixture.sb.mail.waitForOutbound((m) => m.messageId === 'paused-1@test', 10_000);
});

test('after a reload a removed account sends nothing more; its mail waits (not bounced) until the account is back', async (t) => {
  // A route that names the account (by-sender would find no account and say "No route").
  const cfg = config(`  routes:\n    m365: { type: smtp, account: ${ALICE}, host: 127.0.0.1, port: ${fixture.sb.endpoints.smtp.port} }\n  default_route: m365`);
  const relay = await RelayService.start({ config: cfg, stateDir: fixture.state, log: createLogger({ level: 'silent' }) });
  t.after(() => relay.stop());
  // Delivered: the relay now holds a token in memory and a pooled connection logged in as Alice.
  await submitMessage(relay.smtpPort, ALICE, 'before-removal@test', [BOB]);
  await fixture.sb.mail.waitForOutbound((m) => m.messageId === 'before-removal@test', 10_000);

  assert.ok(await relay.tokens.store.remove(ALICE));
  t.after(() => addAccount(fixture.sb, fixture.state, ALICE, { password: PASSWORD }));
  relay.reload(cfg);
  await submitMessage(relay.smtpPort, ALICE, 'after-removal@test', [BOB]);
  const entry = await deferredWith(relay, 'after-removal@test', /No account alice@contoso\.onmicrosoft\.com/);
  assert.equal(entry.state, 'deferred', 'a missing account defers its mail; it does not bounce');
  assert.equal(fixture.sb.mail.outbound().some((m) => m.messageId === 'after-removal@test'), false);

  await addAccount(fixture.sb, fixture.state, ALICE, { password: PASSWORD });
  relay.reload(cfg);
  await retryNow(relay, 'after-removal@test');
  await fixture.sb.mail.waitForOutbound((m) => m.messageId === 'after-removal@test', 10_000);
});

test('an account whose sign-in was revoked holds its mail (not bounced) until it is signed in again and reloaded', async (t) => {
  const cfg = config();
  const relay = await RelayService.start({ config: cfg, stateDir: fixture.state, log: createLogger({ level: 'silent' }) });
  t.after(() => relay.stop());
  // A password reset revokes the refresh token (AADSTS50173); the stored access token is dropped
  // so that the next delivery has to use it.
  fixture.sb.directory.user(ALICE)!.tokensValidFrom = Date.now() + 1;
  const rec = (await relay.tokens.store.get(ALICE))!;
  await relay.tokens.store.put({ ...rec, access: {} });
  await submitMessage(relay.smtpPort, ALICE, 'revoked@test', [BOB]);
  const entry = await deferredWith(relay, 'revoked@test', /invalid_grant: AADSTS50173/);
  assert.equal(entry.recipients[0]!.state, 'deferred');
  assert.equal((await relay.tokens.store.get(ALICE))!.state, 'needs-reauth');

  await addAccount(fixture.sb, fixture.state, ALICE, { password: PASSWORD });
  relay.reload(cfg);
  await retryNow(relay, 'revoked@test');
  await fixture.sb.mail.waitForOutbound((m) => m.messageId === 'revoked@test', 10_000);
});
