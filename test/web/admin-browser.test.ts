/**
 * The admin page in a real browser (Debian's Chromium through playwright-core): log in, watch the
 * queue fill while no account exists, add accounts through the sandbox's sign-in page (browser
 * authorization code) and a device code, retry a deferred message, watch the queue drain, and
 * look for secrets in every page. Screenshots go to test-artifacts/web/.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { sandbox } from '../helpers/sandbox.js';
import { repoRoot } from '../helpers/cli.js';
import { PUBLIC } from '../helpers/accounts.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { ADMIN_HASH, ADMIN_PASSWORD, CHROMIUM, CHROMIUM_ARGS, relayWithAdmin, sendThroughRelay, type RelayWithAdmin } from './fixture.js';

const skip = !existsSync(CHROMIUM) && 'Debian chromium is not installed (.ci/run installs it)';
const SHOTS = join(repoRoot, 'test-artifacts', 'web');
const BOB = 'bob@contoso.onmicrosoft.com';
const ALICE = 'alice@contoso.onmicrosoft.com';

let sb: Sandbox;
let env: RelayWithAdmin;
let browser: Browser;
let context: BrowserContext;
let page: Page;
/** Every admin page the tests saw, checked for secrets at the end. */
const seen = new Map<string, string>();

async function remember(p: Page = page): Promise<void> {
  seen.set(`${p.url()} #${seen.size}`, await p.content());
}

async function shot(name: string, p: Page = page): Promise<void> {
  await p.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** Fills the Accounts page's "add an account" form (not submitted), pointed at the sandbox. */
async function fillAddAccount(email: string, flow: 'browser' | 'device'): Promise<void> {
  await page.goto(`${env.admin.url}/accounts`);
  await page.fill('#email', email);
  await page.fill('#tenant', 'contoso.onmicrosoft.com');
  await page.fill('#client_id', PUBLIC);
  await page.check(`#add-account input[name=flow][value=${flow}]`);
  if (!(await page.isVisible('#authority_host'))) await page.click('details summary');
  await page.fill('#authority_host', sb.endpoints.authorityHost);
}

/** Opens the sign-in link from a waiting sign-in page and signs in on the sandbox's page in the popup. */
async function signInInPopup(email: string, password: string, consentShot?: string): Promise<void> {
  const [popup] = await Promise.all([context.waitForEvent('page'), page.click('#signin-link')]);
  await popup.waitForSelector('#user');
  await popup.fill('#user', email);
  await popup.fill('#password', password);
  await popup.click('#submit');
  await popup.waitForSelector('#accept');
  if (consentShot) await shot(consentShot, popup);
  await popup.click('#accept');
  await popup.waitForSelector('text=Sign-in complete');
  await popup.close();
  await page.bringToFront();
}

before(async () => {
  if (skip) return;
  mkdirSync(SHOTS, { recursive: true });
  sb = await sandbox();
  env = await relayWithAdmin(sb);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  // The sandbox's identity platform uses its own CA; the admin page is plain http on loopback.
  context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(15_000);
  page = await context.newPage();
});

after(async () => {
  await browser?.close();
  await env?.stop();
  await sb?.stop();
});

test('login: the page asks for a login, a wrong password gets no session, the right one does', { skip }, async () => {
  await page.goto(env.admin.url);
  assert.match(page.url(), /\/login$/);
  await remember();
  await page.fill('#user', 'admin');
  await page.fill('#password', 'not the password');
  await page.click('#login');
  await page.waitForSelector('#login-error');
  assert.match(await page.textContent('#login-error') ?? '', /Wrong user name or password/);
  assert.equal((await context.cookies()).find((c) => c.name === 'relay365_session'), undefined, 'no session after a wrong password');
  await shot('login-failed');
  await page.fill('#user', 'admin');
  await page.fill('#password', ADMIN_PASSWORD);
  await page.click('#login');
  await page.waitForSelector('h1:has-text("Dashboard")');
  const cookie = (await context.cookies()).find((c) => c.name === 'relay365_session');
  assert.ok(cookie, 'session cookie set');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.equal(cookie.secure, false, 'plain http on loopback: no Secure flag');
});

test('dashboard: the queue fills while no account can deliver, with the reason and the fix', { skip }, async () => {
  await page.goto(env.admin.url);
  await page.waitForSelector('#no-accounts');
  await sendThroughRelay(env.relay.smtpPort, BOB, ALICE, 3, 'from the printer');
  // The dashboard refreshes itself: wait for the three deferred messages to show up.
  await page.waitForSelector('#count-deferred .n:text-is("3")', { timeout: 20_000 });
  await page.waitForSelector('#failures');
  const failures = await page.textContent('#failures');
  assert.match(failures ?? '', /451 4\.3\.0 No route: no accounts configured/);
  assert.match(failures ?? '', /Add an account on the Accounts page/);
  assert.match(await page.textContent('#count-incoming .n') ?? '', /^0$/);
  await remember();
  await shot('dashboard-queue-filled');
});

test('accounts: add an account through the browser authorization-code flow on the sandbox sign-in page', { skip }, async () => {
  await fillAddAccount(BOB, 'browser');
  assert.equal(await page.inputValue('#ca_file'), sb.caFile, 'the CA file is pre-filled from delivery.ca_file');
  await shot('accounts-add-form');
  await page.click('#add-submit');
  await page.waitForSelector('#signin-link');
  await remember();
  await shot('signin-waiting');
  await signInInPopup(BOB, 'bob-Passw0rd!', 'sandbox-consent');
  // The waiting page notices by itself.
  await page.waitForSelector('#signin-done', { timeout: 20_000 });
  await remember();
  await shot('signin-done');
  await page.goto(`${env.admin.url}/accounts`);
  const row = await page.textContent('#acct-bob-contoso-onmicrosoft-com');
  assert.match(row ?? '', /valid/);
  assert.match(row ?? '', /browser/);
  assert.match(row ?? '', /min/, 'time left is shown');
  const stored = await env.relay.tokens.store.get(BOB);
  assert.ok(stored?.refreshToken, 'the refresh token is in the store');
  await remember();
});

test('queue: a deferred message shows every attempt with its reply; Retry delivers it; the queue drains', { skip }, async () => {
  await page.goto(`${env.admin.url}/queue?state=deferred`);
  const ids = await page.$$eval('tr[data-id]', (rows) => rows.map((r) => r.getAttribute('data-id')!));
  assert.equal(ids.length, 3);
  await page.click(`a[href="/queue/${ids[0]}"]`);
  await page.waitForSelector('#attempts');
  assert.match(await page.textContent('#attempts') ?? '', /451 4\.3\.0 No route/);
  assert.match(await page.textContent('#entry-state') ?? '', /deferred/);
  await remember();
  await shot('queue-entry-deferred');
  await page.click('#entry-actions button:has-text("Retry now")');
  await page.waitForSelector('.notice.ok');
  await page.waitForSelector('#entry-state:has-text("done")', { timeout: 20_000 });
  const attempts = await page.textContent('#attempts');
  assert.match(attempts ?? '', /250/, 'the second attempt carries the upstream 250 reply');
  assert.match(attempts ?? '', /by-sender:bob@contoso\.onmicrosoft\.com/);
  await remember();
  await shot('queue-entry-delivered');
  const first = await sb.mail.waitForOutbound((o) => o.to.includes(ALICE), 10_000);
  assert.ok(first);

  // The other two wait for their back-off (10 min); retry them all from the queue page.
  await page.goto(`${env.admin.url}/queue`);
  await page.click('button:has-text("Retry all deferred")');
  await page.waitForSelector('.notice.ok');
  await page.goto(env.admin.url);
  await page.waitForSelector('#count-deferred .n:text-is("0")', { timeout: 20_000 });
  await page.waitForSelector('#count-done .n:text-is("3")', { timeout: 20_000 });
  await page.waitForSelector('#no-failures');
  assert.equal(sb.mail.outbound().filter((o) => o.to.includes(ALICE)).length, 3);
  await remember();
});

test('queue: search, hold, release and delete from the page', { skip }, async () => {
  await sendThroughRelay(env.relay.smtpPort, BOB, 'nobody-special@contoso.onmicrosoft.com', 1, 'searchable');
  sb.faults.add({ stage: 'smtp.rcpt', action: { kind: 'reply', reply: '452 4.5.3 Too many recipients' }, match: 'held-one@' });
  await sendThroughRelay(env.relay.smtpPort, BOB, 'held-one@contoso.onmicrosoft.com', 1, 'to hold');
  await page.goto(`${env.admin.url}/queue?q=held-one`);
  await page.waitForSelector('tr[data-id]');
  const id = await page.getAttribute('tr[data-id]', 'data-id');
  assert.equal((await page.$$('tr[data-id]')).length, 1, 'search finds exactly the one message');
  await page.goto(`${env.admin.url}/queue/${id}`);
  await page.waitForSelector('#entry-state:has-text("deferred")', { timeout: 20_000 });
  await page.reload();
  assert.match(await page.textContent('#recipients') ?? '', /452 4\.5\.3/);
  assert.match(await page.textContent('#recipients') ?? '', /Too many recipients in one message/, 'the catalogue explains the reply');
  await page.click('#entry-actions button:has-text("Hold")');
  await page.waitForSelector('.notice.ok');
  assert.match(await page.textContent('#entry-state') ?? '', /hold/);
  await page.click('#entry-actions button:has-text("Release")');
  await page.waitForSelector('.notice.ok');
  assert.match(await page.textContent('#entry-state') ?? '', /deferred|active|done/);
  await page.goto(`${env.admin.url}/queue/${id}`);
  page.once('dialog', (d) => void d.accept());
  await page.waitForSelector('#entry-actions button:has-text("Delete")');
  await page.click('#entry-actions button:has-text("Delete")');
  await page.waitForURL(/\/queue$/);
  assert.match(await page.textContent('.notice.ok') ?? '', /deleted/);
  assert.equal(await env.relay.queue.get(id!), undefined);
});

test('accounts: add a second account with a device code shown on the page', { skip }, async () => {
  await fillAddAccount(ALICE, 'device');
  await page.check('input[name=scopes][value=imap]');
  await page.click('#add-submit');
  await page.waitForSelector('#user-code');
  const code = (await page.textContent('#user-code'))!.trim();
  assert.match(code, /^[A-Z0-9-]{6,}$/);
  await remember();
  await shot('device-code');
  sb.approveDeviceCode(code, ALICE);
  await page.waitForSelector('#signin-done', { timeout: 20_000 });
  await page.goto(`${env.admin.url}/accounts`);
  assert.match(await page.textContent('#acct-alice-contoso-onmicrosoft-com') ?? '', /valid/);
  await page.click('#acct-alice-contoso-onmicrosoft-com button:has-text("Refresh token now")');
  await page.waitForSelector('.notice.ok');
  assert.match(await page.textContent('.notice.ok') ?? '', /refreshed/);
  await remember();
  await shot('accounts');
});

test('accounts: a revoked refresh token shows the error with its fix; re-authorize in the browser', { skip }, async () => {
  // The user changes the password: the refresh token is revoked (AADSTS50173).
  const { https } = await import('../helpers/sandbox.js');
  await https(sb, `${sb.endpoints.admin}/users/${BOB}/password-changed`, { method: 'POST', body: '' });
  await page.goto(`${env.admin.url}/accounts`);
  await page.click('#acct-bob-contoso-onmicrosoft-com button:has-text("Refresh token now")');
  await page.waitForSelector('.notice.bad');
  const row = await page.textContent('#acct-bob-contoso-onmicrosoft-com');
  assert.match(row ?? '', /needs-reauth/);
  assert.match(row ?? '', /AADSTS50173/);
  assert.match(row ?? '', /password/i, 'the cause from the catalogue');
  await page.goto(env.admin.url);
  assert.match(await page.textContent('.account-trouble') ?? '', /needs-reauth/);
  await remember();
  await shot('dashboard-account-trouble');
  await page.goto(`${env.admin.url}/accounts`);
  await page.click('#acct-bob-contoso-onmicrosoft-com button:has-text("Re-authorize (browser)")');
  await page.waitForSelector('#signin-link');
  await signInInPopup(BOB, 'bob-Passw0rd!');
  await page.waitForSelector('#signin-done', { timeout: 20_000 });
  await page.goto(`${env.admin.url}/accounts`);
  assert.match(await page.textContent('#acct-bob-contoso-onmicrosoft-com') ?? '', /valid/);
});

test('configuration view masks secrets; no page the tests saw contains a token, secret or password', { skip }, async () => {
  await page.goto(`${env.admin.url}/config`);
  const config = await page.textContent('#config');
  assert.match(config ?? '', /admin_password_hash: "?\[REDACTED\]/);
  assert.match(config ?? '', /smtp_port: \d+/);
  await remember();
  await shot('config');
  await page.goto(env.admin.url);
  await page.waitForSelector('#count-done');
  await remember();
  await shot('dashboard');

  const secrets = [ADMIN_PASSWORD, ADMIN_HASH, ADMIN_HASH.split('$').at(-1)!, 'bob-Passw0rd!', 'alice-Passw0rd!'];
  for (const rec of await env.relay.tokens.store.list()) {
    if (rec.refreshToken) secrets.push(rec.refreshToken);
    for (const a of Object.values(rec.access ?? {})) if (a?.token) secrets.push(a.token);
  }
  assert.ok(secrets.length >= 7, 'tokens of both accounts are checked');
  const raw = readFileSync(join(env.state, 'accounts', `${BOB}.json`), 'utf8');
  assert.ok(raw.includes('refreshToken'), 'the store holds the refresh token the page must not show');
  assert.ok(seen.size >= 12);
  for (const [url, htmlText] of seen) {
    for (const s of secrets) assert.ok(!htmlText.includes(s), `a secret appears in ${url}`);
    assert.ok(!/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/.test(htmlText), `a JWT appears in ${url}`);
  }
});

test('/metrics matches what went through the relay during the browser session', { skip }, async () => {
  const text = await (await fetch(`${env.admin.url}/metrics`)).text();
  const families = new Map((parsePrometheusTextFormat(text) as Array<{ name: string; metrics: Array<{ value?: string; labels?: Record<string, string> }> }>).map((f) => [f.name, f]));
  assert.equal(Number(families.get('relay365_messages_accepted_total')!.metrics[0]!.value), 5);
  const attempts = families.get('relay365_delivery_attempts_total')!.metrics;
  const sum = (outcome: string) => attempts.filter((m) => m.labels?.outcome === outcome).reduce((n, m) => n + Number(m.value), 0);
  assert.ok(sum('delivered') >= 4, 'three retried messages and the searchable one were delivered');
  assert.ok(sum('deferred') >= 4, 'three without an account, one 452');
  const refreshes = families.get('relay365_token_refreshes_total')!.metrics;
  assert.ok(refreshes.some((m) => m.labels?.result === 'reauth' && Number(m.value) >= 1), 'the revoked token was counted');
  assert.ok(!text.includes(ADMIN_PASSWORD) && !/eyJ/.test(text));
});

test('keyboard only: log in and reach the queue with Tab and Enter; focus is visible', { skip }, async () => {
  const kb = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  try {
    const p = await kb.newPage();
    await p.goto(env.admin.url);
    // Evaluated in the page (as source text: this project compiles without the DOM typings).
    const focused = () =>
      p.evaluate<{ id: string; text: string; outline: string }>(`(() => {
        const el = document.activeElement;
        const style = el ? getComputedStyle(el) : undefined;
        return { id: el?.id ?? '', text: (el?.textContent ?? '').trim(), outline: style ? style.outlineStyle + ' ' + style.boxShadow : '' };
      })()`);
    const tabTo = async (match: (f: { id: string; text: string }) => boolean, what: string) => {
      for (let i = 0; i < 15; i++) {
        await p.keyboard.press('Tab');
        const f = await focused();
        if (match(f)) return f;
      }
      throw new Error(`Tab never reached ${what}`);
    };
    await tabTo((f) => f.id === 'user', 'the user field');
    await p.keyboard.type('admin');
    await p.keyboard.press('Tab');
    assert.equal((await focused()).id, 'password', 'Tab goes from user to password');
    await p.keyboard.type(ADMIN_PASSWORD);
    await p.keyboard.press('Enter');
    await p.waitForSelector('h1:has-text("Dashboard")');
    const link = await tabTo((f) => f.text === 'Queue', 'the Queue link');
    assert.doesNotMatch(link.outline, /^none none$/, 'the focused link shows a focus ring');
    await p.keyboard.press('Enter');
    await p.waitForSelector('h1:has-text("Queue")');
    await shot('keyboard-queue', p);
  } finally {
    await kb.close();
  }
});
