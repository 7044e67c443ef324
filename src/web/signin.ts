/**
 * Interactive sign-ins started from the admin page: the authorization-code flow (PKCE, loopback
 * redirect) and the device-code flow, both from src/oauth. A sign-in runs in the relay process
 * while the page polls its status; the result is written to the token store the relay already
 * reads, so the account is usable by the next delivery.
 */
import { OAuthError, isRelay365Error, toRelay365Error } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { authorizationCode, CLOUDS, deviceCode, flowContextFor, resourceGroup, scopeFor, storeGrant, type AccountRecord, type TokenManager, type TokenSet } from '../oauth/index.js';
import { randomToken } from './auth.js';

export type SignInFlow = 'browser' | 'device';

export interface SignIn {
  id: string;
  email: string;
  flow: SignInFlow;
  /** add: a new account; reauth: new tokens for an existing one. */
  purpose: 'add' | 'reauth';
  status: 'starting' | 'waiting' | 'done' | 'failed' | 'cancelled';
  startedAt: number;
  finishedAt?: number;
  authorizeUrl?: string;
  device?: { verificationUri: string; userCode: string; expiresAt: number; message?: string };
  error?: { message: string; hint?: string; aadsts?: number };
  expiresAt?: number;
}

interface Running {
  info: SignIn;
  abort: AbortController;
  paste?: (url: string) => void;
}

const MAX_RUNNING = 8;
const KEEP_FINISHED_MS = 30 * 60_000;

/** Not finished yet: the flow is (or is about to be) waiting for the user. */
const open = (s: SignIn) => s.status === 'starting' || s.status === 'waiting';

export class SignIns {
  private readonly running = new Map<string, Running>();

  constructor(
    private readonly deps: { tokens: TokenManager; caFile?: string; log: Logger; onAccountsChanged?: () => void | Promise<void> },
  ) {}

  get(id: string): SignIn | undefined {
    return this.running.get(id)?.info;
  }

  /** Every sign-in still kept (waiting, or finished in the last 30 minutes). */
  list(): SignIn[] {
    return [...this.running.values()].map((r) => r.info);
  }

  /**
   * Starts the flow for `rec` and resolves once there is something to show (the authorization URL
   * or the device code), or the flow failed before that.
   */
  async start(rec: AccountRecord, flow: SignInFlow, purpose: SignIn['purpose']): Promise<SignIn> {
    this.sweep();
    if (this.list().filter(open).length >= MAX_RUNNING) {
      throw new OAuthError('OAUTH_FLOW', `Too many sign-ins are waiting (${MAX_RUNNING}); finish or cancel one first.`);
    }
    // Bad endpoints or a missing certificate throw here, before anything is registered.
    const ctx = flowContextFor(rec, { caFile: this.deps.caFile });
    const cloud = CLOUDS[rec.cloud ?? 'global'] ?? CLOUDS.global!;
    const group = resourceGroup(rec.purposes[0] ?? 'smtp');
    const scope = rec.scope ?? scopeFor(group, rec.purposes, false, cloud);
    const info: SignIn = { id: randomToken(12), email: rec.email, flow, purpose, status: 'starting', startedAt: Date.now() };
    const run: Running = { info, abort: new AbortController() };
    this.running.set(info.id, run);
    let shown!: () => void;
    const ready = new Promise<void>((resolve) => (shown = resolve));

    const tokens: Promise<TokenSet> =
      flow === 'browser'
        ? authorizationCode(ctx, {
            scope,
            redirectUri: rec.redirectUri,
            loginHint: rec.email,
            signal: run.abort.signal,
            timeoutMs: 15 * 60_000,
            pastedRedirect: new Promise<string>((resolve) => (run.paste = resolve)),
            onAuthorizeUrl: (url) => {
              info.authorizeUrl = url;
              info.expiresAt = Date.now() + 15 * 60_000;
              info.status = 'waiting';
              shown();
            },
          })
        : deviceCode(
            ctx,
            scope,
            (p) => {
              info.device = { verificationUri: p.verification_uri, userCode: p.user_code, expiresAt: Date.now() + p.expires_in * 1000, message: p.message };
              info.expiresAt = info.device.expiresAt;
              info.status = 'waiting';
              shown();
            },
            run.abort.signal,
          );

    tokens
      .then(async (set) => {
        // Re-authorization keeps every stored setting and replaces only the grant.
        const stored = await storeGrant(this.deps.tokens, rec, set, purpose);
        info.status = 'done';
        this.deps.log.info({ account: rec.email, flow, purpose, kept: stored.kept, dropped: stored.dropped, identityChanged: stored.identityChanged }, 'account signed in from the admin page');
        await this.deps.onAccountsChanged?.();
      })
      .catch((e: unknown) => {
        const err = isRelay365Error(e) ? e : toRelay365Error(e);
        if (info.status !== 'cancelled') info.status = 'failed';
        info.error = { message: err.message, hint: err.hint, aadsts: err.aadsts };
        this.deps.log.warn({ account: rec.email, flow, code: err.code, aadsts: err.aadsts }, 'sign-in from the admin page failed');
      })
      .finally(() => {
        info.finishedAt = Date.now();
        run.paste = undefined;
        shown();
      });
    await ready;
    return info;
  }

  /** A redirect URL pasted by someone whose browser could not reach the loopback listener. */
  paste(id: string, url: string): boolean {
    const run = this.running.get(id);
    if (!run?.paste || run.info.flow !== 'browser') return false;
    run.paste(url);
    return true;
  }

  cancel(id: string): boolean {
    const run = this.running.get(id);
    if (!run || !open(run.info)) return false;
    run.info.status = 'cancelled';
    run.abort.abort();
    return true;
  }

  /** Abort every waiting sign-in (the admin listener is stopping). */
  stop(): void {
    for (const id of this.running.keys()) this.cancel(id);
  }

  private sweep(): void {
    const cutoff = Date.now() - KEEP_FINISHED_MS;
    for (const [id, run] of this.running) if (run.info.finishedAt && run.info.finishedAt < cutoff) this.running.delete(id);
  }
}
