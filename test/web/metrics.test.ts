import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { request } from 'undici';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { sandbox, https } from '../helpers/sandbox.js';
import { tempDir, repoRoot } from '../helpers/cli.js';
import { addAccount } from '../helpers/accounts.js';
import { RelayService } from '../../src/relay/index.js';
import { adminOptionsFor, startAdminServer } from '../../src/web/index.js';
import { relayConfig } from '../helpers/relay.js';
import { createLogger } from '../../src/core/log.js';

const run = promisify(execFile);

type Family = { name: string; metrics: Array<{ value?: string; labels?: Record<string, string>; buckets?: Record<string, string> }> };

async function scrape(url: string): Promise<Map<string, Family>> {
  const res = await request(`${url}/metrics`);
  assert.equal(res.statusCode, 200);
  const families = parsePrometheusTextFormat(await res.body.text()) as Family[];
  return new Map(families.map((f) => [f.name, f]));
}

test('/metrics values match the traffic; /healthz and /readyz', async () => {
  const sb = await sandbox();
  const state = tempDir();
  await addAccount(sb, state, 'alice@contoso.onmicrosoft.com', { password: 'alice-Passw0rd!' });
  const relay = await RelayService.start({ config: relayConfig(sb), stateDir: state, log: createLogger({ level: 'silent' }) });
  const ops = await startAdminServer({ ...adminOptionsFor(relay), log: createLogger({ level: 'silent' }), port: 0 });
  try {
    sb.faults.add({ stage: 'smtp.rcpt', action: { kind: 'reply', reply: '550 5.1.10 RESOLVER.ADR.RecipientNotFound' }, match: 'nobody@' });
    await run('python3', [join(repoRoot, 'test/helpers/smtp-client.py'), String(relay.smtpPort), 'alice@contoso.onmicrosoft.com', 'bob@contoso.onmicrosoft.com', '3', 'm'], { timeout: 30_000 });
    await run('python3', [join(repoRoot, 'test/helpers/smtp-client.py'), String(relay.smtpPort), 'alice@contoso.onmicrosoft.com', 'nobody@contoso.onmicrosoft.com', '1', 'n'], { timeout: 30_000 });
    // 3 delivered + 1 bounced + its DSN delivered back to alice.
    await sb.mail.waitForOutbound((o) => o.to.includes('alice@contoso.onmicrosoft.com'), 15_000);
    await new Promise((r) => setTimeout(r, 300));
    const m = await scrape(ops.url);
    assert.equal(Number(m.get('relay365_messages_accepted_total')!.metrics[0]!.value), 4);
    assert.equal(Number(m.get('relay365_inbound_connections_total')!.metrics[0]!.value), 4);
    const attempts = m.get('relay365_delivery_attempts_total')!.metrics;
    const count = (outcome: string) => attempts.filter((x) => x.labels?.outcome === outcome).reduce((n, x) => n + Number(x.value), 0);
    assert.equal(count('delivered'), 4, 'three messages and the DSN');
    assert.equal(count('bounced'), 1);
    const depth = m.get('relay365_queue_depth')!.metrics;
    assert.equal(Number(depth.find((d) => d.labels?.state === 'done')!.value), 4);
    assert.equal(Number(depth.find((d) => d.labels?.state === 'bounced')!.value), 1);
    assert.equal(m.get('relay365_delivery_duration_seconds')!.metrics.reduce((n, x) => n + Number(x.buckets?.['+Inf'] ?? 0), 0), 5);
    const replies = m.get('relay365_upstream_replies_total')!.metrics;
    assert.equal(Number(replies.find((r) => r.labels?.code === '250')!.value), 4);
    assert.equal((await request(`${ops.url}/healthz`)).statusCode, 200);
    assert.equal((await request(`${ops.url}/readyz`)).statusCode, 200);
    const text = await (await request(`${ops.url}/metrics`)).body.text();
    assert.ok(!/eyJ|Bearer|alice-Passw0rd/.test(text), 'no secrets in metrics');
    // An account that needs re-authorization makes the relay not ready.
    await https(sb, `${sb.endpoints.admin}/users/alice@contoso.onmicrosoft.com/password-changed`, { method: 'POST', body: '' });
    await relay.tokens.getAccessToken('alice@contoso.onmicrosoft.com', { forceRefresh: true }).catch(() => undefined);
    const notReady = await request(`${ops.url}/readyz`);
    assert.equal(notReady.statusCode, 503);
    assert.match(await notReady.body.text(), /relay365 account reauth alice@contoso\.onmicrosoft\.com/);
  } finally {
    await ops.stop();
    await relay.stop();
    await sb.stop();
  }
});
