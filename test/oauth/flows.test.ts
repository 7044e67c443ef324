import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { statSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { sandbox, https, tokenUrl } from '../helpers/sandbox.js';
import { runCli, tempDir, cliEntry, repoRoot, childEnv } from '../helpers/cli.js';
import { openTokenManager } from '../../src/oauth/index.js';
import type { Sandbox } from '../../src/sandbox/index.js';

const PUBLIC = '11111111-0000-4000-8000-000000000001';
const CONFIDENTIAL = '11111111-0000-4000-8000-000000000002';
const DAEMON = '11111111-0000-4000-8000-000000000003';
const ALICE = 'alice@contoso.onmicrosoft.com';
const TENANT = 'contoso.onmicrosoft.com';

let sb: Sandbox;
before(async () => {
  sb = await sandbox({ tokenLifetimeSeconds: 400 });
});
after(() => sb.stop());

const claims = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8'));

function common(state: string): string[] {
  return ['--state', state];
}

/** Start the CLI and hand each stdout JSON line to `onLine`. */
function interactiveCli(args: string[], onLine: (obj: any) => void | Promise<void>, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', cliEntry, ...args], { cwd: repoRoot, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let pending = '';
    child.stdout.on('data', (d) => {
      stdout += d;
      pending += d;
      let i;
      while ((i = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, i);
        pending = pending.slice(i + 1);
        try {
          void onLine(JSON.parse(line));
        } catch {
          // not a JSON line
        }
      }
    });
    child.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

test('client credentials with a secret from an env var: add, token --decode, --xoauth2', async () => {
  const state = tempDir();
  const add = await runCli([...common(state), 'account', 'add', ALICE, '--tenant', TENANT, '--client-id', DAEMON, '--client-secret-env', 'APP_SECRET', '--authority-host', sb.endpoints.authorityHost, '--ca-file', sb.caFile, '--json'], { env: { APP_SECRET: 'sandbox-daemon-secret' } });
  assert.equal(add.code, 0, add.stderr);
  assert.equal(JSON.parse(add.stdout).flow, 'client-credentials');
  const file = join(state, 'accounts', `${ALICE}.json`);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const decoded = await runCli([...common(state), 'token', ALICE, '--decode']);
  assert.equal(decoded.code, 0, decoded.stderr);
  const c = JSON.parse(decoded.stdout);
  assert.equal(c.aud, 'https://outlook.office365.com');
  assert.ok(c.roles.includes('SMTP.SendAsApp'));
  const x = await runCli([...common(state), 'token', ALICE, '--xoauth2']);
  const sasl = Buffer.from(x.stdout.trim(), 'base64').toString();
  assert.match(sasl, new RegExp(`^user=${ALICE}\\x01auth=Bearer eyJ[^\\x01]+\\x01\\x01$`));
});

test('client credentials with a certificate (PS256 and RS256)', async () => {
  for (const alg of ['PS256', 'RS256']) {
    const state = tempDir();
    const add = await runCli([...common(state), 'account', 'add', 'info@contoso.onmicrosoft.com', '--tenant', sb.tenantId, '--client-id', DAEMON, '--certificate', sb.daemonCertificate.certFile, '--key', sb.daemonCertificate.keyFile, '--cert-alg', alg, '--authority-host', sb.endpoints.authorityHost, '--ca-file', sb.caFile]);
    assert.equal(add.code, 0, add.stderr);
  }
});

test('wrong and expired secrets are reported with the AADSTS code and the fix (exit 1)', async () => {
  const state = tempDir();
  const wrong = await runCli([...common(state), 'account', 'add', ALICE, '--tenant', TENANT, '--client-id', DAEMON, '--client-secret-env', 'S', '--authority-host', sb.endpoints.authorityHost, '--ca-file', sb.caFile], { env: { S: 'd4e5f6a7-0000-4000-8000-00000000da3e' } });
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /AADSTS7000215/);
  assert.match(wrong.stderr, /hint: .*secret ID.*VALUE/);
  const expired = await runCli([...common(state), 'account', 'add', ALICE, '--tenant', TENANT, '--client-id', '11111111-0000-4000-8000-000000000004', '--client-secret-env', 'S', '--authority-host', sb.endpoints.authorityHost, '--ca-file', sb.caFile], { env: { S: 'sandbox-expired-secret' } });
  assert.equal(expired.code, 1);
  assert.match(expired.stderr, /AADSTS7000222/);
  assert.match(expired.stderr, /expired/);
});

test('device code flow driven through the --json prompt', async () => {
  const state = tempDir();
  const r = await interactiveCli([...common(state), 'account', 'add', ALICE, '--tenant', 'organizations', '--client-id', PUBLIC, '--flow', 'device', '--scopes', 'smtp,imap', '--authority-host', sb.endpoints.authorityHost, '--ca-file', sb.caFile, '--json'], (obj) => {
    if (obj.user_code) {
      assert.ok(obj.verification_uri);
      assert.equal(typeof obj.expires_in, 'number');
      sb.approveDeviceCode(obj.user_code, ALICE);
    }
  });
  assert.equal(r.code, 0, r.stderr);
  const rec = JSON.parse(readFileSync(join(state, 'accounts', `${ALICE}.json`), 'utf8'));
  assert.ok(rec.refreshToken);
  assert.equal(claims(rec.access.outlook.token).scp, 'SMTP.Send IMAP.AccessAsUser.All');
});

test('authorization code + PKCE through the loopback redirect (SMAIL-style confidential app and fixed redirect)', async () => {
  const state = tempDir();
  const r = await interactiveCli(
    [...common(state), 'account', 'add', ALICE, '--tenant', TENANT, '--client-id', CONFIDENTIAL, '--flow', 'browser', '--client-secret-env', 'S', '--scopes', 'smtp,pop', '--authority-host', sb.endpoints.authorityHost, '--ca-file', sb.caFile, '--json', '--no-browser'],
    async (obj) => {
      if (obj.authorize_url) {
        let redirect: string;
        try {
          redirect = sb.authorize(obj.authorize_url, ALICE);
        } catch (e) {
          console.error('authorize failed', e);
          throw e;
        }
        assert.match(redirect, /^http:\/\/localhost:\d+\/\?code=/);
        const res = await request(redirect.replace('localhost', '127.0.0.1'));
        assert.equal(res.statusCode, 200);
        await res.body.text();
      }
    },
    { S: 'sandbox-confidential-secret' },
  );
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /"flow":"browser"/);
});

async function addDelegated(state: string, upn: string, password: string): Promise<void> {
  const r = await runCli([...common(state), 'account', 'add', upn, '--tenant', TENANT, '--client-id', PUBLIC, '--flow', 'password', '--username', upn, '--password-env', 'PW', '--authority-host', sb.endpoints.authorityHost, '--ca-file', sb.caFile], { env: { PW: password } });
  assert.equal(r.code, 0, r.stderr);
}

test('single flight: 100 concurrent callers for an expiring token → exactly 1 token request', async () => {
  const state = tempDir();
  await addDelegated(state, ALICE, 'alice-Passw0rd!');
  const manager = openTokenManager({ stateDir: state });
  const before = sb.identity.stats.tokenRequests;
  // 400 s tokens with a 450 s minimum: every caller needs a refresh.
  const tokens = await Promise.all(Array.from({ length: 100 }, () => manager.getAccessToken(ALICE, { purpose: 'smtp', minValiditySeconds: 450 })));
  assert.equal(sb.identity.stats.tokenRequests - before, 1);
  assert.equal(new Set(tokens.map((t) => t.token)).size, 1);
});

test('single flight across two processes sharing the store', async () => {
  const state = tempDir();
  await addDelegated(state, ALICE, 'alice-Passw0rd!');
  // Age the stored token so it is inside the 300 s refresh margin.
  const file = join(state, 'accounts', `${ALICE}.json`);
  const rec = JSON.parse(readFileSync(file, 'utf8'));
  rec.access.outlook.expiresAt = Date.now() + 10_000;
  writeFileSync(file, JSON.stringify(rec), { mode: 0o600 });
  const before = sb.identity.stats.tokenRequests;
  const [a, b] = await Promise.all([runCli([...common(state), 'token', ALICE]), runCli([...common(state), 'token', ALICE])]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  assert.equal(a.stdout, b.stdout);
  // One process refreshes under the lock; the other re-reads the store and finds the new token.
  assert.equal(sb.identity.stats.tokenRequests - before, 1);
});

test('transient failures (503, 429, dropped connection) keep the refresh token and recover', async () => {
  const state = tempDir();
  await addDelegated(state, ALICE, 'alice-Passw0rd!');
  const manager = openTokenManager({ stateDir: state });
  const rt = (await manager.store.get(ALICE))!.refreshToken;
  for (const action of [{ kind: 'http', status: 503 }, { kind: 'http', status: 429, retryAfter: 1 }, { kind: 'drop' }] as const) {
    sb.faults.add({ stage: 'token', action });
    await assert.rejects(manager.getAccessToken(ALICE, { forceRefresh: true }), (e: any) => e.temporary === true && e.code === 'OAUTH_TEMPORARY');
    const rec = (await manager.store.get(ALICE))!;
    assert.equal(rec.refreshToken, rt, 'refresh token kept');
    assert.equal(rec.state, 'valid');
  }
  const fresh = await manager.getAccessToken(ALICE, { forceRefresh: true });
  assert.ok(fresh.token);
  assert.notEqual((await manager.store.get(ALICE))!.refreshToken, rt, 'rotated refresh token persisted');
});

test('50173 (password changed) and 700082 (inactive) move the account to needs-reauth with the fix', async () => {
  const state = tempDir();
  await addDelegated(state, 'bob@contoso.onmicrosoft.com', 'bob-Passw0rd!');
  await https(sb, `${sb.endpoints.admin}/users/bob@contoso.onmicrosoft.com/password-changed`, { method: 'POST', body: '' });
  const r = await runCli([...common(state), 'token', 'bob@contoso.onmicrosoft.com', '--min-validity', '3000']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /AADSTS50173/);
  assert.match(r.stderr, /relay365 account reauth bob@contoso\.onmicrosoft\.com/);
  const list = await runCli([...common(state), 'account', 'list', '--json']);
  const acc = JSON.parse(list.stdout)[0];
  assert.equal(acc.state, 'needs-reauth');
  assert.equal(acc.fix, 'relay365 account reauth bob@contoso.onmicrosoft.com');
  assert.equal(acc.lastError.aadsts, 50173);
});

test('import sasl-xoauth2 and SMAIL token files, then refresh through them; export back', async () => {
  const dir = tempDir();
  const state = tempDir();
  const t = await https(sb, tokenUrl(sb), { form: { client_id: PUBLIC, grant_type: 'password', username: ALICE, password: 'alice-Passw0rd!', scope: 'offline_access https://outlook.office.com/SMTP.Send' } });
  writeFileSync(join(dir, 'sasl-xoauth2.conf'), JSON.stringify({ client_id: PUBLIC, client_secret: '', token_endpoint: tokenUrl(sb) }, null, 2));
  writeFileSync(join(dir, ALICE), JSON.stringify({ access_token: 'aaaaa', refresh_token: t.json.refresh_token, expiry: 0 }, null, 4));
  const imp = await runCli([...common(state), 'token', 'import', join(dir, ALICE), '--sasl-conf', join(dir, 'sasl-xoauth2.conf'), '--ca-file', sb.caFile]);
  assert.equal(imp.code, 0, imp.stderr);
  const tok = await runCli([...common(state), 'token', ALICE, '--decode']);
  assert.equal(tok.code, 0, tok.stderr);
  assert.equal(JSON.parse(tok.stdout).upn, ALICE);
  const exp = await runCli([...common(state), 'token', 'export', ALICE, '--format', 'sasl-xoauth2']);
  const exported = JSON.parse(exp.stdout);
  assert.ok(exported.refresh_token && exported.access_token && exported.expiry > Date.now() / 1000);

  const t2 = await https(sb, tokenUrl(sb), { form: { client_id: CONFIDENTIAL, client_secret: 'sandbox-confidential-secret', grant_type: 'password', username: 'bob@contoso.onmicrosoft.com', password: 'bob-Passw0rd!', scope: 'offline_access https://outlook.office.com/SMTP.Send' } });
  assert.equal(t2.status, 200, t2.text);
  const ini = ['[OAUTH2]', 'UserID=bob@contoso.onmicrosoft.com', `ClientID=${CONFIDENTIAL}`, 'ClientSecret=sandbox-confidential-secret', `RefreshToken=${t2.json.refresh_token}`, `TokenURI=${sb.endpoints.authorityHost}/common/oauth2/v2.0/token`, `OuthURI=${sb.endpoints.authorityHost}/common/oauth2/v2.0/authorize`, 'OAUTH2_TIME_OUT=30', 'Provider=1', ''].join('\r\n');
  writeFileSync(join(dir, 'smail_refresh_token.ini'), ini);
  const imp2 = await runCli([...common(state), 'token', 'import', join(dir, 'smail_refresh_token.ini'), '--ca-file', sb.caFile]);
  assert.equal(imp2.code, 0, imp2.stderr);
  const tok2 = await runCli([...common(state), 'token', 'bob@contoso.onmicrosoft.com', '--decode']);
  assert.equal(tok2.code, 0, tok2.stderr);
  assert.equal(JSON.parse(tok2.stdout).upn, 'bob@contoso.onmicrosoft.com');
});

test('encryption at rest: no plaintext on disk; a wrong key is a clear error', async () => {
  const state = tempDir();
  const key = 'correct horse battery staple';
  const add = await runCli([...common(state), 'account', 'add', ALICE, '--tenant', TENANT, '--client-id', DAEMON, '--client-secret-env', 'S', '--authority-host', sb.endpoints.authorityHost, '--ca-file', sb.caFile], { env: { S: 'sandbox-daemon-secret', RELAY365_STORE_KEY: key } });
  assert.equal(add.code, 0, add.stderr);
  const raw = readFileSync(join(state, 'accounts', `${ALICE}.json`), 'utf8');
  assert.ok(!raw.includes('sandbox-daemon-secret') && !raw.includes('eyJ') && !raw.includes(ALICE));
  assert.equal((await runCli([...common(state), 'token', ALICE], { env: { RELAY365_STORE_KEY: key } })).code, 0);
  const wrong = await runCli([...common(state), 'token', ALICE], { env: { RELAY365_STORE_KEY: 'wrong key' } });
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /could not be decrypted/);
});

test('no token, secret or password in any output at debug log level', async () => {
  const state = tempDir();
  const env = { S: 'sandbox-daemon-secret', PW: 'alice-Passw0rd!', RELAY365_LOG_LEVEL: 'debug' };
  const runs = [
    await runCli([...common(state), '--log-level', 'debug', 'account', 'add', ALICE, '--tenant', TENANT, '--client-id', PUBLIC, '--flow', 'password', '--username', ALICE, '--password-env', 'PW', '--authority-host', sb.endpoints.authorityHost, '--ca-file', sb.caFile, '--json'], { env }),
    await runCli([...common(state), '--log-level', 'debug', 'account', 'add', 'app@contoso.onmicrosoft.com', '--tenant', TENANT, '--client-id', DAEMON, '--client-secret-env', 'S', '--authority-host', sb.endpoints.authorityHost, '--ca-file', sb.caFile], { env }),
    await runCli([...common(state), '--log-level', 'debug', 'account', 'list', '--json'], { env }),
    await runCli([...common(state), '--log-level', 'debug', 'account', 'show', ALICE], { env }),
    await runCli([...common(state), '--log-level', 'debug', 'token', ALICE, '--decode', '--min-validity', '3000'], { env }),
  ];
  const secrets = ['sandbox-daemon-secret', 'alice-Passw0rd!'];
  for (const f of readdirSync(join(state, 'accounts')).filter((n) => n.endsWith('.json'))) {
    const rec = JSON.parse(readFileSync(join(state, 'accounts', f), 'utf8'));
    if (rec.refreshToken) secrets.push(rec.refreshToken);
    for (const a of Object.values<any>(rec.access ?? {})) secrets.push(a.token);
  }
  for (const r of runs) {
    assert.equal(r.code, 0, r.stderr);
    for (const s of secrets) {
      assert.ok(!r.stdout.includes(s), `stdout leaks ${s.slice(0, 12)}…`);
      assert.ok(!r.stderr.includes(s), `stderr leaks ${s.slice(0, 12)}…`);
    }
  }
});

test('idle delegated accounts are refreshed in the background so refresh tokens do not age out', async () => {
  const state = tempDir();
  await addDelegated(state, 'bob@contoso.onmicrosoft.com', 'bob-Passw0rd!');
  await https(sb, `${sb.endpoints.admin}/users/bob@contoso.onmicrosoft.com`, { json: { tokensValidFrom: 0 } });
  const manager = openTokenManager({ stateDir: state });
  const file = join(state, 'accounts', 'bob@contoso.onmicrosoft.com.json');
  const rec = JSON.parse(readFileSync(file, 'utf8'));
  rec.lastRefresh = new Date(Date.now() - 30 * 86_400_000).toISOString();
  writeFileSync(file, JSON.stringify(rec), { mode: 0o600 });
  manager.startBackgroundRefresh(100, 14);
  try {
    for (let i = 0; i < 100 && JSON.parse(readFileSync(file, 'utf8')).lastRefresh === rec.lastRefresh; i++) await new Promise((r) => setTimeout(r, 50));
  } finally {
    manager.stopBackgroundRefresh();
  }
  const after = JSON.parse(readFileSync(file, 'utf8'));
  assert.notEqual(after.lastRefresh, rec.lastRefresh);
  assert.notEqual(after.refreshToken, rec.refreshToken, 'a fresh refresh token (90-day window restarts)');
});

test('a bare SMTP.Send scope is refused with the fix before any request', async () => {
  const r = await runCli(['--state', tempDir(), 'account', 'add', ALICE, '--tenant', TENANT, '--client-id', PUBLIC, '--scope', 'offline_access SMTP.Send', '--authority-host', sb.endpoints.authorityHost, '--ca-file', sb.caFile]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /resolves to Microsoft Graph/);
  assert.match(r.stderr, /hint: Use https:\/\/outlook\.office\.com\/SMTP\.Send/);
});

test('the client secret can be typed at a prompt on a terminal: not echoed, not in ps', async () => {
  const state = tempDir();
  const cmd = [process.execPath, '--import', 'tsx', cliEntry, '--state', state, 'account', 'add', ALICE, '--tenant', TENANT, '--client-id', DAEMON, '--flow', 'client-credentials', '--authority-host', sb.endpoints.authorityHost, '--ca-file', sb.caFile].map((a) => `'${a}'`).join(' ');
  const child = spawn('script', ['-qec', cmd, '/dev/null'], { cwd: repoRoot, env: childEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  const prompted = new Promise<void>((resolve) =>
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('Client secret (input hidden): ')) resolve();
    }),
  );
  await prompted;
  child.stdin.write('sandbox-daemon-secret\r');
  const code = await new Promise((r) => child.on('close', r));
  assert.equal(code, 0, out);
  assert.match(out, /Account alice@contoso\.onmicrosoft\.com added \(client-credentials\)/);
  assert.ok(!out.includes('sandbox-daemon-secret'), 'the secret is not echoed');
});
