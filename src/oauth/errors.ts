/**
 * Turns identity-platform answers into OAuthError with the AADSTS code, a temporary flag and the
 * fix. Only a definitive invalid_grant means "sign in again"; network trouble, 5xx and 429 are
 * temporary and never cost a refresh token.
 */
import * as oauth from 'oauth4webapi';
import { OAuthError } from '../core/errors.js';
import { explainAadsts } from '../core/catalogue.js';


const REAUTH_CODES = new Set([50173, 700082, 70008, 70000, 50076, 65001, 54005, 70043, 700084]);

export function aadstsOf(body: Record<string, unknown> | undefined): number | undefined {
  const codes = body?.error_codes;
  if (Array.isArray(codes) && typeof codes[0] === 'number') return codes[0];
  const m = /AADSTS(\d+)/.exec(String(body?.error_description ?? ''));
  return m ? Number(m[1]) : undefined;
}

export function hintFor(aadsts: number | undefined, account: string): string | undefined {
  if (aadsts === undefined) return undefined;
  const entry = explainAadsts(aadsts);
  return entry ? `${entry.en.cause} ${entry.en.fix}`.replace(/<account>/g, account) : undefined;
}

/** True when the failure means the stored grant is dead and a person must sign in again. */
export function needsReauth(err: OAuthError): boolean {
  return err.oauthError === 'invalid_grant' || (err.aadsts !== undefined && REAUTH_CODES.has(err.aadsts));
}

export function toOAuthError(err: unknown, account: string): OAuthError {
  if (err instanceof OAuthError) return err;
  if (err instanceof oauth.ResponseBodyError) {
    const body = err.cause as Record<string, unknown>;
    const aadsts = aadstsOf(body);
    const temporary = err.status >= 500 || err.status === 429 || err.error === 'temporarily_unavailable';
    const firstLine = String(err.error_description ?? err.error).split(/\r?\n/)[0];
    return new OAuthError(temporary ? 'OAUTH_TEMPORARY' : 'OAUTH_SERVER', `Token request for ${account} failed: ${err.error}: ${firstLine}`, {
      aadsts,
      oauthError: err.error,
      temporary,
      hint: hintFor(aadsts, account) ?? (temporary ? 'The identity platform is unavailable; relay365 keeps the refresh token and retries.' : undefined),
      details: { status: err.status, retryAfter: err.response.headers.get('retry-after') ?? undefined },
    });
  }
  const e = err as Error & { cause?: { code?: string } };
  const message = e?.message ?? String(err);
  return new OAuthError('OAUTH_TEMPORARY', `Token request for ${account} failed: ${message}${e?.cause?.code ? ` (${e.cause.code})` : ''}`, {
    temporary: true,
    cause: err,
    hint: 'Check network access to the identity platform (proxy, DNS, firewall). The refresh token is kept.',
  });
}
