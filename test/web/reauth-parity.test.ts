/**
 * Re-authorizing an account from the admin page and with `relay365 account reauth` stores the
 * same tokens: a cached token for another resource (Graph) survives a sign-in by the same user and
 * is dropped when someone else signs in. Both paths run against the sandbox's device-code flow.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { sandbox } from '../helpers/sandbox.js';
import { cliEntry, childEnv, repoRoot, tempDir } from '../helpers/cli.js';
import { createLogger } from '../../src/core/log.js';
import { openTokenManager, type AccountRecord } from '../../src/oauth/index.js';
import { SignIns } from '../../src/web/signin.js';
import type { Sandbox } from '../../src/sandbox/index.js';

const PUBLIC = '11111111-0000-4000-8000-000000000001';
const ALICE = 'alice@contoso.onmicrosoft.com';
const BOB = 'bob@contoso.onmicrosoft.com';
const OID = { [ALICE]: 'aaaaaaaa-0000-4000-8000-00000000a11c', [BOB]: 'bbbbbbbb-0000-4000-8000-000000000b0b' };

let sb: Sandbox;
before(async () => {
  sb = await sandbox();
});
after(() => sb.stop());

const claims = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8'));

/** Run the CLI; each JSON line with a device code is approved as `upn`. */
function cliWithDeviceCode(args: string[], upn: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', cliEntry, ...args], { cwd: repoRoot, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
      const m = /"user_code":"([^"]+)"/.exec(String(d));
      if (m) sb.approveDeviceCode(m[1]!, upn);
    });
    child.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A state dir with alice's account (device flow, SMTP) and a real Graph token cached next to it. */
async function seed(): Promise<{ state: string; before: AccountRecord }> {
  const state = tempDir();
  const add = await cliWithDeviceCode(['--state', state, 'account', 'add', ALICE, '--tenant', 'organizations', '--client-id', PUBLIC, '--flow', 'device', '--scopes', 'smtp', '--authority-host', sb.endpoints.authorityHost, '--ca-file', sb.caFile, '--json'], ALICE);
  assert.equal(add.code, 0, add.stderr);
  const m = openTokenManager({ stateDir: state, env: {} });
  const graph = await m.getAccessToken(ALICE, { purpose: 'graph' });
  assert.equal(claims(graph.token).oid, OID[ALICE]);
  const rec = (await m.store.get(ALICE))!;
  assert.ok(rec.refreshToken && rec.access?.outlook && rec.access.graph, 'seeded with a refresh token and two cached tokens');
  return { state, before: rec };
}

async function reauthWithCli(state: string, upn: string): Promise<AccountRecord> {
  const r = await cliWithDeviceCode(['--state', state, 'account', 'reauth', ALICE, '--json'], upn);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /"reauthorized":"alice@contoso\.onmicrosoft\.com"/);
  return (await openTokenManager({ stateDir: state, env: {} }).store.get(ALICE))!;
}

async function reauthOnAdminPage(state: string, upn: string): Promise<AccountRecord> {
  const tokens = openTokenManager({ stateDir: state, env: {} });
  // The relay process had the old Graph token in memory before the sign-in.
  await tokens.getAccessToken(ALICE, { purpose: 'graph' });
  const signIns = new SignIns({ tokens, caFile: sb.caFile, log: createLogger({ level: 'silent' }) });
  const rec = (await tokens.store.get(ALICE))!;
  rec.flow = 'device';
  const s = await signIns.start(rec, 'device', 'reauth');
  assert.ok(s.device?.userCode, s.error?.message);
  sb.approveDeviceCode(s.device.userCode, upn);
  const deadline = Date.now() + 30_000;
  while (signIns.get(s.id)?.status === 'waiting' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert.equal(signIns.get(s.id)?.status, 'done', signIns.get(s.id)?.error?.message);
  const stored = (await tokens.store.get(ALICE))!;
  // What the running relay now uses for Graph: the kept token, or a new one for the new user.
  const graph = await tokens.getAccessToken(ALICE, { purpose: 'graph' });
  assert.equal(claims(graph.token).oid, OID[upn as keyof typeof OID], 'the manager serves no token of the previous user');
  return stored;
}

/** The parts of the stored record a re-authorization decides. */
function outcome(before: AccountRecord, after: AccountRecord) {
  return {
    refreshTokenReplaced: after.refreshToken !== undefined && after.refreshToken !== before.refreshToken,
    outlookReplaced: after.access?.outlook !== undefined && after.access.outlook.token !== before.access?.outlook?.token,
    outlookUser: claims(after.access!.outlook!.token).oid,
    graph: after.access?.graph === undefined ? 'dropped' : after.access.graph.token === before.access?.graph?.token ? 'kept' : 'other',
    state: after.state,
    tenant: after.tenant,
    purposes: after.purposes,
  };
}

/** Re-authorizes as `upn` with the CLI and, on a second copy of the same state, on the admin page: both must decide alike. */
async function reauthBothWays(upn: string) {
  const cli = await seed();
  const web = await seed();
  const viaCli = outcome(cli.before, await reauthWithCli(cli.state, upn));
  const viaWeb = outcome(web.before, await reauthOnAdminPage(web.state, upn));
  assert.deepEqual(viaWeb, viaCli);
  return viaCli;
}

test('same user signs in again: both paths replace the refresh token and keep the cached Graph token', async () => {
  assert.deepEqual(await reauthBothWays(ALICE), { refreshTokenReplaced: true, outlookReplaced: true, outlookUser: OID[ALICE], graph: 'kept', state: 'valid', tenant: 'organizations', purposes: ['smtp'] });
});

test('another user signs in: both paths drop the previous user\'s Graph token', async () => {
  assert.deepEqual(await reauthBothWays(BOB), { refreshTokenReplaced: true, outlookReplaced: true, outlookUser: OID[BOB], graph: 'dropped', state: 'valid', tenant: 'organizations', purposes: ['smtp'] });
});
