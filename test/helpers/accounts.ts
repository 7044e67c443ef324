import assert from 'node:assert/strict';
import type { Sandbox } from '../../src/sandbox/index.js';
import { runCli } from './cli.js';

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
