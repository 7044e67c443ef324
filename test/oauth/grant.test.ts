/**
 * storeGrant(): what a new grant (account add, re-authorization) keeps of the stored tokens.
 * No network: tokens are hand-made JWTs (or opaque strings) in a temporary store.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { tempDir } from '../helpers/cli.js';
import { redactText } from '../../src/core/redact.js';
import { openTokenManager, storeGrant, type AccountRecord, type TokenManager } from '../../src/oauth/index.js';

const EMAIL = 'alice@contoso.onmicrosoft.com';
const TID = '7c8f0d2e-1a2b-4c3d-8e9f-0a1b2c3d4e5f';
const ALICE = 'aaaaaaaa-0000-4000-8000-00000000a11c';
const BOB = 'bbbbbbbb-0000-4000-8000-000000000b0b';
const HOUR = 3600_000;

let serial = 0;
/** An unsigned JWT with the claims that name its owner; each call gives a distinct token. */
function jwt(claims: Record<string, unknown>): string {
  const part = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'none', typ: 'JWT' })}.${part({ ...claims, n: ++serial })}.c2ln`;
}
const userToken = (oid: string, aud = 'https://outlook.office.com', tid = TID) => jwt({ tid, oid, aud, scp: 'SMTP.Send' });

function record(over: Partial<AccountRecord> = {}): AccountRecord {
  const now = new Date().toISOString();
  return {
    email: EMAIL,
    tenant: 'contoso.onmicrosoft.com',
    clientId: '11111111-0000-4000-8000-000000000001',
    flow: 'device',
    authorityHost: 'http://127.0.0.1:9',
    purposes: ['smtp', 'imap'],
    credential: { type: 'none' },
    state: 'needs-reauth',
    lastError: { code: 'ACCOUNT_REAUTH_REQUIRED', message: 'AADSTS50173', at: now },
    createdAt: now,
    updatedAt: now,
    ...over,
  };
}

/** A store holding alice's account with a refresh token and cached outlook and graph tokens. */
async function seeded(over: Partial<AccountRecord> = {}, tokens: { outlook?: string; graph?: string } = {}): Promise<{ manager: TokenManager; rec: AccountRecord; old: { outlook: string; graph: string } }> {
  const manager = openTokenManager({ stateDir: tempDir(), env: {} });
  const old = { outlook: tokens.outlook ?? userToken(ALICE), graph: tokens.graph ?? userToken(ALICE, 'https://graph.microsoft.com') };
  const rec = record({ refreshToken: 'old-refresh-token-alice', access: { outlook: { token: old.outlook, expiresAt: Date.now() + HOUR }, graph: { token: old.graph, expiresAt: Date.now() + HOUR } }, ...over });
  await manager.store.put(rec);
  return { manager, rec: (await manager.store.get(EMAIL))!, old };
}

test('re-authorization by the same user: the refresh token is replaced, the graph token is kept', async () => {
  const { manager, rec, old } = await seeded();
  const fresh = userToken(ALICE);
  const r = await storeGrant(manager, rec, { accessToken: fresh, expiresAt: Date.now() + HOUR, refreshToken: 'new-refresh-token-alice' }, 'reauth');
  assert.deepEqual({ group: r.group, kept: r.kept, dropped: r.dropped, identityChanged: r.identityChanged }, { group: 'outlook', kept: ['graph'], dropped: [], identityChanged: false });
  const stored = (await manager.store.get(EMAIL))!;
  assert.equal(stored.refreshToken, 'new-refresh-token-alice');
  assert.equal(stored.access?.outlook?.token, fresh);
  assert.equal(stored.access?.graph?.token, old.graph);
  assert.equal(stored.state, 'valid');
  assert.equal(stored.lastError, undefined);
  // Written through the store: a private file holding the rotated refresh token.
  const file = manager.store.path(EMAIL);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(JSON.parse(readFileSync(file, 'utf8')).refreshToken, 'new-refresh-token-alice');
});

test('re-authorization by another user: tokens of the old user do not survive', async () => {
  const { manager, rec, old } = await seeded();
  const bobs = userToken(BOB);
  const r = await storeGrant(manager, rec, { accessToken: bobs, expiresAt: Date.now() + HOUR, refreshToken: 'new-refresh-token-bob' }, 'reauth');
  assert.deepEqual({ kept: r.kept, dropped: r.dropped, identityChanged: r.identityChanged }, { kept: [], dropped: ['graph'], identityChanged: true });
  const stored = (await manager.store.get(EMAIL))!;
  assert.deepEqual(Object.keys(stored.access ?? {}), ['outlook']);
  assert.equal(stored.access?.outlook?.token, bobs);
  assert.equal(stored.refreshToken, 'new-refresh-token-bob');
  assert.ok(!JSON.stringify(stored).includes(old.graph));
});

test('a grant without a refresh token keeps the old one for the same identity only', async () => {
  const same = await seeded();
  await storeGrant(same.manager, same.rec, { accessToken: userToken(ALICE), expiresAt: Date.now() + HOUR }, 'reauth');
  assert.equal((await same.manager.store.get(EMAIL))!.refreshToken, 'old-refresh-token-alice');

  const other = await seeded();
  const r = await storeGrant(other.manager, other.rec, { accessToken: userToken(BOB), expiresAt: Date.now() + HOUR }, 'reauth');
  assert.equal(r.identityChanged, true);
  assert.equal((await other.manager.store.get(EMAIL))!.refreshToken, undefined);
});

test('another tenant, client or kind of grant is another identity, whatever the token says', async () => {
  const cases: Array<[string, Partial<AccountRecord>]> = [
    ['tenant', { tenant: 'fabrikam.onmicrosoft.com' }],
    ['client', { clientId: '11111111-0000-4000-8000-000000000002' }],
    ['authority', { authorityHost: 'http://127.0.0.1:10' }],
    ['app-only', { flow: 'client-credentials', credential: { type: 'secret', secret: 'a-client-secret' } }],
  ];
  for (const [what, change] of cases) {
    const { manager } = await seeded();
    // `account add` over the existing account with new settings (the CLI allows it).
    const r = await storeGrant(manager, record(change), { accessToken: userToken(ALICE), expiresAt: Date.now() + HOUR }, 'add');
    assert.deepEqual({ dropped: r.dropped, identityChanged: r.identityChanged }, { dropped: ['graph'], identityChanged: true }, what);
    const stored = (await manager.store.get(EMAIL))!;
    assert.deepEqual(Object.keys(stored.access ?? {}), ['outlook'], what);
    assert.equal(stored.refreshToken, undefined, `${what}: the old identity's refresh token is gone`);
    assert.equal(stored.tenant, record(change).tenant, what);
  }
});

test('add over an account with the same settings and user keeps its other token; a new account has only the new one', async () => {
  const { manager, old } = await seeded();
  const r = await storeGrant(manager, record({ purposes: ['graph'] }), { accessToken: userToken(ALICE, 'https://graph.microsoft.com'), expiresAt: Date.now() + HOUR, refreshToken: 'rt-2' }, 'add');
  assert.deepEqual({ group: r.group, kept: r.kept }, { group: 'graph', kept: ['outlook'] });
  assert.equal((await manager.store.get(EMAIL))!.access?.outlook?.token, old.outlook);

  const empty = openTokenManager({ stateDir: tempDir(), env: {} });
  const n = await storeGrant(empty, record(), { accessToken: userToken(ALICE), expiresAt: Date.now() + HOUR, refreshToken: 'rt-1' }, 'add');
  assert.deepEqual({ kept: n.kept, dropped: n.dropped, identityChanged: n.identityChanged }, { kept: [], dropped: [], identityChanged: false });
  assert.equal((await empty.store.get(EMAIL))!.refreshToken, 'rt-1');
});

test('opaque tokens cannot be matched to a user: the other token is dropped, the refresh token stays', async () => {
  const { manager } = await seeded({}, { outlook: 'EwBopaque-outlook-token-1', graph: 'EwBopaque-graph-token-1' });
  const r = await storeGrant(manager, (await manager.store.get(EMAIL))!, { accessToken: 'EwBopaque-outlook-token-2', expiresAt: Date.now() + HOUR }, 'reauth');
  assert.deepEqual({ kept: r.kept, dropped: r.dropped, identityChanged: r.identityChanged }, { kept: [], dropped: ['graph'], identityChanged: false });
  const stored = (await manager.store.get(EMAIL))!;
  assert.deepEqual(Object.keys(stored.access ?? {}), ['outlook']);
  assert.equal(stored.refreshToken, 'old-refresh-token-alice');
});

test('re-authorization keeps the stored settings; the manager forgets its cached tokens', async () => {
  const { manager, rec, old } = await seeded({ mailbox: 'info@contoso.onmicrosoft.com' });
  assert.equal((await manager.getAccessToken(EMAIL)).token, old.outlook, 'served from the store and now cached in memory');
  const fresh = userToken(ALICE);
  await storeGrant(manager, { ...rec, mailbox: undefined, flow: 'browser' }, { accessToken: fresh, expiresAt: Date.now() + HOUR, refreshToken: 'rt-new' }, 'reauth');
  const t = await manager.getAccessToken(EMAIL);
  assert.equal(t.token, fresh, 'not the token cached before the re-authorization');
  assert.equal(t.username, 'info@contoso.onmicrosoft.com');
  assert.equal((await manager.store.get(EMAIL))!.flow, 'browser');
});

test('the new tokens are registered as secrets: logs and errors mask them', async () => {
  const { manager, rec } = await seeded();
  const access = `plain-access-value-${process.pid}-${Date.now()}`;
  const refresh = `plain-refresh-value-${process.pid}-${Date.now()}`;
  assert.equal(redactText(`token ${access} and ${refresh}`), `token ${access} and ${refresh}`, 'no pattern masks these values by shape');
  await storeGrant(manager, rec, { accessToken: access, expiresAt: Date.now() + HOUR, refreshToken: refresh }, 'reauth');
  const text = redactText(`token ${access} and ${refresh}`);
  assert.ok(!text.includes(access) && !text.includes(refresh), text);
});
