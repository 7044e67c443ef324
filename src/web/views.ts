/**
 * The admin pages, rendered on the server. Every view is a function of data → Html; nothing here
 * talks to the queue or the token store (server.ts gathers the data), so views stay easy to read
 * and to test.
 */
import { explainAadsts, explainReply } from '../core/catalogue.js';
import type { AccountSummary } from '../oauth/index.js';
import type { QueueCounts, QueueEntry, QueueState } from '../queue/index.js';
import { trafficChart } from './chart.js';
import type { MinuteBucket } from './history.js';
import { formatBytes, formatDuration, formatTime, html, verbatim, type Html } from './html.js';
import type { SignIn } from './signin.js';

export const QUEUE_STATES: QueueState[] = ['incoming', 'active', 'deferred', 'hold', 'done', 'bounced'];

export interface PageContext {
  /** The logged-in admin, undefined on the login page. */
  user?: string;
  csrf?: string;
  flash?: { kind: 'ok' | 'bad' | 'warn' | 'info'; text: string };
}

type Section = 'dashboard' | 'queue' | 'accounts' | 'config' | 'login';

const NAV: Array<[Section, string, string]> = [
  ['dashboard', '/', 'Dashboard'],
  ['queue', '/queue', 'Queue'],
  ['accounts', '/accounts', 'Accounts'],
  ['config', '/config', 'Configuration'],
];

export function csrfField(ctx: PageContext): Html {
  return html`<input type="hidden" name="_csrf" value="${verbatim(ctx.csrf ?? '')}">`;
}

/** A POST button in its own small form (with the CSRF token). */
export function postButton(ctx: PageContext, action: string, label: string, opts: { kind?: 'secondary' | 'danger'; confirm?: string; fields?: Record<string, string> } = {}): Html {
  const fields = Object.entries(opts.fields ?? {}).map(([k, v]) => html`<input type="hidden" name="${k}" value="${verbatim(v)}">`);
  return html`<form class="inline" method="post" action="${verbatim(action)}"${opts.confirm ? html` data-confirm="${opts.confirm}"` : ''}>${csrfField(ctx)}${fields}<button type="submit"${opts.kind ? html` class="${opts.kind}"` : ''}>${label}</button></form>`;
}

export function layout(ctx: PageContext, section: Section, title: string, body: Html): string {
  const nav = ctx.user
    ? html`<nav class="main" aria-label="Main">${NAV.map(([id, href, label]) => html`<a href="${href}"${id === section ? html` aria-current="page"` : ''}>${label}</a>`)}</nav>
<div class="who"><span>Signed in as <b>${ctx.user}</b></span><form class="inline" method="post" action="/logout">${csrfField(ctx)}<button type="submit" class="secondary">Log out</button></form></div>`
    : '';
  const flash = ctx.flash ? html`<div class="notice ${ctx.flash.kind}" role="status">${ctx.flash.text}</div>` : '';
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · relay365</title>
<link rel="icon" href="/static/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/app.css">
<script src="/static/app.js" defer></script>
</head>
<body>
<a class="skip" href="#content">Skip to content</a>
<header class="top"><div class="inner"><a class="brand" href="/">relay<span>365</span></a>${nav}</div></header>
<main id="content" tabindex="-1">
${flash}${body}
</main>
<footer>relay365 admin · times in UTC on hover · this page never shows tokens, secrets or passwords</footer>
</body>
</html>
`.value;
}

// ---------------------------------------------------------------------------------------------
// Login

export function loginPage(opts: { loginToken: string; error?: string; user?: string; next?: string; disabled?: boolean }): string {
  const body = opts.disabled
    ? html`<div class="login card"><h1>relay365 admin</h1>
<div class="notice warn" role="alert"><p><b>The admin page is locked.</b> No admin password is configured.</p>
<p>Create a hash, put it in the configuration file and reload the relay (<code>systemctl reload relay365</code>, i.e. SIGHUP). Metrics and health checks answer meanwhile.</p>
<pre class="mono">echo -n 'a long passphrase' | relay365 relay hash-password</pre>
<pre class="mono">web:\n  admin_password_hash: "scrypt$…"</pre></div></div>`
    : html`<div class="login card"><h1>relay365 admin</h1>
${opts.error ? html`<div class="notice bad" role="alert" id="login-error">${opts.error}</div>` : ''}
<form method="post" action="/login">
<input type="hidden" name="_csrf" value="${verbatim(opts.loginToken)}">
<input type="hidden" name="next" value="${opts.next ?? '/'}">
<label for="user">User</label>
<input type="text" id="user" name="user" autocomplete="username" required${opts.user ? '' : ' autofocus'} value="${opts.user ?? ''}">
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required${opts.user ? ' autofocus' : ''}>
<button type="submit" id="login">Log in</button>
</form></div>`;
  return layout({}, 'login', 'Log in', body);
}

// ---------------------------------------------------------------------------------------------
// Explanations

/** The cause and fix for an upstream reply or a relay365 message, from the error catalogue. */
export function explanation(text: string | undefined): { cause: string; fix: string } | undefined {
  if (!text) return undefined;
  // explainReply() falls back to an AADSTS code quoted in the text.
  const entry = explainReply(text);
  if (entry) return entry.en;
  // relay365's own deferral reasons (src/relay/delivery.ts).
  if (/No route: no accounts configured/i.test(text)) return { cause: 'No account is configured, so nothing can be delivered yet.', fix: 'Add an account on the Accounts page, then retry the deferred messages.' };
  if (/No route: no account for sender/i.test(text)) return { cause: 'No account matches the envelope sender and no routing rule names one.', fix: 'Add an account for this sender, or a rule in relay.rules that routes it through an existing account (rewrite_sender for devices with a fixed From).' };
  if (/No route: route/i.test(text)) return { cause: 'A routing rule names a route that does not exist.', fix: 'Define the route in relay.routes or fix the rule, then reload (SIGHUP).' };
  if (/is paused until .*daily quota/i.test(text)) return { cause: 'The mailbox exceeded 10,000 recipients in 24 hours; Exchange blocks it for a day.', fix: 'Wait for the window to pass; spread traffic over more mailboxes or use HVE.' };
  if (/needs to be signed in again|re-?authori[sz]/i.test(text)) return { cause: 'The account\'s sign-in is no longer valid.', fix: 'Re-authorize the account on the Accounts page.' };
  if (/ECONNREFUSED|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|socket hang up/i.test(text)) return { cause: 'The upstream server could not be reached.', fix: 'Check DNS, the firewall and outbound port 587; relay365 retries with back-off.' };
  return undefined;
}

function explained(text: string | undefined): Html {
  const e = explanation(text);
  if (!e) return html``;
  return html`<p class="explain"><b>Why:</b> ${e.cause} <b>Fix:</b> ${e.fix}</p>`;
}

function stateBadge(state: string): Html {
  const kind = { done: 'ok', valid: 'ok', delivered: 'ok', deferred: 'warn', hold: 'warn', pending: 'info', incoming: 'info', active: 'info', partial: 'warn', bounced: 'bad', failed: 'bad', 'needs-reauth': 'bad', error: 'bad' }[state] ?? 'muted';
  return html`<span class="badge ${kind}">${state}</span>`;
}

function recipientsSummary(e: QueueEntry, max = 2): Html {
  const list = e.recipients.map((r) => r.address);
  const shown = list.slice(0, max).join(', ');
  return html`${shown}${list.length > max ? html` <span class="muted">+${list.length - max}</span>` : ''}`;
}

// ---------------------------------------------------------------------------------------------
// Dashboard

export interface DashboardData {
  counts: QueueCounts;
  history: MinuteBucket[];
  /** When this process started counting (epoch ms). */
  startedAt: number;
  failures: QueueEntry[];
  accounts: AccountSummary[];
  queueError?: string;
}

export function dashboardPage(ctx: PageContext, d: DashboardData): string {
  const cls: Record<QueueState, string> = { incoming: '', active: '', deferred: d.counts.deferred ? 'warn' : '', hold: d.counts.hold ? 'warn' : '', done: 'ok', bounced: d.counts.bounced ? 'bad' : '' };
  // Also valid accounts whose login a server refused: their mail waits just the same.
  const troubled = d.accounts.filter((a) => a.state !== 'valid' || a.lastError);
  const body = html`<h1>Dashboard</h1>
<div id="dashboard" data-refresh="3">
${d.queueError ? html`<div class="notice bad" role="alert"><b>The queue does not answer:</b> ${d.queueError}</div>` : ''}
${d.accounts.length === 0 ? html`<div class="notice warn" id="no-accounts">No account is configured: messages wait in the queue until one is added. <a href="/accounts#add">Add an account</a>.</div>` : ''}
${troubled.map((a) => html`<div class="notice bad account-trouble">Account <b>${a.email}</b> ${a.state === 'valid' ? html`has a valid token, but its login was refused` : html`is <b>${a.state}</b>`}${a.lastError ? html`: ${a.lastError.message}` : ''}. <a href="/accounts#acct-${accountAnchor(a.email)}">Fix it on the Accounts page</a>.</div>`)}
<section aria-labelledby="depth-h"><h2 id="depth-h">Queue</h2>
<div class="cards">${QUEUE_STATES.map((s) => html`<a class="stat ${cls[s]}" href="/queue?state=${s}" id="count-${s}"><span class="n">${d.counts[s]}</span><span class="label">${s}</span></a>`)}</div>
</section>
<section aria-labelledby="rate-h"><h2 id="rate-h">Messages per minute <span class="muted">— last hour${Date.now() - d.startedAt < 3600_000 ? html`, since the relay started ${formatTime(d.startedAt)}` : ''}</span></h2>
${trafficChart(d.history)}
</section>
<section aria-labelledby="fail-h"><h2 id="fail-h">Recent failures</h2>
${d.failures.length === 0
  ? html`<p class="card empty" id="no-failures">No deferred, held or bounced messages.</p>`
  : html`<table id="failures"><thead><tr><th scope="col">Queue id</th><th scope="col">State</th><th scope="col">From → to</th><th scope="col">Attempts</th><th scope="col">Last reply and what to do</th></tr></thead><tbody>
${d.failures.map((e) => html`<tr><td class="mono"><a href="/queue/${verbatim(e.id)}">${verbatim(e.id)}</a></td><td>${stateBadge(e.state)}</td><td>${e.sender || '<>'} → ${recipientsSummary(e)}</td><td class="num">${e.attempts}</td><td><div class="reply">${e.lastError ?? ''}</div>${explained(e.lastError)}</td></tr>`)}
</tbody></table>`}
</section>
</div>`;
  return layout(ctx, 'dashboard', 'Dashboard', body);
}

/** The id of an account's row on the Accounts page (without the `acct-` prefix). */
export function accountAnchor(email: string): string {
  return email.toLowerCase().replace(/[^a-z0-9]+/g, '-');
}

// ---------------------------------------------------------------------------------------------
// Queue

export interface QueueListData {
  entries: QueueEntry[];
  counts: QueueCounts;
  state?: QueueState;
  search: string;
  offset: number;
  limit: number;
}

export function queueListPage(ctx: PageContext, d: QueueListData): string {
  const query = (offset: number) => `/queue?${new URLSearchParams({ ...(d.state ? { state: d.state } : {}), ...(d.search ? { q: d.search } : {}), offset: String(offset) }).toString()}`;
  const body = html`<h1>Queue</h1>
<form class="filters" method="get" action="/queue" role="search">
<div><label for="q">Search</label><input type="search" id="q" name="q" value="${d.search}" placeholder="queue id, sender, recipient, Message-ID"></div>
<div><label for="state">State</label><select id="state" name="state"><option value="">all</option>${QUEUE_STATES.map((s) => html`<option value="${s}"${d.state === s ? ' selected' : ''}>${s} (${d.counts[s]})</option>`)}</select></div>
<div><button type="submit">Search</button></div>
</form>
${d.counts.deferred ? html`<div class="actions bulk">${postButton(ctx, '/queue/retry-all', `Retry all deferred (${d.counts.deferred})`, { kind: 'secondary' })}</div>` : ''}
<div id="queue-list" data-refresh="5">
${d.entries.length === 0
  ? html`<p class="card empty">No messages${d.state ? html` in state ${d.state}` : ''}${d.search ? html` matching “${d.search}”` : ''}.</p>`
  : html`<table><thead><tr><th scope="col">Queue id</th><th scope="col">State</th><th scope="col">From</th><th scope="col">To</th><th scope="col">Size</th><th scope="col">Received</th><th scope="col">Attempts</th><th scope="col">Next attempt / last reply</th></tr></thead><tbody>
${d.entries.map((e) => html`<tr data-id="${verbatim(e.id)}"><td class="mono"><a href="/queue/${verbatim(e.id)}">${verbatim(e.id)}</a></td><td>${stateBadge(e.state)}</td><td>${e.sender || '<>'}</td><td>${recipientsSummary(e)}</td><td class="num">${formatBytes(e.size)}</td><td>${formatTime(e.createdAt)}</td><td class="num">${e.attempts}</td><td>${e.state === 'deferred' ? html`${formatTime(e.nextAttemptAt)}<br>` : ''}<span class="reply">${e.state === 'done' ? '' : (e.lastError ?? '')}</span></td></tr>`)}
</tbody></table>`}
<div class="pager">${d.offset > 0 ? html`<a href="${query(Math.max(0, d.offset - d.limit))}">← Newer</a>` : ''}${d.entries.length === d.limit ? html`<a href="${query(d.offset + d.limit)}">Older →</a>` : ''}</div>
</div>`;
  return layout(ctx, 'queue', 'Queue', body);
}

export function queueEntryPage(ctx: PageContext, e: QueueEntry): string {
  const path = `/queue/${e.id}`;
  const actions: Html[] = [];
  if (e.state === 'deferred' || e.state === 'hold') actions.push(postButton(ctx, `${path}/retry`, 'Retry now'));
  if (e.state === 'incoming' || e.state === 'deferred') actions.push(postButton(ctx, `${path}/hold`, 'Hold', { kind: 'secondary' }));
  if (e.state === 'hold') actions.push(postButton(ctx, `${path}/release`, 'Release', { kind: 'secondary' }));
  if (e.state !== 'active') actions.push(postButton(ctx, `${path}/delete`, 'Delete', { kind: 'danger', confirm: `Delete message ${e.id}? This cannot be undone.` }));
  const body = html`<p><a href="/queue">← Queue</a></p>
<h1>Message <span class="mono">${verbatim(e.id)}</span></h1>
<div id="entry" data-refresh="${e.state === 'active' || e.state === 'incoming' ? '2' : '10'}">
<div class="grid2">
<div class="card"><dl class="facts">
<dt>State</dt><dd id="entry-state">${stateBadge(e.state)}</dd>
<dt>From</dt><dd>${e.sender || '<> (bounce)'}</dd>
<dt>Size</dt><dd>${formatBytes(e.size)}</dd>
<dt>Received</dt><dd>${formatTime(e.createdAt)}${e.clientIp ? html` from ${e.clientIp}` : ''}${e.authUser ? html` (user ${e.authUser})` : ''}</dd>
${e.messageId ? html`<dt>Message-ID</dt><dd class="mono">${e.messageId}</dd>` : ''}
<dt>Attempts</dt><dd>${e.attempts}</dd>
${e.state === 'deferred' ? html`<dt>Next attempt</dt><dd>${formatTime(e.nextAttemptAt)}</dd>` : ''}
<dt>Expires</dt><dd>${formatTime(e.expiresAt)}</dd>
</dl></div>
<div class="card"><h2>Actions</h2><div class="actions" id="entry-actions">${actions.length ? actions : html`<span class="muted">None while a delivery is running.</span>`}</div></div>
</div>
<h2>Recipients</h2>
<table id="recipients"><thead><tr><th scope="col">Recipient</th><th scope="col">State</th><th scope="col">Last reply</th></tr></thead><tbody>
${e.recipients.map((r) => html`<tr><td>${r.address}</td><td>${stateBadge(r.state)}</td><td><div class="reply">${r.lastReply ?? ''}</div>${r.state !== 'delivered' ? explained(r.lastReply) : ''}</td></tr>`)}
</tbody></table>
<h2>Delivery attempts</h2>
${(e.history ?? []).length === 0
  ? html`<p class="card empty">No delivery attempt yet.</p>`
  : html`<table id="attempts"><thead><tr><th scope="col">When</th><th scope="col">Route</th><th scope="col">Recipients</th><th scope="col">Outcome</th><th scope="col">Duration</th><th scope="col">Reply</th></tr></thead><tbody>
${(e.history ?? []).map((a) => html`<tr><td>${formatTime(a.at)}</td><td>${a.route}</td><td>${a.recipients.join(', ')}</td><td>${stateBadge(a.outcome)}</td><td class="num">${a.durationMs} ms</td><td><div class="reply">${a.reply}</div>${a.outcome !== 'delivered' ? explained(a.reply) : ''}</td></tr>`)}
</tbody></table>`}
</div>`;
  return layout(ctx, 'queue', `Message ${e.id}`, body);
}

// ---------------------------------------------------------------------------------------------
// Accounts

export interface AddAccountForm {
  email: string;
  tenant: string;
  client_id: string;
  flow: 'browser' | 'device';
  scopes: string[];
  mailbox: string;
  authority_host: string;
  ca_file: string;
  cloud: string;
}

export function accountsPage(ctx: PageContext, d: { accounts: AccountSummary[]; form: AddAccountForm; formError?: string; clouds: string[]; signIns: SignIn[] }): string {
  const f = d.form;
  const waiting = d.signIns.filter((s) => s.status === 'waiting');
  const body = html`<h1>Accounts</h1>
${waiting.length ? html`<div class="notice info">Sign-in waiting: ${waiting.map((s) => html`<a href="/accounts/signin/${verbatim(s.id)}">${s.email} (${s.flow === 'device' ? 'device code' : 'browser'})</a> `)}</div>` : ''}
<div id="accounts" data-refresh="15">
${d.accounts.length === 0
  ? html`<p class="card empty">No accounts yet. Add one below: relay365 delivers through it with OAuth 2.0.</p>`
  : html`<table><thead><tr><th scope="col">Account</th><th scope="col">State</th><th scope="col">Flow</th><th scope="col">Token time left</th><th scope="col">Last refresh</th><th scope="col">Last error and fix</th><th scope="col">Actions</th></tr></thead><tbody>
${d.accounts.map((a) => accountRow(ctx, a))}
</tbody></table>`}
</div>
<h2 id="add">Add an account</h2>
<div class="card">
<p class="muted">Signs in with OAuth 2.0 (delegated permissions: SMTP.Send, IMAP/POP). The app registration needs the redirect URI <code>http://localhost</code> (platform “Mobile and desktop applications”) for the browser flow, or “Allow public client flows” for the device code. Application (client-credentials) accounts are added with <code>relay365 account add --flow client-credentials</code>.</p>
${d.formError ? html`<div class="notice bad" role="alert" id="form-error">${d.formError}</div>` : ''}
<form method="post" action="/accounts/add" id="add-account">
${csrfField(ctx)}
<label for="email">Mailbox address</label><input type="email" id="email" name="email" required value="${f.email}" placeholder="printer@contoso.com" autocomplete="off">
<label for="tenant">Tenant <span class="hint">— tenant id (GUID) or a verified domain; organizations for any work account, consumers for Outlook.com</span></label><input type="text" id="tenant" name="tenant" required value="${f.tenant}" placeholder="contoso.onmicrosoft.com">
<label for="client_id">Application (client) id</label><input type="text" id="client_id" name="client_id" required value="${f.client_id}" placeholder="00000000-0000-0000-0000-000000000000" autocomplete="off">
<fieldset><legend>Sign in with</legend>
<label class="choice"><input type="radio" name="flow" value="browser"${f.flow === 'browser' ? ' checked' : ''}> this browser (authorization code + PKCE)</label>
<label class="choice"><input type="radio" name="flow" value="device"${f.flow === 'device' ? ' checked' : ''}> a device code (sign in on any device)</label>
</fieldset>
<fieldset><legend>Use the token for</legend>
${['smtp', 'imap', 'pop', 'graph'].map((s) => html`<label class="choice"><input type="checkbox" name="scopes" value="${s}"${f.scopes.includes(s) ? ' checked' : ''}> ${s === 'graph' ? 'Graph sendMail' : s.toUpperCase()}</label>`)}
</fieldset>
<details${f.mailbox || f.ca_file || f.cloud !== 'global' || (f.authority_host && !/login\.microsoftonline\.com\/?$/.test(f.authority_host)) ? ' open' : ''}><summary>Advanced</summary>
<label for="mailbox">Mailbox for SASL user= <span class="hint">— a shared mailbox the account has FullAccess/SendAs on (optional)</span></label><input type="text" id="mailbox" name="mailbox" value="${f.mailbox}">
<label for="cloud">Cloud</label><select id="cloud" name="cloud">${d.clouds.map((c) => html`<option value="${c}"${c === f.cloud ? ' selected' : ''}>${c}</option>`)}</select>
<label for="authority_host">Identity platform <span class="hint">— empty for the cloud's default</span></label><input type="text" id="authority_host" name="authority_host" value="${f.authority_host}" placeholder="https://login.microsoftonline.com">
<label for="ca_file">Extra CA file (PEM) on the relay host <span class="hint">— TLS-inspecting proxies, the sandbox</span></label><input type="text" id="ca_file" name="ca_file" value="${f.ca_file}">
</details>
<p><button type="submit" id="add-submit">Sign in and add</button></p>
</form>
</div>`;
  return layout(ctx, 'accounts', 'Accounts', body);
}

function accountRow(ctx: PageContext, a: AccountSummary): Html {
  const aad = a.lastError?.aadsts !== undefined ? explainAadsts(a.lastError.aadsts) : undefined;
  const fix = aad ? `${aad.en.cause} ${aad.en.fix}` : a.lastError?.hint;
  const path = `/accounts/${encodeURIComponent(a.email)}`;
  const interactive = a.flow !== 'client-credentials';
  const actions: Html[] = [];
  if (interactive) {
    actions.push(postButton(ctx, `${path}/reauth`, 'Re-authorize (browser)', { kind: a.state === 'valid' ? 'secondary' : undefined, fields: { flow: 'browser' } }));
    actions.push(postButton(ctx, `${path}/reauth`, 'Device code', { kind: 'secondary', fields: { flow: 'device' } }));
  }
  actions.push(postButton(ctx, `${path}/refresh`, 'Refresh token now', { kind: 'secondary' }));
  const left = a.expiresInSeconds;
  return html`<tr id="acct-${accountAnchor(a.email)}"><td><b>${a.email}</b>${a.mailbox !== a.email ? html`<br><span class="muted">as ${a.mailbox}</span>` : ''}<br><span class="muted">${a.purposes.join(', ')} · tenant ${a.tenant}</span></td>
<td>${stateBadge(a.state)}</td><td>${a.flow}</td>
<td class="num">${left === undefined ? html`<span class="muted">no token</span>` : left === 0 ? html`<span class="badge warn">expired</span>` : formatDuration(left)}</td>
<td>${formatTime(a.lastRefresh)}</td>
<td>${a.lastError ? html`<div class="reply">${a.lastError.message}</div>${fix ? html`<p class="explain"><b>Fix:</b> ${fix}</p>` : ''}<span class="muted">${formatTime(a.lastError.at)}</span>` : html`<span class="muted">—</span>`}</td>
<td><div class="actions">${actions}</div></td></tr>`;
}

export function signInPage(ctx: PageContext, s: SignIn): string {
  const waiting = s.status === 'waiting' || s.status === 'starting';
  const title = s.purpose === 'add' ? `Add ${s.email}` : `Re-authorize ${s.email}`;
  let content: Html;
  if (s.status === 'done') {
    content = html`<div class="notice ok" role="status" id="signin-done"><b>Signed in.</b> ${s.email} ${s.purpose === 'add' ? 'was added' : 'was re-authorized'} and its refresh token is stored. <a href="/accounts">Back to accounts</a> · <a href="/queue?state=deferred">deferred messages</a></div>`;
  } else if (s.status === 'failed' || s.status === 'cancelled') {
    const aad = s.error?.aadsts !== undefined ? explainAadsts(s.error.aadsts) : undefined;
    content = html`<div class="notice bad" role="alert" id="signin-failed"><b>${s.status === 'cancelled' ? 'Cancelled.' : 'The sign-in failed.'}</b> ${s.error?.message ?? ''}${aad ? html`<p class="explain"><b>Why:</b> ${aad.en.cause} <b>Fix:</b> ${aad.en.fix}</p>` : s.error?.hint ? html`<p class="explain"><b>Fix:</b> ${s.error.hint}</p>` : ''}</div><p><a href="/accounts#add">Try again</a></p>`;
  } else if (s.flow === 'device' && s.device) {
    content = html`<div class="card" id="device">
<p>On any device, open <a href="${verbatim(s.device.verificationUri)}" target="_blank" rel="noopener noreferrer" id="verification-uri">${verbatim(s.device.verificationUri)}</a> and enter the code:</p>
<p><span class="device-code" id="user-code">${verbatim(s.device.userCode)}</span></p>
<p class="muted">Sign in as <b>${s.email}</b>. The code expires ${formatTime(s.device.expiresAt)}. This page updates by itself.</p>
${postButton(ctx, `/accounts/signin/${s.id}/cancel`, 'Cancel', { kind: 'secondary' })}
</div>`;
  } else {
    content = html`<div class="card" id="browser">
<p><a class="button" href="${verbatim(s.authorizeUrl ?? '#')}" target="_blank" rel="noopener noreferrer" id="signin-link">Open the Microsoft sign-in page</a></p>
<p>Sign in as <b>${s.email}</b> and accept. Microsoft then sends the browser to <code>http://localhost:…/</code>, where relay365 is waiting on this host; the tab shows “Sign-in complete” and this page updates by itself.</p>
<details><summary>The browser is not on the relay host (the redirect page does not load)?</summary>
<p>Copy the full address of that page (it starts with <code>http://localhost</code> and contains <code>code=</code>) and paste it here:</p>
<form method="post" action="/accounts/signin/${verbatim(s.id)}/paste">${csrfField(ctx)}<label for="redirect">Redirect address</label><input type="url" id="redirect" name="redirect" required autocomplete="off"><p><button type="submit">Finish sign-in</button></p></form>
</details>
${postButton(ctx, `/accounts/signin/${s.id}/cancel`, 'Cancel', { kind: 'secondary' })}
</div>`;
  }
  const body = html`<p><a href="/accounts">← Accounts</a></p><h1>${title}</h1>
<div id="signin"${waiting ? html` data-refresh="2"` : ''}>${content}</div>`;
  return layout(ctx, 'accounts', title, body);
}

// ---------------------------------------------------------------------------------------------
// Configuration

export function configPage(ctx: PageContext, d: { yaml: string; file?: string; stateDir: string }): string {
  const body = html`<h1>Configuration</h1>
<p class="muted">${d.file ? html`From <code>${d.file}</code>` : 'Embedded defaults (no configuration file)'}; state directory <code>${d.stateDir}</code>. Secrets and password hashes are masked. Change the file and send SIGHUP (<code>systemctl reload relay365</code>) to apply policy and routes; listeners and the queue backend need a restart.</p>
<pre class="config" id="config">${d.yaml}</pre>`;
  return layout(ctx, 'config', 'Configuration', body);
}

export function errorPage(ctx: PageContext, status: number, message: string): string {
  return layout(ctx, 'dashboard', String(status), html`<h1>${status}</h1><div class="notice bad" role="alert">${message}</div><p><a href="/">Dashboard</a></p>`);
}
