/**
 * Turns identity-platform answers into OAuthError with the AADSTS code, a temporary flag and the
 * fix. Only a definitive invalid_grant means "sign in again"; network trouble, 5xx and 429 are
 * temporary and never cost a refresh token.
 */
import * as oauth from 'oauth4webapi';
import { OAuthError } from '../core/errors.js';

const HINTS: Record<number, string> = {
  7000215: 'The client secret is wrong. Use the secret VALUE (shown once when created), not the secret ID.',
  7000222: 'The client secret has expired. Create a new one under App registrations > Certificates & secrets and update the account (relay365 account add … --client-secret-file).',
  7000218: 'The app is confidential. Turn on "Allow public client flows" in the app registration (Authentication) for device-code sign-in, or pass the client secret.',
  700025: 'The app is a public client: do not send a client secret.',
  700016: 'The client id is unknown in this tenant: check --client-id and --tenant, or ask an admin to consent to the app in this tenant.',
  90002: 'The tenant was not found: check --tenant (tenant id or verified domain) and the cloud (--cloud).',
  65001: 'Consent is missing: sign in interactively once, or have an admin grant consent for the app.',
  70011: 'A scope is not valid. Prefix Exchange scopes with https://outlook.office.com/ (delegated) or use https://outlook.office365.com/.default (application).',
  1002012: 'Client-credentials flows need a /.default scope, e.g. https://outlook.office365.com/.default.',
  9001023: 'Client credentials need a tenant-specific authority: use --tenant <tenant id or domain>, not common/consumers.',
  50173: 'The refresh token was revoked (password change or admin "revoke sessions"). Run `relay365 account reauth {account}`.',
  700082: 'The refresh token expired after 90 days without use. Run `relay365 account reauth {account}`.',
  70008: 'The grant expired. Run `relay365 account reauth {account}`.',
  70000: 'The refresh token is invalid for this app. Run `relay365 account reauth {account}`.',
  50076: 'Multi-factor authentication is required: use the device-code or browser flow (`relay365 account reauth {account}`).',
  53003: 'A Conditional Access policy blocks this sign-in. An administrator must allow this client/location.',
  700024: 'The client assertion is outside its time window: check the system clock.',
  700027: 'The certificate is not registered on the app (or the signature is wrong): upload the certificate under Certificates & secrets.',
  50027: 'The client assertion has no certificate thumbprint header.',
  50126: 'Wrong user name or password.',
  54005: 'The authorization code was already used; start the sign-in again.',
};

const REAUTH_CODES = new Set([50173, 700082, 70008, 70000, 50076, 65001, 54005, 70043, 700084]);

export function aadstsOf(body: Record<string, unknown> | undefined): number | undefined {
  const codes = body?.error_codes;
  if (Array.isArray(codes) && typeof codes[0] === 'number') return codes[0];
  const m = /AADSTS(\d+)/.exec(String(body?.error_description ?? ''));
  return m ? Number(m[1]) : undefined;
}

export function hintFor(aadsts: number | undefined, account: string): string | undefined {
  return aadsts === undefined ? undefined : HINTS[aadsts]?.replace('{account}', account);
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
