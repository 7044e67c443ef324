/**
 * The token manager: the one service every transport, fetcher and checker asks for "a valid
 * access token for this account and this protocol". Tokens are kept in memory, refreshed ahead of
 * expiry (default margin 5 min; HVE asks for 10), single-flight per account within a process and,
 * through the store's lock, across processes. A rotated refresh token is persisted before the new
 * access token is handed out. Only a definitive invalid_grant moves an account to needs-reauth;
 * transient failures keep the refresh token.
 */
import { EventEmitter } from 'node:events';
import { Relay365Error, OAuthError } from '../core/errors.js';
import { registerSecret } from '../core/redact.js';
import type { Logger } from '../core/log.js';
import { resolveEndpoints, resourceGroup, scopeFor, CLOUDS } from './authority.js';
import { clientCredentials, loadCertificate, refresh, type Credential, type FlowContext, type TokenSet } from './flows.js';
import { needsReauth, toOAuthError } from './errors.js';
import { AccountStore, type AccountRecord } from './store.js';
import type { AccessToken, TokenProvider, TokenPurpose, TokenRequest } from './types.js';

export interface TokenManagerOptions {
  /** Refresh when fewer seconds than this are left (default 300). */
  marginSeconds?: number;
  /** Extra CA for the token endpoint (sandbox, proxies), unless the account sets its own. */
  caFile?: string;
  timeoutMs?: number;
  log?: Logger;
}

export interface RefreshEvent {
  account: string;
  result: 'ok' | 'temporary' | 'reauth' | 'error';
  code?: string;
  aadsts?: number;
}

export interface AccountSummary {
  email: string;
  mailbox: string;
  flow: string;
  tenant: string;
  clientId: string;
  state: string;
  purposes: TokenPurpose[];
  expiresInSeconds?: number;
  lastRefresh?: string;
  lastError?: AccountRecord['lastError'];
  fix?: string;
}

type Group = 'outlook' | 'graph';

export class TokenManager implements TokenProvider {
  private readonly memory = new Map<string, { token: string; expiresAt: number }>();
  private readonly inflight = new Map<string, Promise<AccessToken>>();
  private readonly margin: number;
  private backgroundTimer?: NodeJS.Timeout;
  readonly events = new EventEmitter();
  /** HTTP token requests made by this manager (for metrics and tests). */
  tokenRequests = 0;

  constructor(
    readonly store: AccountStore,
    private readonly options: TokenManagerOptions = {},
  ) {
    this.margin = options.marginSeconds ?? 300;
  }

  async getAccessToken(account: string, request: TokenRequest = {}): Promise<AccessToken> {
    const purpose = request.purpose ?? 'smtp';
    const group = resourceGroup(purpose);
    const minMs = (request.minValiditySeconds ?? this.margin) * 1000;
    const key = `${account.toLowerCase()}|${group}`;
    if (!request.forceRefresh) {
      const m = this.memory.get(key);
      if (m && m.expiresAt - Date.now() > minMs) return this.wrap(account, purpose, m, undefined);
    }
    const running = this.inflight.get(key);
    if (running) return running.then((t) => ({ ...t, purpose }));
    const p = this.acquire(account, purpose, group, minMs, request.forceRefresh === true).finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  async tokenRejected(account: string, token: string, request: TokenRequest = {}): Promise<AccessToken> {
    const key = `${account.toLowerCase()}|${resourceGroup(request.purpose ?? 'smtp')}`;
    if (this.memory.get(key)?.token === token) this.memory.delete(key);
    this.lastRejected.set(key, token);
    return this.getAccessToken(account, { ...request, forceRefresh: true });
  }

  /**
   * Forget every in-memory access token (SIGHUP: accounts may have been removed or signed in
   * again by another process; the store is read afresh at the next request).
   */
  forgetAllCached(): void {
    this.memory.clear();
    this.mailboxes.clear();
  }

  /** Forget the in-memory access tokens of `account` (its stored tokens were replaced). */
  forgetCached(account: string): void {
    const prefix = `${account.toLowerCase()}|`;
    for (const key of this.memory.keys()) if (key.startsWith(prefix)) this.memory.delete(key);
  }

  private wrap(account: string, purpose: TokenPurpose, t: { token: string; expiresAt: number }, rec: AccountRecord | undefined): AccessToken {
    return { token: t.token, expiresAt: t.expiresAt, account, username: rec?.mailbox ?? this.mailboxes.get(account.toLowerCase()) ?? account, purpose };
  }

  private readonly mailboxes = new Map<string, string>();

  private async acquire(account: string, purpose: TokenPurpose, group: Group, minMs: number, force: boolean): Promise<AccessToken> {
    return this.store.withLock(account, async () => {
      const rec = await this.store.get(account);
      if (!rec) throw new Relay365Error('ACCOUNT_NOT_FOUND', `No account ${account} in the token store (${this.store.dir}).`);
      this.mailboxes.set(account.toLowerCase(), rec.mailbox ?? rec.email);
      const key = `${account.toLowerCase()}|${group}`;
      const cached = rec.access?.[group];
      // Another process (or an earlier run) may have refreshed while we waited for the lock.
      // After a rejection, a token different from the rejected one is a fresh one: use it.
      const rejected = this.lastRejected.get(key);
      const usable = cached && cached.expiresAt - Date.now() > minMs && (!force || (rejected !== undefined && cached.token !== rejected));
      if (cached && usable) {
        this.memory.set(key, cached);
        return this.wrap(account, purpose, cached, rec);
      }
      if (rec.state === 'needs-reauth') {
        throw new OAuthError('ACCOUNT_REAUTH_REQUIRED', `Account ${account} needs to be signed in again${rec.lastError ? `: ${rec.lastError.message}` : ''}.`, {
          aadsts: rec.lastError?.aadsts,
          hint: `Run \`relay365 account reauth ${account}\`.`,
        });
      }
      let set: TokenSet;
      try {
        set = await this.requestToken(rec, group);
      } catch (e) {
        const err = toOAuthError(e, account);
        const definitive = needsReauth(err) || (!err.temporary && err.oauthError === 'invalid_client');
        rec.lastError = { code: err.code, message: err.message, aadsts: err.aadsts, hint: err.hint, at: new Date().toISOString() };
        if (needsReauth(err)) rec.state = 'needs-reauth';
        else if (definitive) rec.state = 'error';
        // The refresh token is never discarded here: a transient failure leaves it as it was.
        await this.store.put(rec);
        this.events.emit('refresh', { account, result: err.temporary ? 'temporary' : needsReauth(err) ? 'reauth' : 'error', code: err.code, aadsts: err.aadsts } satisfies RefreshEvent);
        this.options.log?.warn({ account, code: err.code, aadsts: err.aadsts, temporary: err.temporary }, 'token refresh failed');
        throw err;
      }
      registerSecret(set.accessToken);
      registerSecret(set.refreshToken);
      if (set.refreshToken) rec.refreshToken = set.refreshToken;
      rec.access = { ...rec.access, [group]: { token: set.accessToken, expiresAt: set.expiresAt } };
      rec.state = 'valid';
      rec.lastRefresh = new Date().toISOString();
      rec.lastError = undefined;
      // Persist (rotated refresh token included) before anyone uses the new access token.
      await this.store.put(rec);
      this.memory.set(key, { token: set.accessToken, expiresAt: set.expiresAt });
      this.lastRejected.delete(key);
      this.events.emit('refresh', { account, result: 'ok' } satisfies RefreshEvent);
      this.options.log?.info({ account, group, expiresAt: new Date(set.expiresAt).toISOString() }, 'token refreshed');
      return this.wrap(account, purpose, { token: set.accessToken, expiresAt: set.expiresAt }, rec);
    });
  }

  private readonly lastRejected = new Map<string, string>();
  /** Accounts this process noted a server refusal for (so a success costs no store write otherwise). */
  private readonly refusedByServer = new Set<string>();

  async noteServerRefusal(account: string, problem: { code: string; message: string; hint?: string }): Promise<void> {
    this.refusedByServer.add(account.toLowerCase());
    await this.store.withLock(account, async () => {
      const rec = await this.store.get(account);
      if (!rec) return;
      rec.lastError = { code: problem.code, message: problem.message, hint: problem.hint, at: new Date().toISOString() };
      await this.store.put(rec);
    });
  }

  async noteServerAccepted(account: string): Promise<void> {
    if (!this.refusedByServer.delete(account.toLowerCase())) return;
    await this.store.withLock(account, async () => {
      const rec = await this.store.get(account);
      if (!rec?.lastError) return;
      rec.lastError = undefined;
      await this.store.put(rec);
    });
  }

  private async requestToken(rec: AccountRecord, group: Group): Promise<TokenSet> {
    this.tokenRequests++;
    const ctx = flowContextFor(rec, this.options);
    const cloud = CLOUDS[rec.cloud ?? 'global'] ?? CLOUDS.global!;
    if (rec.flow === 'client-credentials') return clientCredentials(ctx, rec.scope ?? scopeFor(group, rec.purposes, true, cloud));
    if (!rec.refreshToken) {
      throw new OAuthError('ACCOUNT_REAUTH_REQUIRED', `Account ${rec.email} has no refresh token.`, { oauthError: 'invalid_grant', hint: `Run \`relay365 account reauth ${rec.email}\`.` });
    }
    return refresh(ctx, rec.refreshToken, rec.scope ?? scopeFor(group, rec.purposes, false, cloud));
  }

  /** Summaries for `account list` and the web page (no secrets). */
  async accounts(): Promise<AccountSummary[]> {
    const now = Date.now();
    return (await this.store.list()).map((r) => {
      const exp = Object.values(r.access ?? {}).reduce((m, a) => Math.max(m, a?.expiresAt ?? 0), 0);
      return {
        email: r.email,
        mailbox: r.mailbox ?? r.email,
        flow: r.flow,
        tenant: r.tenant,
        clientId: r.clientId,
        state: r.state,
        purposes: r.purposes,
        expiresInSeconds: exp ? Math.max(0, Math.round((exp - now) / 1000)) : undefined,
        lastRefresh: r.lastRefresh,
        lastError: r.lastError,
        fix: r.state === 'needs-reauth' ? `relay365 account reauth ${r.email}` : r.lastError?.hint,
      };
    });
  }

  /**
   * Refresh delegated accounts that have been idle for `idleDays` so their refresh tokens do not
   * expire after 90 days without use (AADSTS700082).
   */
  startBackgroundRefresh(intervalMs = 6 * 3600_000, idleDays = 14): void {
    this.stopBackgroundRefresh();
    const tick = async () => {
      for (const r of await this.store.list().catch(() => [])) {
        if (r.flow === 'client-credentials' || r.state !== 'valid' || !r.refreshToken) continue;
        const last = r.lastRefresh ? Date.parse(r.lastRefresh) : 0;
        if (Date.now() - last < idleDays * 86_400_000) continue;
        await this.getAccessToken(r.email, { purpose: r.purposes[0] ?? 'smtp', forceRefresh: true }).catch(() => undefined);
      }
    };
    this.backgroundTimer = setInterval(() => void tick(), intervalMs);
    this.backgroundTimer.unref();
  }

  stopBackgroundRefresh(): void {
    if (this.backgroundTimer) clearInterval(this.backgroundTimer);
    this.backgroundTimer = undefined;
  }
}

export function credentialFor(rec: AccountRecord): Credential {
  const c = rec.credential;
  if (c.type === 'secret' && c.secret) return { type: 'secret', secret: c.secret };
  if (c.type === 'certificate' && c.certFile) return loadCertificate(c.certFile, c.keyFile, c.keyPassphrase, c.alg ?? 'PS256');
  return { type: 'none' };
}

export function flowContextFor(rec: AccountRecord, options: { caFile?: string; timeoutMs?: number } = {}): FlowContext {
  return {
    account: rec.email,
    clientId: rec.clientId,
    endpoints: resolveEndpoints(rec.authorityHost, rec.tenant, rec.endpoints),
    credential: credentialFor(rec),
    caFile: rec.caFile ?? options.caFile,
    timeoutMs: options.timeoutMs,
  };
}

export function openTokenManager(opts: { stateDir: string; caFile?: string; marginSeconds?: number; log?: Logger; env?: NodeJS.ProcessEnv }): TokenManager {
  const env = opts.env ?? process.env;
  const store = new AccountStore(opts.stateDir, { env: env.RELAY365_STORE_KEY, keyFile: env.RELAY365_STORE_KEY_FILE, passphrase: env.RELAY365_STORE_PASSPHRASE });
  return new TokenManager(store, { caFile: opts.caFile, marginSeconds: opts.marginSeconds, log: opts.log });
}
