/**
 * Admin login and request protection. Sessions live in memory (a restart logs everyone out, which
 * is the safe direction); the cookie holds only a random id and is HttpOnly and SameSite=Strict
 * (Secure and `__Host-` prefixed over TLS). Every state-changing POST carries the session's CSRF
 * token in a hidden field; the login form uses a double-submit token so a foreign page cannot log
 * a browser in either. Failed logins are counted per client address and throttled.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { verifyPassword } from '../relay/policy.js';

export interface Session {
  id: string;
  user: string;
  csrf: string;
  createdAt: number;
  lastSeen: number;
  /** A one-time message shown on the next page (after a POST redirected). */
  flash?: { kind: 'ok' | 'bad' | 'warn' | 'info'; text: string };
}

export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

export function sameToken(a: string | undefined, b: string | undefined): boolean {
  if (!a || !b) return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i <= 0) continue;
    const name = part.slice(0, i).trim();
    if (!out.has(name)) out.set(name, decodeURIComponent(part.slice(i + 1).trim()));
  }
  return out;
}

export interface CookieNames {
  session: string;
  login: string;
}

export function cookieNames(secure: boolean): CookieNames {
  // `__Host-` binds the cookie to this exact origin and requires Secure and Path=/.
  return secure ? { session: '__Host-relay365_session', login: '__Host-relay365_login' } : { session: 'relay365_session', login: 'relay365_login' };
}

export function setCookie(name: string, value: string, opts: { secure: boolean; maxAgeSeconds?: number }): string {
  const parts = [`${name}=${encodeURIComponent(value)}`, 'Path=/', 'HttpOnly', 'SameSite=Strict'];
  if (opts.maxAgeSeconds !== undefined) parts.push(`Max-Age=${opts.maxAgeSeconds}`);
  if (opts.secure) parts.push('Secure');
  return parts.join('; ');
}

export class SessionStore {
  private readonly sessions = new Map<string, Session>();

  /** `ttlMs` is read on every use, so a reloaded configuration applies to live sessions. */
  constructor(private readonly ttlMs: () => number) {}

  create(user: string): Session {
    this.sweep();
    const now = Date.now();
    const s: Session = { id: randomToken(), user, csrf: randomToken(), createdAt: now, lastSeen: now };
    this.sessions.set(s.id, s);
    return s;
  }

  /** The live session for this id, its idle timer restarted. */
  get(id: string | undefined): Session | undefined {
    if (!id) return undefined;
    const s = this.sessions.get(id);
    if (!s) return undefined;
    if (Date.now() - s.lastSeen > this.ttlMs()) {
      this.sessions.delete(id);
      return undefined;
    }
    s.lastSeen = Date.now();
    return s;
  }

  destroy(id: string | undefined): void {
    if (id) this.sessions.delete(id);
  }

  get size(): number {
    return this.sessions.size;
  }

  private sweep(): void {
    const now = Date.now();
    for (const [id, s] of this.sessions) if (now - s.lastSeen > this.ttlMs()) this.sessions.delete(id);
  }
}

/** Failed logins per client address: after `limit` failures in `windowMs`, refuse until it passes. */
export class LoginThrottle {
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly limit = 5,
    private readonly windowMs = 15 * 60_000,
  ) {}

  blocked(client: string): boolean {
    return this.recent(client).length >= this.limit;
  }

  fail(client: string): void {
    const list = this.recent(client);
    list.push(Date.now());
    this.failures.set(client, list);
  }

  succeed(client: string): void {
    this.failures.delete(client);
  }

  private recent(client: string): number[] {
    const cutoff = Date.now() - this.windowMs;
    const list = (this.failures.get(client) ?? []).filter((t) => t > cutoff);
    if (list.length) this.failures.set(client, list);
    else this.failures.delete(client);
    return list;
  }
}

/** Checks user and password against the configured hash; the user compare is constant-time too. */
export function checkLogin(user: string, password: string, config: { admin_user: string; admin_password_hash?: string }): boolean {
  if (!config.admin_password_hash) return false;
  const userOk = sameToken(user, config.admin_user);
  // Always run scrypt so a wrong user name takes as long as a wrong password.
  const passwordOk = verifyPassword(password, config.admin_password_hash);
  return userOk && passwordOk;
}

/**
 * A POST from another site is refused even before the CSRF token is looked at. Browsers say where
 * a request comes from in Sec-Fetch-Site; with Referrer-Policy no-referrer, Chromium sends
 * `Origin: null` on same-origin form posts, so Origin is only compared when it names a host.
 * Clients that send neither (curl, scripts) still need the CSRF token.
 */
export function sameOrigin(req: IncomingMessage): boolean {
  const site = req.headers['sec-fetch-site'];
  if (typeof site === 'string') return site === 'same-origin' || site === 'none';
  const origin = req.headers.origin;
  if (!origin || origin === 'null') return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}
