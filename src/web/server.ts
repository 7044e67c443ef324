/**
 * The admin listener (node:http, or node:https with web.tls_cert_file): the admin pages behind a
 * login, and `/metrics` (Prometheus text), `/healthz` (process up) and `/readyz` (queue writable,
 * no account waiting for re-authorization) for monitoring, public by default (web.public_paths).
 *
 * SECURITY: loopback by default; scrypt password hash in the configuration; sessions in memory
 * with an HttpOnly, SameSite=Strict cookie; a CSRF token on every state-changing POST plus an
 * Origin check; CSP default-src 'self' (no inline script or style), frame-ancestors none,
 * nosniff, no referrer. Every value rendered passes through redactText(); the configuration view
 * through sanitize().
 */
import { existsSync, readFileSync, promises as fsp } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { Config } from '../config/schema.js';
import { ConfigError, OAuthError, isRelay365Error, toRelay365Error } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { redactText, sanitize } from '../core/redact.js';
import { CLOUDS, parsePurposes, type AccountRecord, type TokenManager } from '../oauth/index.js';
import type { Queue, QueueEntry, QueueState } from '../queue/index.js';
import { ASSETS } from './assets.js';
import { LoginThrottle, SessionStore, checkLogin, cookieNames, parseCookies, randomToken, sameOrigin, sameToken, setCookie, type Session } from './auth.js';
import { TrafficHistory } from './history.js';
import { RelayMetrics } from './metrics.js';
import { SignIns } from './signin.js';
import { QUEUE_STATES, accountAnchor, accountsPage, configPage, dashboardPage, errorPage, loginPage, queueEntryPage, queueListPage, signInPage, type AddAccountForm, type PageContext } from './views.js';

export interface AdminServerOptions {
  /** The whole configuration: `web.*` drives the listener, the rest is shown (masked) on the page. */
  config: Config;
  stateDir: string;
  queue: Queue;
  tokens: TokenManager;
  /** The relay's events ('accepted', 'connection', 'attempt', 'settled', 'refresh'). */
  events: EventEmitter;
  log: Logger;
  /** Created here when not given. */
  metrics?: RelayMetrics;
  /** Wake the delivery workers (after retry/release from the page). */
  kick?: () => void;
  /** After an account was added or re-authorized from the page. */
  onAccountsChanged?: () => void | Promise<void>;
  /** The configuration file the relay runs with (shown on the configuration page). */
  configFile?: string;
  /** Overrides web.address / web.port (tests pass port 0). */
  address?: string;
  port?: number;
}

export interface AdminServer {
  url: string;
  metrics: RelayMetrics;
  history: TrafficHistory;
  /** SIGHUP: take new login settings, public paths and the configuration shown (not address/port/TLS). */
  reload(config: Config, configFile?: string): void;
  stop(): Promise<void>;
}

/** The options a RelayService provides (`relay365 serve` and tests). */
export function adminOptionsFor(service: {
  config: Config;
  stateDir: string;
  queue: Queue;
  tokens: TokenManager;
  events: EventEmitter;
  delivery: { kick(): void; resetTransports(): Promise<void> };
}): Omit<AdminServerOptions, 'log'> {
  return {
    config: service.config,
    stateDir: service.stateDir,
    queue: service.queue,
    tokens: service.tokens,
    events: service.events,
    kick: () => service.delivery.kick(),
    onAccountsChanged: async () => {
      await service.delivery.resetTransports();
      service.delivery.kick();
    },
  };
}

const PROBES = new Set(['/metrics', '/healthz', '/readyz']);
const MAX_FORM_BYTES = 64 * 1024;
const PAGE_SIZE = 50;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_FORM_BYTES) {
        reject(new HttpError(413, 'The form is too large.'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', reject);
  });
}

function safeNext(next: string | null | undefined): string {
  return next && next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/\\') ? next : '/';
}

function clientAddress(req: IncomingMessage): string {
  return (req.socket.remoteAddress ?? 'unknown').replace(/^::ffff:/, '');
}

export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  let config = options.config;
  let configFile = options.configFile;
  const { queue, tokens, events, log, stateDir } = options;
  const tlsOn = Boolean(config.web.tls_cert_file || config.web.tls_key_file);
  if (tlsOn && !(config.web.tls_cert_file && config.web.tls_key_file)) {
    throw new ConfigError('web.tls_cert_file and web.tls_key_file must be set together', { keyPath: config.web.tls_cert_file ? 'web.tls_key_file' : 'web.tls_cert_file' });
  }
  const names = cookieNames(tlsOn);
  const sessions = new SessionStore(() => config.web.session_ttl_seconds * 1000);
  const throttle = new LoginThrottle();
  const metrics = options.metrics ?? new RelayMetrics({ queue, events });
  const history = new TrafficHistory(events);
  const signIns = new SignIns({ tokens, caFile: config.delivery.ca_file, log, onAccountsChanged: options.onAccountsChanged });

  const securityHeaders: Record<string, string> = {
    'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
    'permissions-policy': 'camera=(), microphone=(), geolocation=()',
    'x-robots-tag': 'noindex',
    ...(tlsOn ? { 'strict-transport-security': 'max-age=31536000' } : {}),
  };

  function send(res: ServerResponse, status: number, type: string, body: string | Buffer, extra: Record<string, string | string[]> = {}): void {
    res.writeHead(status, { ...securityHeaders, 'cache-control': 'no-store', 'content-type': type, 'content-length': Buffer.byteLength(body), ...extra });
    res.end(body);
  }
  const sendPage = (res: ServerResponse, status: number, page: string, extra: Record<string, string | string[]> = {}) => send(res, status, 'text/html; charset=utf-8', page, extra);
  function redirect(res: ServerResponse, location: string, extra: Record<string, string | string[]> = {}): void {
    res.writeHead(303, { ...securityHeaders, 'cache-control': 'no-store', location, 'content-length': 0, ...extra });
    res.end();
  }

  // --- probes -----------------------------------------------------------------------------------

  async function readiness(): Promise<string[]> {
    const problems: string[] = [];
    try {
      await queue.counts();
      // A write statement that matches nothing: fails when the database is read-only or locked.
      await queue.retry('readyz-probe');
    } catch (err) {
      problems.push(`queue: ${redactText((err as Error).message)}`);
    }
    if (config.queue.backend === 'sqlite') {
      const dir = config.queue.dir ?? join(stateDir, 'queue');
      try {
        const fs = await fsp.statfs(dir);
        const free = Number(fs.bavail) * Number(fs.bsize);
        if (free < config.relay.max_message_size) problems.push(`queue: only ${free} bytes free in ${dir}, less than one message of relay.max_message_size`);
      } catch (err) {
        problems.push(`queue: ${dir}: ${(err as Error).message}`);
      }
    }
    if (config.web.ready_requires_valid_accounts) {
      try {
        for (const a of await tokens.accounts()) if (a.state === 'needs-reauth') problems.push(`account ${a.email} needs re-authorization: ${a.fix}`);
      } catch (err) {
        problems.push(`accounts: ${redactText((err as Error).message)}`);
      }
    }
    return problems;
  }

  async function probe(path: string, res: ServerResponse): Promise<void> {
    if (path === '/metrics') return send(res, 200, metrics.registry.contentType, await metrics.registry.metrics());
    if (path === '/healthz') return send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
    const problems = await readiness();
    send(res, problems.length ? 503 : 200, 'text/plain; charset=utf-8', problems.length ? `${problems.join('\n')}\n` : 'ready\n');
  }

  // --- login ------------------------------------------------------------------------------------

  function loginForm(res: ServerResponse, status: number, opts: { error?: string; user?: string; next?: string }, cookies: Map<string, string>): void {
    // One token per browser, not per page view: a second tab (or a favicon request) must not
    // invalidate the form in the first.
    const existing = cookies.get(names.login);
    const token = existing && /^[A-Za-z0-9_-]{43}$/.test(existing) ? existing : randomToken();
    const disabled = !config.web.admin_password_hash;
    sendPage(res, status, loginPage({ loginToken: token, disabled, ...opts }), { 'set-cookie': setCookie(names.login, token, { secure: tlsOn, maxAgeSeconds: 3600 }) });
  }

  async function login(req: IncomingMessage, res: ServerResponse, cookies: Map<string, string>): Promise<void> {
    const form = await readForm(req);
    const client = clientAddress(req);
    if (!sameOrigin(req) || !sameToken(form.get('_csrf') ?? undefined, cookies.get(names.login))) throw new HttpError(403, 'The login form expired or came from another site. Reload the login page and try again.');
    const user = form.get('user') ?? '';
    const next = safeNext(form.get('next'));
    if (throttle.blocked(client)) {
      log.warn({ client }, 'admin login refused: too many failed attempts');
      return loginForm(res, 429, { error: 'Too many failed logins from this address. Wait 15 minutes.', user, next }, cookies);
    }
    if (!checkLogin(user, form.get('password') ?? '', config.web)) {
      throttle.fail(client);
      log.warn({ client, user }, 'admin login failed');
      return loginForm(res, 401, { error: config.web.admin_password_hash ? 'Wrong user name or password.' : 'The admin page is locked: no admin password is configured.', user, next }, cookies);
    }
    throttle.succeed(client);
    // A fresh session id at every login (no fixation).
    sessions.destroy(cookies.get(names.session));
    const session = sessions.create(user);
    log.info({ client, user }, 'admin logged in');
    redirect(res, next, {
      'set-cookie': [setCookie(names.session, session.id, { secure: tlsOn }), setCookie(names.login, '', { secure: tlsOn, maxAgeSeconds: 0 })],
    });
  }

  // --- pages ------------------------------------------------------------------------------------

  function pageContext(session: Session): PageContext {
    const flash = session.flash;
    session.flash = undefined;
    return { user: session.user, csrf: session.csrf, flash };
  }

  async function dashboard(session: Session, res: ServerResponse): Promise<void> {
    let counts = { incoming: 0, active: 0, deferred: 0, hold: 0, done: 0, bounced: 0 };
    let failures: QueueEntry[] = [];
    let queueError: string | undefined;
    try {
      counts = await queue.counts();
      const lists = await Promise.all((['deferred', 'hold', 'bounced'] as QueueState[]).map((state) => queue.list({ state, limit: 10 })));
      failures = lists
        .flat()
        .sort((a, b) => b.createdAt.localeCompare(a.createdAt))
        .slice(0, 10);
    } catch (err) {
      queueError = (err as Error).message;
    }
    const accounts = await tokens.accounts().catch(() => []);
    sendPage(res, 200, dashboardPage(pageContext(session), { counts, history: history.lastHour(), startedAt: history.startedAt, failures, accounts, queueError }));
  }

  async function queueList(session: Session, url: URL, res: ServerResponse): Promise<void> {
    const stateParam = url.searchParams.get('state') ?? '';
    const state = (QUEUE_STATES as string[]).includes(stateParam) ? (stateParam as QueueState) : undefined;
    const search = (url.searchParams.get('q') ?? '').trim().slice(0, 200);
    const offset = Math.max(0, Number(url.searchParams.get('offset')) || 0);
    const [entries, counts] = await Promise.all([queue.list({ state, search: search || undefined, limit: PAGE_SIZE, offset }), queue.counts()]);
    sendPage(res, 200, queueListPage(pageContext(session), { entries, counts, state, search, offset, limit: PAGE_SIZE }));
  }

  async function queueAction(session: Session, id: string, action: string, res: ServerResponse): Promise<void> {
    const entry = await queue.get(id);
    if (!entry) throw new HttpError(404, `No queue entry ${id}.`);
    let ok: boolean;
    switch (action) {
      case 'retry':
        ok = (await queue.retry(id)) > 0;
        break;
      case 'hold':
        ok = await queue.hold(id);
        break;
      case 'release':
        ok = await queue.release(id);
        break;
      case 'delete':
        ok = entry.state !== 'active' && (await queue.delete(id));
        break;
      default:
        throw new HttpError(404, 'Unknown action.');
    }
    log.info({ user: session.user, queueId: id, action, ok }, 'admin queue action');
    if (ok && (action === 'retry' || action === 'release')) options.kick?.();
    const past = { retry: 'queued for delivery now', hold: 'put on hold', release: 'released', delete: 'deleted' }[action];
    session.flash = ok ? { kind: 'ok', text: `Message ${id} ${past}.` } : { kind: 'warn', text: `Message ${id} is ${entry.state}; it cannot be ${past?.replace(/ now$/, '')} in that state.` };
    redirect(res, action === 'delete' && ok ? '/queue' : `/queue/${id}`);
  }

  function emptyForm(): AddAccountForm {
    return { email: '', tenant: '', client_id: '', flow: 'browser', scopes: ['smtp'], mailbox: '', authority_host: config.web.default_authority_host ?? '', ca_file: config.delivery.ca_file ?? '', cloud: 'global' };
  }

  async function accounts(session: Session, res: ServerResponse, form = emptyForm(), formError?: string, status = 200): Promise<void> {
    const list = await tokens.accounts();
    sendPage(res, status, accountsPage(pageContext(session), { accounts: list, form, formError, clouds: Object.keys(CLOUDS), signIns: signIns.list() }));
  }

  async function addAccount(session: Session, form: URLSearchParams, res: ServerResponse): Promise<void> {
    const f: AddAccountForm = {
      email: (form.get('email') ?? '').trim().toLowerCase(),
      tenant: (form.get('tenant') ?? '').trim(),
      client_id: (form.get('client_id') ?? '').trim(),
      flow: form.get('flow') === 'device' ? 'device' : 'browser',
      scopes: form.getAll('scopes').filter((s) => ['smtp', 'imap', 'pop', 'graph'].includes(s)),
      mailbox: (form.get('mailbox') ?? '').trim().toLowerCase(),
      authority_host: (form.get('authority_host') ?? '').trim(),
      ca_file: (form.get('ca_file') ?? '').trim(),
      cloud: form.get('cloud') ?? 'global',
    };
    const problem = (() => {
      if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(f.email)) return 'Enter the mailbox address (user@domain).';
      if (!/^[A-Za-z0-9.-]+$/.test(f.tenant)) return 'Enter the tenant id (GUID) or a verified domain such as contoso.onmicrosoft.com.';
      if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(f.client_id)) return 'The application (client) id is a GUID, e.g. 11111111-2222-3333-4444-555555555555 (Entra admin center → App registrations → Overview).';
      if (f.mailbox && !/^[^@\s]+@[^@\s]+$/.test(f.mailbox)) return 'The mailbox for user= must be an address.';
      if (!CLOUDS[f.cloud]) return 'Unknown cloud.';
      if (f.ca_file && (!existsSync(f.ca_file) || !/-----BEGIN CERTIFICATE-----/.test(safeRead(f.ca_file)))) return `No PEM certificate found in ${f.ca_file} on the relay host.`;
      return undefined;
    })();
    if (problem) return accounts(session, res, f, problem, 400);
    if (await tokens.store.get(f.email)) return accounts(session, res, f, `${f.email} already exists. Use “Re-authorize” in its row instead.`, 409);
    const now = new Date().toISOString();
    const cloud = CLOUDS[f.cloud]!;
    const rec: AccountRecord = {
      email: f.email,
      mailbox: f.mailbox || undefined,
      tenant: f.tenant,
      clientId: f.client_id.toLowerCase(),
      flow: f.flow,
      authorityHost: f.authority_host || cloud.authorityHost,
      cloud: f.cloud,
      caFile: f.ca_file || undefined,
      purposes: parsePurposes(f.scopes.join(',') || 'smtp'),
      credential: { type: 'none' },
      state: 'valid',
      createdAt: now,
      updatedAt: now,
    };
    try {
      const s = await signIns.start(rec, f.flow, 'add');
      log.info({ user: session.user, account: rec.email, flow: f.flow }, 'admin started adding an account');
      redirect(res, `/accounts/signin/${s.id}`);
    } catch (err) {
      const e = isRelay365Error(err) ? err : toRelay365Error(err);
      return accounts(session, res, f, `${e.message}${e.hint ? ` ${e.hint}` : ''}`, 400);
    }
  }

  async function accountAction(session: Session, email: string, action: string, form: URLSearchParams, res: ServerResponse): Promise<void> {
    const rec = await tokens.store.get(email);
    if (!rec) throw new HttpError(404, `No account ${email}.`);
    if (action === 'refresh') {
      try {
        const t = await tokens.getAccessToken(rec.email, { purpose: rec.purposes[0] ?? 'smtp', forceRefresh: true });
        session.flash = { kind: 'ok', text: `Token for ${rec.email} refreshed; valid for ${Math.round((t.expiresAt - Date.now()) / 60_000)} min.` };
      } catch (err) {
        const e = isRelay365Error(err) ? err : toRelay365Error(err);
        session.flash = { kind: 'bad', text: `Refreshing ${rec.email} failed: ${e.message}${e.hint ? ` Fix: ${e.hint}` : ''}` };
      }
      log.info({ user: session.user, account: rec.email, action }, 'admin account action');
      return redirect(res, `/accounts#acct-${accountAnchor(rec.email)}`);
    }
    if (action !== 'reauth') throw new HttpError(404, 'Unknown action.');
    if (rec.flow === 'client-credentials') throw new OAuthError('OAUTH_FLOW', `${rec.email} uses client credentials: there is nothing to sign in; use “Refresh token now”, or replace the secret with relay365 account add.`);
    const flow = form.get('flow') === 'device' ? 'device' : 'browser';
    rec.flow = flow;
    const s = await signIns.start(rec, flow, 'reauth');
    log.info({ user: session.user, account: rec.email, flow }, 'admin started re-authorizing an account');
    redirect(res, `/accounts/signin/${s.id}`);
  }

  function configView(session: Session, res: ServerResponse): void {
    sendPage(res, 200, configPage(pageContext(session), { yaml: stringify(sanitize(config)), file: configFile, stateDir }));
  }

  // --- routing ----------------------------------------------------------------------------------

  async function authenticated(req: IncomingMessage, res: ServerResponse, url: URL, session: Session): Promise<void> {
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (method === 'GET' || method === 'HEAD') {
      if (path === '/') return dashboard(session, res);
      if (path === '/queue') return queueList(session, url, res);
      let m = /^\/queue\/([A-Za-z0-9]{1,64})$/.exec(path);
      if (m) {
        const entry = await queue.get(m[1]!);
        if (!entry) throw new HttpError(404, `No queue entry ${m[1]} (delivered entries are kept as done records until deleted).`);
        return sendPage(res, 200, queueEntryPage(pageContext(session), entry));
      }
      if (path === '/accounts') return accounts(session, res);
      m = /^\/accounts\/signin\/([A-Za-z0-9_-]{1,64})$/.exec(path);
      if (m) {
        const s = signIns.get(m[1]!);
        if (!s) throw new HttpError(404, 'This sign-in is unknown or finished long ago. Start again from the Accounts page.');
        return sendPage(res, 200, signInPage(pageContext(session), s));
      }
      if (path === '/config') return configView(session, res);
      throw new HttpError(404, 'No such page.');
    }
    if (method !== 'POST') throw new HttpError(405, 'Method not allowed.');
    const form = await readForm(req);
    // Cross-site request forgery: the Origin must be ours and the form must carry the session's token.
    if (!sameOrigin(req) || !sameToken(form.get('_csrf') ?? undefined, session.csrf)) {
      log.warn({ client: clientAddress(req), path }, 'admin POST refused: missing or wrong CSRF token');
      throw new HttpError(403, 'This form is stale or came from another site (CSRF check failed). Reload the page and try again.');
    }
    if (path === '/logout') {
      sessions.destroy(session.id);
      return redirect(res, '/login', { 'set-cookie': setCookie(names.session, '', { secure: tlsOn, maxAgeSeconds: 0 }) });
    }
    if (path === '/queue/retry-all') {
      const n = await queue.retry('all');
      options.kick?.();
      log.info({ user: session.user, count: n }, 'admin retried all deferred messages');
      session.flash = { kind: 'ok', text: `${n} deferred message(s) queued for delivery now.` };
      return redirect(res, '/queue');
    }
    let m = /^\/queue\/([A-Za-z0-9]{1,64})\/(retry|hold|release|delete)$/.exec(path);
    if (m) return queueAction(session, m[1]!, m[2]!, res);
    if (path === '/accounts/add') return addAccount(session, form, res);
    m = /^\/accounts\/signin\/([A-Za-z0-9_-]{1,64})\/(paste|cancel)$/.exec(path);
    if (m) {
      const id = m[1]!;
      if (m[2] === 'cancel') signIns.cancel(id);
      else if (!signIns.paste(id, form.get('redirect') ?? '')) session.flash = { kind: 'warn', text: 'This sign-in is no longer waiting for a redirect.' };
      return redirect(res, `/accounts/signin/${id}`);
    }
    m = /^\/accounts\/([^/]+)\/(reauth|refresh)$/.exec(path);
    if (m) return accountAction(session, decodeURIComponent(m[1]!), m[2]!, form, res);
    throw new HttpError(404, 'No such action.');
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin.invalid');
    const path = url.pathname;
    const cookies = parseCookies(req.headers.cookie);
    const session = sessions.get(cookies.get(names.session));
    if (PROBES.has(path)) {
      if ((config.web.public_paths as string[]).includes(path) || session) return probe(path, res);
      return send(res, 401, 'text/plain; charset=utf-8', `${path} needs an admin session (web.public_paths).\n`);
    }
    const asset = ASSETS[path];
    if (asset) {
      if (req.headers['if-none-match'] === asset.etag) {
        res.writeHead(304, { ...securityHeaders, etag: asset.etag });
        return void res.end();
      }
      return send(res, 200, asset.type, asset.body, { 'cache-control': 'no-cache', etag: asset.etag });
    }
    if (path === '/favicon.ico') return send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
    if (path === '/login') {
      if (req.method === 'POST') return login(req, res, cookies);
      if (session) return redirect(res, safeNext(url.searchParams.get('next')));
      return loginForm(res, 200, { next: safeNext(url.searchParams.get('next')) }, cookies);
    }
    if (!session) {
      if (req.method === 'GET' || req.method === 'HEAD') return redirect(res, `/login${path === '/' ? '' : `?next=${encodeURIComponent(path + url.search)}`}`);
      throw new HttpError(403, 'Log in first.');
    }
    return authenticated(req, res, url, session);
  }

  const listener = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : isRelay365Error(err) ? 400 : 500;
      const message = err instanceof HttpError || isRelay365Error(err) ? `${(err as Error).message}${isRelay365Error(err) && err.hint ? ` ${err.hint}` : ''}` : 'Internal error; see the relay log.';
      if (status >= 500) log.error({ err, path: req.url }, 'admin page error');
      if (res.headersSent) return void res.destroy();
      const cookies = parseCookies(req.headers.cookie);
      const session = sessions.get(cookies.get(names.session));
      sendPage(res, status, errorPage(session ? { user: session.user, csrf: session.csrf } : {}, status, message));
    });
  };
  const server = tlsOn ? https.createServer({ cert: readFileSync(config.web.tls_cert_file!), key: readFileSync(config.web.tls_key_file!) }, listener) : http.createServer(listener);
  server.headersTimeout = 20_000;
  server.requestTimeout = 60_000;

  const address = options.address ?? config.web.address;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new ConfigError(`Cannot listen on ${address}:${options.port ?? config.web.port} for the admin page: ${err.message}`, { keyPath: 'web.port' })));
    server.listen(options.port ?? config.web.port, address, resolve);
  });
  const port = (server.address() as AddressInfo).port;
  const url = `${tlsOn ? 'https' : 'http'}://${address.includes(':') ? `[${address}]` : address}:${port}`;
  if (!config.web.admin_password_hash) log.warn({ url }, 'web.admin_password_hash is not set: the admin page is locked (metrics and health checks answer)');

  return {
    url,
    metrics,
    history,
    reload(next: Config, file?: string) {
      config = next;
      if (file) configFile = file;
    },
    async stop() {
      signIns.stop();
      metrics.detach();
      history.detach(events);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

function safeRead(file: string): string {
  try {
    return readFileSync(file, 'utf8').slice(0, 1024 * 1024);
  } catch {
    return '';
  }
}
