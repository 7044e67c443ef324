import assert from 'node:assert/strict';
import { before, after } from 'node:test';
import type { Sandbox } from '../../src/sandbox/index.js';
import { runCli, tempDir } from './cli.js';
import { sandbox } from './sandbox.js';

export const DAEMON = '11111111-0000-4000-8000-000000000003';
export const PUBLIC = '11111111-0000-4000-8000-000000000001';

/** Adds an account to `state` through the real CLI: app-only (daemon) or delegated (ROPC in the sandbox). */
export async function addAccount(sb: Sandbox, state: string, email: string, kind: { app: true; scopes?: string } | { password: string; scopes?: string }): Promise<void> {
  const base = ['--state', state, 'account', 'add', email, '--tenant', 'contoso.onmicrosoft.com', '--authority-host', sb.endpoints.authorityHost, '--ca-file', sb.caFile, '--scopes', kind.scopes ?? 'smtp'];
  const r =
    'app' in kind
      ? await runCli([...base, '--client-id', DAEMON, '--client-secret-env', 'S'], { env: { S: 'sandbox-daemon-secret' } })
      : await runCli([...base, '--client-id', PUBLIC, '--flow', 'password', '--username', email, '--password-env', 'PW'], { env: { PW: kind.password } });
  assert.equal(r.code, 0, r.stderr);
}

/**
 * For a whole test file: a sandbox (mailbox rate limits raised) and a state directory holding
 * one delegated account. Read `sb` and `state` inside tests (they are set by a before hook).
 */
export function sandboxWithAccount(email: string, password: string): { readonly sb: Sandbox; readonly state: string } {
  const fixture = {} as { sb: Sandbox; state: string };
  before(async () => {
    fixture.sb = await sandbox({ limits: { messagesPerMinute: 1_000_000 } });
    fixture.state = tempDir();
    await addAccount(fixture.sb, fixture.state, email, { password });
  });
  after(() => fixture.sb.stop());
  return fixture;
}
