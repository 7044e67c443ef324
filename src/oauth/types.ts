/**
 * The contract every transport, fetcher and checker uses to get credentials. The token manager
 * (./manager.ts) implements it; nothing outside src/oauth/ talks to the identity platform.
 */

/** What a token is for; decides the scope/resource requested. */
export type TokenPurpose = 'smtp' | 'imap' | 'pop' | 'graph';

export interface AccessToken {
  /** The bearer token itself. Never log it: pass it only to SASL/HTTP code. */
  token: string;
  /** Epoch milliseconds when the token expires. */
  expiresAt: number;
  /** The account (mailbox or app identity) the token belongs to. */
  account: string;
  /** The mailbox to put in SASL `user=` (the account's mailbox, or a shared/target mailbox). */
  username: string;
  purpose: TokenPurpose;
}

export interface TokenRequest {
  purpose?: TokenPurpose;
  /** Refresh if less than this many seconds are left (default: the manager's margin, 300 s; HVE needs 600). */
  minValiditySeconds?: number;
  /** Ignore the cached token (e.g. after the server answered 535 5.7.3 for it). */
  forceRefresh?: boolean;
}

export interface TokenProvider {
  /** A valid access token for `account`, refreshing (single-flight) when needed. Throws OAuthError. */
  getAccessToken(account: string, request?: TokenRequest): Promise<AccessToken>;
  /**
   * A server rejected `token` (535 5.7.3, NO AUTHENTICATE failed, 401): drop it from the cache so the
   * next getAccessToken() refreshes. Returns a fresh token for one retry.
   */
  tokenRejected(account: string, token: string, request?: TokenRequest): Promise<AccessToken>;
  /**
   * A server refused the account's login although the token is fine (535 5.7.139, 5.7.3 after a
   * refresh …): noted on the account with the fix, so `account list` and the admin page say why
   * its mail waits. Cleared by noteServerAccepted() or the next refresh.
   */
  noteServerRefusal?(account: string, problem: { code: string; message: string; hint?: string }): Promise<void>;
  noteServerAccepted?(account: string): Promise<void>;
}
