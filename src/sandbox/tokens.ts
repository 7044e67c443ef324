/**
 * Access tokens the sandbox issues and its mail servers accept: RS256 JWTs signed with a key of
 * the sandbox's own (published in JWKS), claims shaped like Entra's (fact sheet §8.2; exact
 * Exchange `aud` values are UNVERIFIED, the proposed ones are used). Written with node:crypto
 * only, independently of relay365's client code.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, createSign, createVerify, randomUUID, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const OUTLOOK_DELEGATED_AUD = 'https://outlook.office.com';
export const OUTLOOK_APP_AUD = 'https://outlook.office365.com';
export const GRAPH_AUD = 'https://graph.microsoft.com';
export const GRAPH_APP_ID = '00000003-0000-0000-c000-000000000000';

export interface AccessTokenClaims {
  aud: string;
  iss: string;
  iat: number;
  nbf: number;
  exp: number;
  tid: string;
  oid: string;
  /** Pairwise subject (per user or service principal and application), as Entra issues it. */
  sub: string;
  appid: string;
  azp?: string;
  scp?: string;
  roles?: string[];
  upn?: string;
  unique_name?: string;
  ver: '1.0' | '2.0';
  uti: string;
}

export type TokenCheck = { ok: true; claims: AccessTokenClaims } | { ok: false; reason: 'malformed' | 'signature' | 'expired' | 'not-yet-valid' };

const b64url = (v: Buffer | string) => Buffer.from(v).toString('base64url');

export class TokenSigner {
  readonly kid: string;
  private readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;

  constructor(stateDir: string) {
    const keyFile = join(stateDir, 'signing-key.pem');
    if (!existsSync(keyFile)) {
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    }
    this.privateKey = createPrivateKey(readFileSync(keyFile));
    this.publicKey = createPublicKey(this.privateKey);
    const jwk = this.publicKey.export({ format: 'jwk' });
    this.kid = b64url(String(jwk.n).slice(0, 24));
  }

  jwks(): { keys: unknown[] } {
    const jwk = this.publicKey.export({ format: 'jwk' });
    return { keys: [{ kty: 'RSA', use: 'sig', kid: this.kid, x5t: this.kid, n: jwk.n, e: jwk.e, alg: 'RS256' }] };
  }

  sign(claims: Omit<AccessTokenClaims, 'iat' | 'nbf' | 'uti' | 'ver' | 'iss' | 'sub'> & { ver?: '1.0' | '2.0'; sub?: string }, now = Date.now()): string {
    const iat = Math.floor(now / 1000);
    const payload: AccessTokenClaims = {
      ver: '1.0',
      iss: `https://sts.windows.net/${claims.tid}/`,
      iat,
      nbf: iat - 300,
      uti: randomUUID().replace(/-/g, '').slice(0, 22),
      // Servers that validate tokens themselves (Dovecot's oauth2 passdb) refuse a JWT without it.
      sub: createHash('sha256').update(`${claims.oid}:${claims.appid}`).digest('base64url').slice(0, 43),
      ...claims,
    };
    const header = { typ: 'JWT', alg: 'RS256', kid: this.kid, x5t: this.kid };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
    const sig = createSign('RSA-SHA256').update(input).sign(this.privateKey);
    return `${input}.${b64url(sig)}`;
  }

  verify(token: string, now = Date.now()): TokenCheck {
    const parts = token.split('.');
    if (parts.length !== 3) return { ok: false, reason: 'malformed' };
    let header: { alg?: string; kid?: string };
    let claims: AccessTokenClaims;
    try {
      header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8'));
      claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    } catch {
      return { ok: false, reason: 'malformed' };
    }
    if (header.alg !== 'RS256' || header.kid !== this.kid) return { ok: false, reason: 'signature' };
    const good = createVerify('RSA-SHA256').update(`${parts[0]}.${parts[1]}`).verify(this.publicKey, Buffer.from(parts[2]!, 'base64url'));
    if (!good) return { ok: false, reason: 'signature' };
    const t = Math.floor(now / 1000);
    if (typeof claims.exp !== 'number' || claims.exp <= t) return { ok: false, reason: 'expired' };
    if (typeof claims.nbf === 'number' && claims.nbf > t + 300) return { ok: false, reason: 'not-yet-valid' };
    return { ok: true, claims };
  }
}

export function isOutlookAudience(aud: string): boolean {
  return aud === OUTLOOK_DELEGATED_AUD || aud === OUTLOOK_APP_AUD || aud === '00000002-0000-0ff1-ce00-000000000000';
}

export function isGraphAudience(aud: string): boolean {
  return aud === GRAPH_AUD || aud === GRAPH_APP_ID || aud === `${GRAPH_AUD}/`;
}
