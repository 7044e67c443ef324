/**
 * OAuth 2.0 grants against the Microsoft identity platform (or any compliant server) with
 * oauth4webapi: client credentials (secret or certificate), refresh, device code (RFC 8628),
 * authorization code + PKCE with a loopback redirect, and ROPC when explicitly enabled.
 * Every exchange is request → process, as oauth4webapi pairs them.
 */
import { createHash, createPrivateKey, webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as oauth from 'oauth4webapi';
import { createRequire } from 'node:module';
import { OAuthError } from '../core/errors.js';
import { makeFetch } from './http.js';
import { toOAuthError } from './errors.js';
import type { Endpoints } from './authority.js';

export type Credential =
  | { type: 'none' }
  | { type: 'secret'; secret: string }
  | { type: 'certificate'; certPem: string; keyPem: string; alg: 'PS256' | 'RS256' };

export interface FlowContext {
  account: string;
  clientId: string;
  endpoints: Endpoints;
  credential: Credential;
  caFile?: string;
  timeoutMs?: number;
}

export interface TokenSet {
  accessToken: string;
  expiresAt: number;
  refreshToken?: string;
  scope?: string;
}

function server(ctx: FlowContext): oauth.AuthorizationServer {
  return { issuer: ctx.endpoints.issuer, token_endpoint: ctx.endpoints.token, device_authorization_endpoint: ctx.endpoints.device, authorization_endpoint: ctx.endpoints.authorize };
}

function requestOptions(ctx: FlowContext): { [oauth.customFetch]: typeof fetch; [oauth.allowInsecureRequests]: boolean } {
  // http:// endpoints were already limited to loopback hosts by resolveEndpoints().
  return { [oauth.customFetch]: makeFetch({ caFile: ctx.caFile, timeoutMs: ctx.timeoutMs }), [oauth.allowInsecureRequests]: ctx.endpoints.token.startsWith('http:') };
}

async function clientAuth(ctx: FlowContext): Promise<oauth.ClientAuth> {
  const c = ctx.credential;
  if (c.type === 'secret') return oauth.ClientSecretPost(c.secret);
  if (c.type === 'none') return oauth.None();
  const der = createPrivateKey(c.keyPem).export({ type: 'pkcs8', format: 'der' });
  const algorithm = c.alg === 'PS256' ? { name: 'RSA-PSS', hash: 'SHA-256' } : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  const key = await webcrypto.subtle.importKey('pkcs8', der, algorithm, false, ['sign']);
  const certDer = Buffer.from(c.certPem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, ''), 'base64');
  return oauth.PrivateKeyJwt(key as unknown as Parameters<typeof oauth.PrivateKeyJwt>[0], {
    [oauth.modifyAssertion]: (header, payload) => {
      // Entra wants the token endpoint as audience and the certificate thumbprint in the header (fact sheet §1.7).
      payload.aud = ctx.endpoints.token;
      if (c.alg === 'PS256') header['x5t#S256'] = createHash('sha256').update(certDer).digest('base64url');
      else header.x5t = createHash('sha1').update(certDer).digest('base64url');
    },
  });
}

function tokenSet(r: oauth.TokenEndpointResponse): TokenSet {
  return { accessToken: r.access_token, expiresAt: Date.now() + (r.expires_in ?? 3600) * 1000, refreshToken: r.refresh_token, scope: r.scope };
}

const client = (ctx: FlowContext): oauth.Client => ({ client_id: ctx.clientId });

export async function clientCredentials(ctx: FlowContext, scope: string): Promise<TokenSet> {
  try {
    const as = server(ctx);
    const res = await oauth.clientCredentialsGrantRequest(as, client(ctx), await clientAuth(ctx), { scope }, requestOptions(ctx));
    return tokenSet(await oauth.processClientCredentialsResponse(as, client(ctx), res));
  } catch (err) {
    throw toOAuthError(err, ctx.account);
  }
}

export async function refresh(ctx: FlowContext, refreshToken: string, scope: string): Promise<TokenSet> {
  try {
    const as = server(ctx);
    const res = await oauth.refreshTokenGrantRequest(as, client(ctx), await clientAuth(ctx), refreshToken, { ...requestOptions(ctx), additionalParameters: { scope } });
    return tokenSet(await oauth.processRefreshTokenResponse(as, client(ctx), res));
  } catch (err) {
    throw toOAuthError(err, ctx.account);
  }
}

export async function passwordGrant(ctx: FlowContext, username: string, password: string, scope: string): Promise<TokenSet> {
  try {
    const as = server(ctx);
    const res = await oauth.genericTokenEndpointRequest(as, client(ctx), await clientAuth(ctx), 'password', { username, password, scope }, requestOptions(ctx));
    return tokenSet(await oauth.processGenericTokenEndpointResponse(as, client(ctx), res));
  } catch (err) {
    throw toOAuthError(err, ctx.account);
  }
}

export interface DevicePrompt {
  verification_uri: string;
  user_code: string;
  expires_in: number;
  message?: string;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(new OAuthError('OAUTH_FLOW', 'Sign-in cancelled.'));
    });
  });

/** RFC 8628 device authorization grant: slow_down adds 5 s, polling stops at expires_in. */
export async function deviceCode(ctx: FlowContext, scope: string, onPrompt: (p: DevicePrompt) => void, signal?: AbortSignal): Promise<TokenSet> {
  const as = server(ctx);
  let auth: oauth.DeviceAuthorizationResponse;
  try {
    const res = await oauth.deviceAuthorizationRequest(as, client(ctx), await clientAuth(ctx), { scope }, requestOptions(ctx));
    auth = await oauth.processDeviceAuthorizationResponse(as, client(ctx), res);
  } catch (err) {
    throw toOAuthError(err, ctx.account);
  }
  onPrompt({ verification_uri: auth.verification_uri, user_code: auth.user_code, expires_in: auth.expires_in, message: typeof auth.message === 'string' ? auth.message : undefined });
  let interval = (auth.interval ?? 5) * 1000;
  const deadline = Date.now() + auth.expires_in * 1000;
  while (Date.now() < deadline) {
    await sleep(interval, signal);
    try {
      const res = await oauth.deviceCodeGrantRequest(as, client(ctx), await clientAuth(ctx), auth.device_code, requestOptions(ctx));
      return tokenSet(await oauth.processDeviceCodeResponse(as, client(ctx), res));
    } catch (err) {
      if (err instanceof oauth.ResponseBodyError) {
        if (err.error === 'authorization_pending') continue;
        if (err.error === 'slow_down') {
          interval += 5000;
          continue;
        }
        if (err.error === 'authorization_declined' || err.error === 'access_denied') throw new OAuthError('OAUTH_FLOW', 'The sign-in was declined.');
        if (err.status === 429 || err.status >= 500) {
          const retryAfter = Number(err.response.headers.get('retry-after'));
          if (retryAfter > 0) await sleep(retryAfter * 1000, signal);
          continue;
        }
      }
      throw toOAuthError(err, ctx.account);
    }
  }
  throw new OAuthError('OAUTH_FLOW', 'The device code expired before the sign-in was completed.', { hint: 'Run the command again and finish the sign-in within the time shown.' });
}

export interface BrowserFlowOptions {
  scope: string;
  /** Fixed redirect URI (e.g. SMAIL's http://localhost:8001/myapp/); default: http://localhost:<free port>/ */
  redirectUri?: string;
  loginHint?: string;
  /** Called with the URL to open; may open a browser or print it. */
  onAuthorizeUrl: (url: string) => void | Promise<void>;
  /** A redirect URL pasted by a person (SSH without a browser); raced against the loopback listener. */
  pastedRedirect?: Promise<string>;
  signal?: AbortSignal;
  timeoutMs?: number;
}

/** Authorization code + PKCE (S256) with a loopback redirect listener; `state` is checked. */
export async function authorizationCode(ctx: FlowContext, opts: BrowserFlowOptions): Promise<TokenSet> {
  const as = server(ctx);
  const verifier = oauth.generateRandomCodeVerifier();
  const challenge = await oauth.calculatePKCECodeChallenge(verifier);
  const state = oauth.generateRandomState();
  const fixed = opts.redirectUri ? new URL(opts.redirectUri) : undefined;
  let resolveCallback!: (u: URL) => void;
  const callback = new Promise<URL>((r) => (resolveCallback = r));
  const listener = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://localhost');
    if (!u.searchParams.has('code') && !u.searchParams.has('error')) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>relay365</title><h1>Sign-in complete.</h1><p>You can close this window and return to relay365.</p>');
    resolveCallback(u);
  });
  await new Promise<void>((resolve, reject) => {
    listener.once('error', (e) => reject(new OAuthError('OAUTH_FLOW', `Cannot listen on the redirect URI port: ${(e as Error).message}`)));
    listener.listen(fixed ? Number(fixed.port || 80) : 0, '127.0.0.1', resolve);
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    const port = (listener.address() as AddressInfo).port;
    const redirectUri = fixed ? fixed.toString() : `http://localhost:${port}/`;
    const url = new URL(ctx.endpoints.authorize);
    url.search = new URLSearchParams({
      client_id: ctx.clientId,
      response_type: 'code',
      redirect_uri: redirectUri,
      response_mode: 'query',
      scope: opts.scope,
      state,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      ...(opts.loginHint ? { login_hint: opts.loginHint } : {}),
    }).toString();
    await opts.onAuthorizeUrl(url.toString());
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new OAuthError('OAUTH_FLOW', 'Timed out waiting for the browser sign-in.')), opts.timeoutMs ?? 10 * 60_000);
      opts.signal?.addEventListener('abort', () => reject(new OAuthError('OAUTH_FLOW', 'Sign-in cancelled.')));
    });
    const pasted = opts.pastedRedirect?.then((s) => new URL(s.trim()));
    const returned = await Promise.race([callback, timeout, ...(pasted ? [pasted] : [])]);
    let params: URLSearchParams;
    try {
      params = oauth.validateAuthResponse(as, client(ctx), returned.searchParams, state);
    } catch (err) {
      if (err instanceof oauth.AuthorizationResponseError) {
        throw new OAuthError('OAUTH_FLOW', `The sign-in failed: ${err.error}: ${err.error_description ?? ''}`, { oauthError: err.error });
      }
      throw new OAuthError('OAUTH_FLOW', `The redirect did not match this sign-in (state check failed): ${(err as Error).message}`);
    }
    try {
      const res = await oauth.authorizationCodeGrantRequest(as, client(ctx), await clientAuth(ctx), params, redirectUri, verifier, requestOptions(ctx));
      return tokenSet(await oauth.processAuthorizationCodeResponse(as, client(ctx), res));
    } catch (err) {
      throw toOAuthError(err, ctx.account);
    }
  } finally {
    clearTimeout(timer);
    listener.close();
    listener.closeAllConnections();
  }
}

/** Read a certificate credential from PEM files or a PFX (optionally encrypted). */
export function loadCertificate(certFile: string, keyFile: string | undefined, passphrase: string | undefined, alg: 'PS256' | 'RS256'): Extract<Credential, { type: 'certificate' }> {
  const data = readFileSync(certFile);
  if (/\.(pfx|p12)$/i.test(certFile)) {
    // node-forge (PKCS#12) is required here only: it is large and most accounts never load a PFX.
    const forge = createRequire(import.meta.url)('node-forge') as typeof import('node-forge');
    const p12 = forge.pkcs12.pkcs12FromAsn1(forge.asn1.fromDer(data.toString('binary')), passphrase ?? '');
    const certBag = p12.getBags({ bagType: forge.pki.oids.certBag })[forge.pki.oids.certBag]?.[0];
    const keyBag = p12.getBags({ bagType: forge.pki.oids.pkcs8ShroudedKeyBag })[forge.pki.oids.pkcs8ShroudedKeyBag]?.[0] ?? p12.getBags({ bagType: forge.pki.oids.keyBag })[forge.pki.oids.keyBag]?.[0];
    if (!certBag?.cert || !keyBag?.key) throw new OAuthError('OAUTH_FLOW', `${certFile}: the PFX must contain a certificate and its private key`);
    return { type: 'certificate', certPem: forge.pki.certificateToPem(certBag.cert), keyPem: forge.pki.privateKeyToPem(keyBag.key), alg };
  }
  const text = data.toString('utf8');
  const cert = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(text)?.[0];
  const keyText = keyFile ? readFileSync(keyFile, 'utf8') : text;
  if (!cert) throw new OAuthError('OAUTH_FLOW', `${certFile}: no PEM certificate found`);
  const key = createPrivateKey({ key: keyText, passphrase });
  return { type: 'certificate', certPem: cert, keyPem: key.export({ type: 'pkcs8', format: 'pem' }).toString(), alg };
}
