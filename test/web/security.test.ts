/**
 * Login, sessions, CSRF and headers of the admin listener, over real HTTP(S) sockets. The
 * dependencies are the real modules (SQLite queue in a temp dir, the token store), without a relay.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { Agent, request } from 'undici';
import { parseConfigText } from '../../src/config/index.js';
import { createLogger } from '../../src/core/log.js';
import { openQueue } from '../../src/queue/index.js';
import { openTokenManager } from '../../src/oauth/index.js';
import { loadOrCreateTls } from '../../src/sandbox/ca.js';
import { startAdminServer, type AdminServer } from '../../src/web/index.js';
import { tempDir } from '../helpers/cli.js';
import { ADMIN_HASH, ADMIN_PASSWORD } from './fixture.js';

const log = createLogger({ level: 'silent' });

async function admin(web: string, t: { after(fn: () => Promise<void>): void }): Promise<AdminServer> {
  const state = tempDir('relay365-websec-');
  const config = parseConfigText(`web:\n  port: 0\n${web}`, 'test.yaml').config;
  const queue = await openQueue({ backend: 'sqlite', max_message_size: config.relay.max_message_size, max_lifetime_seconds: 3600 }, { stateDir: state, log });
  const tokens = openTokenManager({ stateDir: state, env: {} });
  const server = await startAdminServer({ config, stateDir: state, queue, tokens, events: new EventEmitter(), log, port: 0 });
  t.after(async () => {
    await server.stop();
    await queue.close();
  });
  return server;
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  cookies: string[];
}

async function http(url: string, init: { method?: string; cookie?: string; form?: Record<string, string>; headers?: Record<string, string>; dispatcher?: Agent } = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...init.headers };
  if (init.cookie) headers.cookie = init.cookie;
  let body: string | undefined;
  if (init.form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(init.form).toString();
  }
  const res = await request(url, { method: (init.method ?? (body !== undefined ? 'POST' : 'GET')) as 'GET', headers, body, dispatcher: init.dispatcher });
  const text = await res.body.text();
  const sc = res.headers['set-cookie'];
  return { status: res.statusCode, headers: res.headers, text, cookies: sc === undefined ? [] : Array.isArray(sc) ? sc : [sc] };
}

const cookieValue = (r: Reply, name: string) => r.cookies.find((c) => c.startsWith(`${name}=`));

/** GET /login, then POST the form: returns the POST reply and the cookie header the browser would keep. */
async function logIn(base: string, user: string, password: string, dispatcher?: Agent, names = { login: 'relay365_login' }): Promise<Reply> {
  const page = await http(`${base}/login`, { dispatcher });
  const loginCookie = cookieValue(page, names.login)!.split(';')[0]!;
  return http(`${base}/login`, { form: { _csrf: csrfOf(page.text), user, password, next: '/queue' }, cookie: loginCookie, dispatcher });
}

function csrfOf(html: string): string {
  return /name="_csrf" value="([^"]+)"/.exec(html)![1]!;
}

test('pages need a login; probes are public; security headers on every answer', async (t) => {
  const s = await admin(`  admin_password_hash: "${ADMIN_HASH}"\n`, t);
  const root = await http(`${s.url}/`);
  assert.equal(root.status, 303);
  assert.equal(root.headers.location, '/login');
  const deep = await http(`${s.url}/queue?state=deferred`);
  assert.equal(deep.headers.location, `/login?next=${encodeURIComponent('/queue?state=deferred')}`);
  const login = await http(`${s.url}/login`);
  assert.equal(login.status, 200);
  for (const r of [root, login]) {
    assert.match(String(r.headers['content-security-policy']), /default-src 'self'/);
    assert.match(String(r.headers['content-security-policy']), /frame-ancestors 'none'/);
    assert.equal(r.headers['x-frame-options'], 'DENY');
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    assert.equal(r.headers['referrer-policy'], 'no-referrer');
    assert.equal(r.headers['cache-control'], 'no-store');
  }
  assert.ok(!/<script>|<style>| style="| on[a-z]+="/i.test(login.text), 'no inline script or style (CSP would block it)');
  assert.equal((await http(`${s.url}/healthz`)).status, 200);
  assert.equal((await http(`${s.url}/readyz`)).text, 'ready\n');
  const metrics = await http(`${s.url}/metrics`);
  assert.equal(metrics.status, 200);
  assert.match(metrics.text, /relay365_queue_depth\{state="deferred"\} 0/);
  // POST without a session: refused, nothing changes.
  assert.equal((await http(`${s.url}/queue/retry-all`, { form: { _csrf: 'x' } })).status, 403);
});

test('login: wrong password → 401 and no session; right password → session cookie HttpOnly, SameSite=Strict; throttled after 5 failures', async (t) => {
  const s = await admin(`  admin_password_hash: "${ADMIN_HASH}"\n`, t);
  // The login form itself is protected: no token, or a token without its cookie → 403.
  assert.equal((await http(`${s.url}/login`, { form: { user: 'admin', password: ADMIN_PASSWORD } })).status, 403);
  const page = await http(`${s.url}/login`);
  assert.equal((await http(`${s.url}/login`, { form: { _csrf: csrfOf(page.text), user: 'admin', password: ADMIN_PASSWORD } })).status, 403);

  const wrong = await logIn(s.url, 'admin', 'wrong password');
  assert.equal(wrong.status, 401);
  assert.match(wrong.text, /Wrong user name or password/);
  assert.equal(cookieValue(wrong, 'relay365_session'), undefined, 'no session cookie after a wrong password');
  const wrongUser = await logIn(s.url, 'root', ADMIN_PASSWORD);
  assert.equal(wrongUser.status, 401, 'the user name is checked too');

  const ok = await logIn(s.url, 'admin', ADMIN_PASSWORD);
  assert.equal(ok.status, 303);
  assert.equal(ok.headers.location, '/queue', 'back to the page asked for');
  const cookie = cookieValue(ok, 'relay365_session')!;
  assert.match(cookie, /; HttpOnly/);
  assert.match(cookie, /; SameSite=Strict/);
  assert.match(cookie, /; Path=\//);
  assert.doesNotMatch(cookie, /Secure/, 'plain http: no Secure flag');
  const session = cookie.split(';')[0]!;
  const dash = await http(`${s.url}/`, { cookie: session });
  assert.equal(dash.status, 200);
  assert.match(dash.text, /<h1>Dashboard<\/h1>/);
  assert.ok(!dash.text.includes(session.split('=')[1]!), 'the session id is never in the page');

  // A forged session id is no session.
  assert.equal((await http(`${s.url}/`, { cookie: 'relay365_session=forged' })).status, 303);

  // Logout ends the session on the server, not only in the browser.
  const logout = await http(`${s.url}/logout`, { form: { _csrf: csrfOf(dash.text) }, cookie: session });
  assert.equal(logout.status, 303);
  assert.equal((await http(`${s.url}/`, { cookie: session })).status, 303);

  // Throttling (the successful login reset the count): after 5 failures even the right password is refused.
  for (let i = 0; i < 5; i++) assert.equal((await logIn(s.url, 'admin', `nope ${i}`)).status, 401);
  const blocked = await logIn(s.url, 'admin', ADMIN_PASSWORD);
  assert.equal(blocked.status, 429);
  assert.equal(cookieValue(blocked, 'relay365_session'), undefined);
});

test('CSRF: every state-changing POST without the session token → 403; a foreign Origin → 403; with the token → done', async (t) => {
  const s = await admin(`  admin_password_hash: "${ADMIN_HASH}"\n`, t);
  const ok = await logIn(s.url, 'admin', ADMIN_PASSWORD);
  const session = cookieValue(ok, 'relay365_session')!.split(';')[0]!;
  const page = await http(`${s.url}/queue`, { cookie: session });
  const token = csrfOf(page.text);
  for (const path of ['/queue/retry-all', '/queue/0ABC/retry', '/queue/0ABC/delete', '/accounts/add', '/accounts/a%40b.c/reauth', '/accounts/a%40b.c/refresh', '/logout']) {
    assert.equal((await http(`${s.url}${path}`, { form: {}, cookie: session })).status, 403, `${path} without a token`);
    assert.equal((await http(`${s.url}${path}`, { form: { _csrf: `${token.slice(0, -2)}xx` }, cookie: session })).status, 403, `${path} with a wrong token`);
  }
  const foreign = await http(`${s.url}/queue/retry-all`, { form: { _csrf: token }, cookie: session, headers: { origin: 'https://evil.example' } });
  assert.equal(foreign.status, 403, 'a cross-site Origin is refused even with the token');
  const crossSite = await http(`${s.url}/queue/retry-all`, { form: { _csrf: token }, cookie: session, headers: { 'sec-fetch-site': 'cross-site' } });
  assert.equal(crossSite.status, 403);
  // Chromium sends Origin: null with Referrer-Policy no-referrer; Sec-Fetch-Site says same-origin.
  const good = await http(`${s.url}/queue/retry-all`, { form: { _csrf: token }, cookie: session, headers: { origin: 'null', 'sec-fetch-site': 'same-origin' } });
  assert.equal(good.status, 303);
  const after = await http(`${s.url}/queue`, { cookie: session });
  assert.match(after.text, /0 deferred message\(s\) queued for delivery now/);
  // The session still works after refused POSTs; the still-valid session is still the same one.
  assert.equal((await http(`${s.url}/`, { cookie: session })).status, 200);
});

test('a session idle longer than web.session_ttl_seconds is refused; requests keep it alive', async (t) => {
  // The shortest idle timeout the configuration takes (whole seconds), so the test waits seconds.
  const s = await admin(`  admin_password_hash: "${ADMIN_HASH}"\n  session_ttl_seconds: 2\n  public_paths: [/healthz]\n`, t);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const ok = await logIn(s.url, 'admin', ADMIN_PASSWORD);
  assert.equal(ok.status, 303);
  const session = cookieValue(ok, 'relay365_session')!.split(';')[0]!;
  // A request every 0.7 s keeps it past 2 s since the login: the timeout counts idle time only.
  let page = await http(`${s.url}/queue`, { cookie: session });
  assert.equal(page.status, 200);
  for (let i = 1; i <= 4; i++) {
    await sleep(700);
    page = await http(`${s.url}/queue`, { cookie: session });
    assert.equal(page.status, 200, `still logged in ${(i * 0.7).toFixed(1)} s after the login`);
  }
  const csrf = csrfOf(page.text);

  await sleep(2500);
  const expired = await http(`${s.url}/queue`, { cookie: session });
  assert.equal(expired.status, 303, 'idle for longer than the timeout: back to the login');
  assert.equal(expired.headers.location, '/login?next=%2Fqueue');
  // The session is gone on the server: nothing it carried opens anything any more.
  assert.equal((await http(`${s.url}/queue/retry-all`, { form: { _csrf: csrf }, cookie: session })).status, 403);
  assert.equal((await http(`${s.url}/metrics`, { cookie: session })).status, 401);
  const login = await http(`${s.url}/login`, { cookie: session });
  assert.equal(login.status, 200, 'the login form, not a redirect for a live session');
  assert.match(login.text, /name="password"/);
});

test('no admin password configured: the page stays locked, probes still answer', async (t) => {
  const s = await admin('', t);
  const page = await http(`${s.url}/login`);
  assert.match(page.text, /The admin page is locked/);
  assert.match(page.text, /relay365 relay hash-password/);
  assert.ok(!/name="password"/.test(page.text), 'no password form');
  // Even a well-formed login post cannot open it.
  const loginCookie = cookieValue(page, 'relay365_login')!.split(';')[0]!;
  const tryLogin = await http(`${s.url}/login`, { form: { _csrf: loginCookie.split('=')[1]!, user: 'admin', password: '' }, cookie: loginCookie });
  assert.equal(tryLogin.status, 401);
  assert.equal(cookieValue(tryLogin, 'relay365_session'), undefined);
  assert.equal((await http(`${s.url}/healthz`)).status, 200);
});

test('web.public_paths: a probe left out needs an admin session', async (t) => {
  const s = await admin(`  admin_password_hash: "${ADMIN_HASH}"\n  public_paths: [/healthz]\n`, t);
  assert.equal((await http(`${s.url}/healthz`)).status, 200);
  assert.equal((await http(`${s.url}/metrics`)).status, 401);
  assert.equal((await http(`${s.url}/readyz`)).status, 401);
  const ok = await logIn(s.url, 'admin', ADMIN_PASSWORD);
  const session = cookieValue(ok, 'relay365_session')!.split(';')[0]!;
  assert.equal((await http(`${s.url}/metrics`, { cookie: session })).status, 200);
});

test('over TLS the cookies are Secure with the __Host- prefix and HSTS is sent', async (t) => {
  const tls = loadOrCreateTls(tempDir('relay365-webtls-'));
  const certDir = tls.caFile.replace(/ca\.pem$/, '');
  const s = await admin(`  admin_password_hash: "${ADMIN_HASH}"\n  tls_cert_file: ${certDir}server.pem\n  tls_key_file: ${certDir}server.key\n`, t);
  assert.match(s.url, /^https:\/\//);
  const dispatcher = new Agent({ connect: { ca: tls.ca } });
  t.after(() => dispatcher.close());
  const login = await http(`${s.url}/login`, { dispatcher });
  assert.match(cookieValue(login, '__Host-relay365_login') ?? '', /; Secure/);
  assert.match(String(login.headers['strict-transport-security']), /max-age=/);
  const ok = await logIn(s.url, 'admin', ADMIN_PASSWORD, dispatcher, { login: '__Host-relay365_login' });
  assert.equal(ok.status, 303);
  const cookie = cookieValue(ok, '__Host-relay365_session')!;
  assert.match(cookie, /; HttpOnly; SameSite=Strict; Secure/);
});

test('a half TLS configuration is refused with the key named', async () => {
  const state = tempDir('relay365-websec-');
  const config = parseConfigText('web:\n  port: 0\n  tls_cert_file: /nonexistent.pem\n', 'test.yaml').config;
  const queue = await openQueue({ backend: 'sqlite', max_message_size: 1000, max_lifetime_seconds: 3600 }, { stateDir: state, log });
  try {
    await assert.rejects(startAdminServer({ config, stateDir: state, queue, tokens: openTokenManager({ stateDir: state, env: {} }), events: new EventEmitter(), log, port: 0 }), /web\.tls_cert_file and web\.tls_key_file must be set together/);
  } finally {
    await queue.close();
  }
});
