/**
 * A sandbox with accounts for the check tests: alice (delegated, every protocol), carol (delegated,
 * SMTP AUTH disabled for her mailbox), info@ (app-only on the shared mailbox), plus store records
 * derived from them for the error states that cannot be created through `account add`.
 */
import assert from 'node:assert/strict';
import { sandbox } from '../helpers/sandbox.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { openTokenManager, type TokenManager } from '../../src/oauth/index.js';
import { runCheck, type CheckProtocol, type CheckReport } from '../../src/check/index.js';
import type { Sandbox } from '../../src/sandbox/index.js';

export const D = 'contoso.onmicrosoft.com';
export const ALICE = `alice@${D}`;
export const BOB = `bob@${D}`;
export const CAROL = `carol@${D}`;
export const INFO = `info@${D}`;
export const DAEMON = '11111111-0000-4000-8000-000000000003';
export const PUBLIC = '11111111-0000-4000-8000-000000000001';
export const NOSP = '11111111-0000-4000-8000-000000000006';

export interface CheckFixture {
  sb: Sandbox;
  state: string;
  tokens: TokenManager;
  check(account: string, protocols: CheckProtocol[], extra?: { mailbox?: string; sendTestTo?: string; caFile?: string | null; port?: number }): Promise<CheckReport>;
  cliArgs(account: string, protocol: CheckProtocol | 'all', ...extra: string[]): string[];
  stop(): Promise<void>;
}

export async function checkFixture(accounts: Array<'alice' | 'carol' | 'bob' | 'info'>): Promise<CheckFixture> {
  const sb = await sandbox();
  const state = tempDir('relay365-check-');
  const common = ['--state', state, 'account', 'add', '--tenant', D, '--authority-host', sb.endpoints.authorityHost, '--ca-file', sb.caFile];
  for (const a of accounts) {
    const r =
      a === 'info'
        ? await runCli([...common, INFO, '--scopes', 'smtp,imap,pop,graph', '--client-id', DAEMON, '--client-secret-env', 'S'], { env: { S: 'sandbox-daemon-secret' } })
        : await runCli([...common, `${a}@${D}`, '--scopes', a === 'alice' ? 'smtp,imap,pop,graph' : 'smtp,imap,pop', '--client-id', PUBLIC, '--flow', 'password', '--username', `${a}@${D}`, '--password-env', 'PW'], { env: { PW: `${a}-Passw0rd!` } });
    assert.equal(r.code, 0, r.stderr);
  }
  const tokens = openTokenManager({ stateDir: state, caFile: sb.caFile, env: {} });
  const endpoints = {
    smtp: { host: '127.0.0.1', port: sb.endpoints.smtp.port, tls: 'starttls' as const },
    imap: { host: '127.0.0.1', port: sb.endpoints.imap.port, tls: 'implicit' as const },
    pop3: { host: '127.0.0.1', port: sb.endpoints.pop3Stls.port, tls: 'starttls' as const },
  };
  return {
    sb,
    state,
    tokens,
    check: (account, protocols, extra = {}) =>
      runCheck({
        account,
        protocols,
        mailbox: extra.mailbox,
        tokens,
        endpoints: extra.port ? { smtp: { ...endpoints.smtp, port: extra.port } } : endpoints,
        graphUrl: sb.endpoints.graph,
        caFile: extra.caFile === null ? undefined : (extra.caFile ?? sb.caFile),
        sendTestTo: extra.sendTestTo,
        timeoutMs: 5000,
      }),
    cliArgs: (account, protocol, ...extra) => {
      const ep = protocol === 'smtp' ? ['--host', '127.0.0.1', '--port', String(sb.endpoints.smtp.port)] : protocol === 'imap' ? ['--host', '127.0.0.1', '--port', String(sb.endpoints.imap.port)] : protocol === 'pop3' ? ['--host', '127.0.0.1', '--port', String(sb.endpoints.pop3.port)] : [];
      return ['--state', state, 'check', account, '--protocol', protocol, ...ep, '--ca-file', sb.caFile, '--graph-url', sb.endpoints.graph, ...extra];
    },
    stop: () => sb.stop(),
  };
}

/** The last failing step of a report (asserts there is at least one). */
export function failure(report: CheckReport) {
  const failed = report.protocols.flatMap((p) => p.steps.filter((s) => s.status === 'fail'));
  assert.ok(failed.length >= 1, `a step failed: ${JSON.stringify(report, null, 1)}`);
  return failed[failed.length - 1]!;
}

export function step(report: CheckReport, id: string) {
  const s = report.protocols[0]!.steps.find((x) => x.id === id);
  assert.ok(s, `step ${id}`);
  return s;
}
