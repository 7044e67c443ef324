import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createSign, randomBytes, randomUUID, constants as cc } from 'node:crypto';
import { sandbox, https, tokenUrl, TENANT } from '../helpers/sandbox.js';
import { thumbprints } from '../../src/sandbox/ca.js';
import type { Sandbox } from '../../src/sandbox/index.js';

const PUBLIC = '11111111-0000-4000-8000-000000000001';
const CONFIDENTIAL = '11111111-0000-4000-8000-000000000002';
const DAEMON = '11111111-0000-4000-8000-000000000003';
const EXPIRED = '11111111-0000-4000-8000-000000000004';
const NOCONSENT = '11111111-0000-4000-8000-000000000005';
const ALICE = 'alice@contoso.onmicrosoft.com';

let sb: Sandbox;
before(async () => {
  sb = await sandbox({ tokenLifetimeSeconds: 600 });
});
after(() => sb.stop());

const claims = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8'));

function assertEntraError(r: { status: number; json: any }, status: number, error: string, code: number): void {
  assert.equal(r.status, status, JSON.stringify(r.json));
  assert.equal(r.json.error, error);
  assert.deepEqual(r.json.error_codes, [code]);
  assert.match(r.json.error_description, new RegExp(`^AADSTS${code}: .+\\r\\nTrace ID: [0-9a-f-]{36}\\r\\nCorrelation ID: [0-9a-f-]{36}\\r\\nTimestamp: \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ$`));
  assert.match(r.json.timestamp, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/);
  assert.match(r.json.trace_id, /^[0-9a-f-]{36}$/);
  assert.match(r.json.correlation_id, /^[0-9a-f-]{36}$/);
}

test('OIDC discovery and JWKS', async () => {
  const r = await https(sb, `${sb.endpoints.authorityHost}/${TENANT}/v2.0/.well-known/openid-configuration`);
  assert.equal(r.status, 200);
  assert.equal(r.json.token_endpoint, tokenUrl(sb));
  assert.equal(r.json.issuer, `${sb.endpoints.authorityHost}/${sb.tenantId}/v2.0`);
  assert.ok(r.json.device_authorization_endpoint.endsWith('/oauth2/v2.0/devicecode'));
  const keys = await https(sb, r.json.jwks_uri);
  assert.equal(keys.json.keys[0].kty, 'RSA');
});

test('client credentials with a secret: app-only Exchange token with roles', async () => {
  const r = await https(sb, tokenUrl(sb), { form: { client_id: DAEMON, client_secret: 'sandbox-daemon-secret', grant_type: 'client_credentials', scope: 'https://outlook.office365.com/.default' } });
  assert.equal(r.status, 200);
  assert.equal(r.json.token_type, 'Bearer');
  assert.equal(typeof r.json.expires_in, 'number');
  assert.equal(r.json.refresh_token, undefined, 'no refresh token for client credentials');
  const c = claims(r.json.access_token);
  assert.equal(c.aud, 'https://outlook.office365.com');
  assert.deepEqual(c.roles.sort(), ['IMAP.AccessAsApp', 'POP.AccessAsApp', 'SMTP.SendAsApp']);
  assert.equal(c.tid, sb.tenantId);
  assert.equal(c.scp, undefined);
});

test('client credentials via HTTP Basic', async () => {
  const r = await https(sb, tokenUrl(sb), {
    form: { client_id: DAEMON, grant_type: 'client_credentials', scope: 'https://graph.microsoft.com/.default' },
    headers: { authorization: `Basic ${Buffer.from(`${DAEMON}:sandbox-daemon-secret`).toString('base64')}` },
  });
  assert.equal(r.status, 200);
  assert.equal(claims(r.json.access_token).aud, 'https://graph.microsoft.com');
});

function assertion(alg: 'PS256' | 'RS256', opts: { exp?: number; noThumb?: boolean } = {}): string {
  const tp = thumbprints(sb.daemonCertificate.certPem);
  const header: Record<string, string> = { alg, typ: 'JWT' };
  if (!opts.noThumb) {
    if (alg === 'PS256') header['x5t#S256'] = tp.sha256;
    else header.x5t = tp.sha1;
  }
  const now = Math.floor(Date.now() / 1000);
  const payload = { aud: tokenUrl(sb), iss: DAEMON, sub: DAEMON, jti: randomUUID(), nbf: now, iat: now, exp: opts.exp ?? now + 600 };
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
  const signer = createSign('RSA-SHA256').update(input);
  const sig = alg === 'PS256' ? signer.sign({ key: sb.daemonCertificate.keyPem, padding: cc.RSA_PKCS1_PSS_PADDING, saltLength: 32 }) : signer.sign(sb.daemonCertificate.keyPem);
  return `${input}.${sig.toString('base64url')}`;
}

for (const alg of ['PS256', 'RS256'] as const) {
  test(`client credentials with a certificate assertion (${alg})`, async () => {
    const r = await https(sb, tokenUrl(sb), {
      form: { client_id: DAEMON, grant_type: 'client_credentials', scope: 'https://outlook.office365.com/.default', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion(alg) },
    });
    assert.equal(r.status, 200, r.text);
  });
}

test('certificate assertion errors: 50027 no thumbprint, 700024 expired', async () => {
  const base = { client_id: DAEMON, grant_type: 'client_credentials', scope: 'https://outlook.office365.com/.default', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer' };
  assertEntraError(await https(sb, tokenUrl(sb), { form: { ...base, client_assertion: assertion('PS256', { noThumb: true }) } }), 400, 'invalid_request', 50027);
  assertEntraError(await https(sb, tokenUrl(sb), { form: { ...base, client_assertion: assertion('PS256', { exp: Math.floor(Date.now() / 1000) - 3600 }) } }), 401, 'invalid_client', 700024);
});

test('error states arise from the directory', async () => {
  const cc = (over: Record<string, string>, tenant = TENANT) =>
    https(sb, tokenUrl(sb, tenant), { form: { client_id: DAEMON, client_secret: 'sandbox-daemon-secret', grant_type: 'client_credentials', scope: 'https://outlook.office365.com/.default', ...over } });
  assertEntraError(await cc({ client_secret: 'wrong' }), 401, 'invalid_client', 7000215);
  assertEntraError(await cc({ client_id: EXPIRED, client_secret: 'sandbox-expired-secret' }), 401, 'invalid_client', 7000222);
  assertEntraError(await cc({ client_id: randomUUID() }), 400, 'unauthorized_client', 700016);
  assertEntraError(await cc({}, 'nosuchtenant.onmicrosoft.com'), 400, 'invalid_request', 90002);
  assertEntraError(await cc({}, 'common'), 400, 'invalid_request', 9001023);
  assertEntraError(await cc({ scope: 'https://outlook.office.com/SMTP.Send' }), 400, 'invalid_scope', 1002012);
  assertEntraError(await cc({ scope: 'https://foo.microsoft.com/x' }), 400, 'invalid_scope', 70011);
  const secretId = await cc({ client_secret: 'd4e5f6a7-0000-4000-8000-00000000da3e' });
  assert.match(secretId.json.error_description, /client secret value, not the client secret ID/);
});

test('device code flow: fields, pending, approval, tokens with refresh token', async () => {
  const dc = await https(sb, `${sb.endpoints.authorityHost}/organizations/oauth2/v2.0/devicecode`, { form: { client_id: PUBLIC, scope: 'offline_access https://outlook.office.com/SMTP.Send' } });
  assert.equal(dc.status, 200);
  assert.deepEqual(Object.keys(dc.json).sort(), ['device_code', 'expires_in', 'interval', 'message', 'user_code', 'verification_uri']);
  assert.equal(dc.json.expires_in, 900);
  assert.match(dc.json.message, new RegExp(`open the page ${dc.json.verification_uri.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} and enter the code ${dc.json.user_code} to authenticate\\.$`));
  const poll = () => https(sb, `${sb.endpoints.authorityHost}/organizations/oauth2/v2.0/token`, { form: { client_id: PUBLIC, grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: dc.json.device_code } });
  assertEntraError(await poll(), 400, 'authorization_pending', 70016);
  sb.approveDeviceCode(dc.json.user_code, ALICE);
  const ok = await poll();
  assert.equal(ok.status, 200);
  assert.ok(ok.json.refresh_token);
  const c = claims(ok.json.access_token);
  assert.equal(c.aud, 'https://outlook.office.com');
  assert.equal(c.scp, 'SMTP.Send');
  assert.equal(c.upn, ALICE);
});

test('device code: 7000218 when public client flows are off, 900144 for v1 parameter, 70020 expired', async () => {
  const dc = await https(sb, `${sb.endpoints.authorityHost}/${TENANT}/oauth2/v2.0/devicecode`, { form: { client_id: CONFIDENTIAL, scope: 'https://outlook.office.com/SMTP.Send' } });
  const r = await https(sb, tokenUrl(sb), { form: { client_id: CONFIDENTIAL, grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: dc.json.device_code } });
  assertEntraError(r, 401, 'invalid_client', 7000218);
  const v1 = await https(sb, tokenUrl(sb), { form: { client_id: PUBLIC, grant_type: 'urn:ietf:params:oauth:grant-type:device_code', code: dc.json.device_code } });
  assertEntraError(v1, 400, 'invalid_request', 900144);
  const short = await sandbox({ deviceCodeLifetimeSeconds: 1 });
  try {
    const d = await https(short, `${short.endpoints.authorityHost}/${TENANT}/oauth2/v2.0/devicecode`, { form: { client_id: PUBLIC, scope: 'https://outlook.office.com/SMTP.Send' } });
    await new Promise((res) => setTimeout(res, 1200));
    const e = await https(short, tokenUrl(short), { form: { client_id: PUBLIC, grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: d.json.device_code } });
    assertEntraError(e, 400, 'expired_token', 70020);
  } finally {
    await short.stop();
  }
});

test('authorization code + PKCE (S256), single use, loopback port-agnostic redirect', async () => {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const redirect = 'http://localhost:53682/';
  const url = `${sb.endpoints.authorityHost}/${TENANT}/oauth2/v2.0/authorize?${new URLSearchParams({ client_id: PUBLIC, response_type: 'code', redirect_uri: redirect, scope: 'offline_access https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send', state: 's123', code_challenge: challenge, code_challenge_method: 'S256' })}`;
  const page = await https(sb, url);
  assert.equal(page.status, 200);
  assert.match(page.text, /id="user"/);
  const back = new URL(sb.authorize(url, ALICE));
  assert.equal(back.searchParams.get('state'), 's123');
  const code = back.searchParams.get('code')!;
  const form = { client_id: PUBLIC, grant_type: 'authorization_code', code, redirect_uri: redirect, code_verifier: 'wrong-verifier-wrong-verifier-wrong-verifier' };
  assertEntraError(await https(sb, tokenUrl(sb), { form }), 400, 'invalid_grant', 501481);
  const ok = await https(sb, tokenUrl(sb), { form: { ...form, code_verifier: verifier } });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(claims(ok.json.access_token).scp, 'IMAP.AccessAsUser.All SMTP.Send');
  assertEntraError(await https(sb, tokenUrl(sb), { form: { ...form, code_verifier: verifier } }), 400, 'invalid_grant', 54005);
});

test('confidential web app (SMAIL style redirect) needs its secret at redemption', async () => {
  const redirect = 'http://localhost:8001/myapp/';
  const url = `${sb.endpoints.authorityHost}/${TENANT}/oauth2/v2.0/authorize?${new URLSearchParams({ client_id: CONFIDENTIAL, response_type: 'code', redirect_uri: redirect, scope: 'offline_access https://outlook.office.com/SMTP.Send https://outlook.office.com/POP.AccessAsUser.All' })}`;
  const code = new URL(sb.authorize(url, ALICE)).searchParams.get('code')!;
  assertEntraError(await https(sb, tokenUrl(sb), { form: { client_id: CONFIDENTIAL, grant_type: 'authorization_code', code, redirect_uri: redirect } }), 401, 'invalid_client', 7000218);
  const ok = await https(sb, tokenUrl(sb), { form: { client_id: CONFIDENTIAL, client_secret: 'sandbox-confidential-secret', grant_type: 'authorization_code', code, redirect_uri: redirect } });
  assert.equal(ok.status, 200, ok.text);
  const bad = await https(sb, `${sb.endpoints.authorityHost}/${TENANT}/oauth2/v2.0/authorize?${new URLSearchParams({ client_id: CONFIDENTIAL, response_type: 'code', redirect_uri: 'http://localhost:9999/other/', scope: 'https://outlook.office.com/SMTP.Send' })}`);
  assert.equal(bad.status, 400);
  assert.match(bad.text, /AADSTS50011/);
});

test('refresh: rotation keeps the old token valid; 50173 after a password change; 700082 when inactive', async () => {
  const first = await https(sb, tokenUrl(sb), { form: { client_id: PUBLIC, grant_type: 'password', username: 'bob@contoso.onmicrosoft.com', password: 'bob-Passw0rd!', scope: 'offline_access https://outlook.office.com/SMTP.Send' } });
  assert.equal(first.status, 200, first.text);
  const refresh = (rt: string) => https(sb, tokenUrl(sb), { form: { client_id: PUBLIC, grant_type: 'refresh_token', refresh_token: rt, scope: 'offline_access https://outlook.office.com/SMTP.Send' } });
  const second = await refresh(first.json.refresh_token);
  assert.equal(second.status, 200);
  assert.notEqual(second.json.refresh_token, first.json.refresh_token, 'a new refresh token on every refresh');
  assert.equal((await refresh(first.json.refresh_token)).status, 200, 'the old refresh token stays valid');
  await https(sb, `${sb.endpoints.admin}/users/bob@contoso.onmicrosoft.com/password-changed`, { method: 'POST', body: '' });
  const revoked = await refresh(second.json.refresh_token);
  assertEntraError(revoked, 400, 'invalid_grant', 50173);
  assert.match(revoked.json.error_description, /TokensValidFrom/);

  const alice = await https(sb, tokenUrl(sb), { form: { client_id: PUBLIC, grant_type: 'password', username: ALICE, password: 'alice-Passw0rd!', scope: 'offline_access https://outlook.office.com/SMTP.Send' } });
  await https(sb, `${sb.endpoints.admin}/users/${ALICE}/inactive`, { method: 'POST', body: '' });
  assertEntraError(await refresh(alice.json.refresh_token), 400, 'invalid_grant', 700082);
  await https(sb, `${sb.endpoints.admin}/users/${ALICE}`, { json: { refreshTokensInactive: false } });
});

test('ROPC: wrong password 50126, MFA 50076, conditional access 53003, consent 65001', async () => {
  const ropc = (over: Record<string, string> = {}) =>
    https(sb, tokenUrl(sb), { form: { client_id: PUBLIC, grant_type: 'password', username: 'carol@contoso.onmicrosoft.com', password: 'carol-Passw0rd!', scope: 'https://outlook.office.com/SMTP.Send', ...over } });
  assertEntraError(await ropc({ password: 'nope' }), 400, 'invalid_grant', 50126);
  await https(sb, `${sb.endpoints.admin}/users/carol@contoso.onmicrosoft.com`, { json: { mfaRequired: true } });
  assertEntraError(await ropc(), 400, 'interaction_required', 50076);
  await https(sb, `${sb.endpoints.admin}/users/carol@contoso.onmicrosoft.com`, { json: { mfaRequired: false, blockedByConditionalAccess: true } });
  assertEntraError(await ropc(), 400, 'invalid_grant', 53003);
  await https(sb, `${sb.endpoints.admin}/users/carol@contoso.onmicrosoft.com`, { json: { blockedByConditionalAccess: false } });
  const consent = await ropc({ client_id: NOCONSENT });
  assertEntraError(consent, 400, 'invalid_grant', 65001);
  assert.equal(consent.json.suberror, 'consent_required');
});

test('a bare SMTP.Send scope yields a Graph-audience token (fact sheet §2.1)', async () => {
  const r = await https(sb, tokenUrl(sb), { form: { client_id: PUBLIC, grant_type: 'password', username: ALICE, password: 'alice-Passw0rd!', scope: 'SMTP.Send' } });
  assert.equal(r.status, 200, r.text);
  assert.equal(claims(r.json.access_token).aud, 'https://graph.microsoft.com');
});

test('fault injection on the token endpoint: 503 with Retry-After, then recovery', async () => {
  await https(sb, `${sb.endpoints.admin}/faults`, { json: { stage: 'token', action: { kind: 'http', status: 503, retryAfter: 7 } } });
  const form = { client_id: DAEMON, client_secret: 'sandbox-daemon-secret', grant_type: 'client_credentials', scope: 'https://outlook.office365.com/.default' };
  const failed = await https(sb, tokenUrl(sb), { form });
  assert.equal(failed.status, 503);
  assert.equal(failed.headers['retry-after'], '7');
  assert.equal((await https(sb, tokenUrl(sb), { form })).status, 200);
});
