/**
 * SASL bearer mechanisms for Microsoft 365 and other OAuth mail servers.
 * @see https://learn.microsoft.com/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth
 * @see RFC 7628 (OAUTHBEARER)
 */

/** base64("user=" user ^A "auth=Bearer " token ^A ^A) — XOAUTH2 initial client response. */
export function xoauth2(user: string, token: string): string {
  return Buffer.from(`user=${user}\x01auth=Bearer ${token}\x01\x01`, 'utf8').toString('base64');
}

/** RFC 7628 OAUTHBEARER initial client response. */
export function oauthbearer(user: string, token: string, host?: string, port?: number): string {
  const saslname = user.replace(/=/g, '=3D').replace(/,/g, '=2C');
  const kv = [`n,a=${saslname},`, ...(host ? [`host=${host}`] : []), ...(port ? [`port=${port}`] : []), `auth=Bearer ${token}`];
  return Buffer.from(`${kv.join('\x01')}\x01\x01`, 'utf8').toString('base64');
}

/** RFC 7628 §3.2.3: the client answers an error challenge with a single ^A. */
export const OAUTHBEARER_ERROR_RESPONSE = Buffer.from('\x01').toString('base64');

/** Decode a server's error challenge (Gmail XOAUTH2 / RFC 7628 JSON) for diagnostics; undefined if not JSON. */
export function decodeErrorChallenge(b64: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(Buffer.from(b64.trim(), 'base64').toString('utf8'));
    return v && typeof v === 'object' ? v : undefined;
  } catch {
    return undefined;
  }
}
