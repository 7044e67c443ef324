/**
 * Importers for the token files people already have: sasl-xoauth2 (Postfix plugin) token files
 * with their sasl-xoauth2.conf, and SMAIL's smail_refresh_token.ini; and an exporter back to the
 * sasl-xoauth2 format for those who keep Postfix + the plugin.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { OAuthError } from '../core/errors.js';
import type { AccountRecord } from './store.js';
import type { TokenPurpose } from './types.js';

export interface ImportOptions {
  /** Account address; default: SMAIL's UserID, or the sasl-xoauth2 token file's name. */
  email?: string;
  /** sasl-xoauth2.conf path (client_id, client_secret, token_endpoint). */
  saslConf?: string;
  caFile?: string;
  purposes?: TokenPurpose[];
}

interface Endpoint {
  authorityHost: string;
  tenant: string;
  overrides?: AccountRecord['endpoints'];
}

/** Split a v2 token endpoint URL into authority host + tenant; anything else becomes an override. */
export function splitTokenEndpoint(url: string): Endpoint {
  const u = new URL(url);
  const m = /^\/([^/]+)\/oauth2\/v2\.0\/token\/?$/.exec(u.pathname);
  if (m) return { authorityHost: `${u.protocol}//${u.host}`, tenant: decodeURIComponent(m[1]!) };
  return { authorityHost: `${u.protocol}//${u.host}`, tenant: 'common', overrides: { token: url } };
}

function parseIni(text: string): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  let section = '';
  for (const raw of text.replace(/^\uFEFF/, '').split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith(';') || line.startsWith('#')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) {
      section = s[1]!.toUpperCase();
      out[section] ??= {};
      continue;
    }
    const i = line.indexOf('=');
    if (i > 0) (out[section] ??= {})[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

export function importTokenFile(file: string, opts: ImportOptions = {}): AccountRecord {
  const text = readFileSync(file, 'utf8');
  const now = new Date().toISOString();
  if (/^\s*\[OAUTH2\]/im.test(text)) {
    const ini = parseIni(text).OAUTH2 ?? {};
    const need = (k: string) => {
      if (!ini[k]) throw new OAuthError('OAUTH_FLOW', `${file}: [OAUTH2] ${k}= is missing (SMAIL smail_refresh_token.ini format)`);
      return ini[k]!;
    };
    const ep = splitTokenEndpoint(need('TokenURI'));
    const authorize = ini.OuthURI;
    return {
      email: (opts.email ?? need('UserID')).toLowerCase(),
      tenant: ep.tenant,
      clientId: need('ClientID'),
      flow: 'imported',
      authorityHost: ep.authorityHost,
      endpoints: { ...ep.overrides, ...(authorize && !authorize.includes(`/${ep.tenant}/oauth2/v2.0/authorize`) ? { authorize } : {}) },
      caFile: opts.caFile,
      purposes: opts.purposes ?? ['smtp', 'pop'],
      redirectUri: 'http://localhost:8001/myapp/',
      credential: ini.ClientSecret ? { type: 'secret', secret: ini.ClientSecret } : { type: 'none' },
      refreshToken: need('RefreshToken'),
      state: 'valid',
      createdAt: now,
      updatedAt: now,
    };
  }
  let token: { access_token?: string; refresh_token?: string; expiry?: number | string; client_id?: string; client_secret?: string; token_endpoint?: string };
  try {
    token = JSON.parse(text);
  } catch {
    throw new OAuthError('OAUTH_FLOW', `${file}: neither a sasl-xoauth2 token file (JSON) nor a SMAIL [OAUTH2] ini file`);
  }
  if (!token.refresh_token) throw new OAuthError('OAUTH_FLOW', `${file}: no refresh_token in the sasl-xoauth2 token file`);
  const conf = opts.saslConf ? (JSON.parse(readFileSync(opts.saslConf, 'utf8')) as { client_id?: string; client_secret?: string; token_endpoint?: string }) : {};
  const clientId = token.client_id ?? conf.client_id;
  if (!clientId) throw new OAuthError('OAUTH_FLOW', `${file}: no client_id; pass --sasl-conf /etc/sasl-xoauth2.conf`);
  const ep = splitTokenEndpoint(token.token_endpoint ?? conf.token_endpoint ?? 'https://login.microsoftonline.com/common/oauth2/v2.0/token');
  const secret = token.client_secret ?? conf.client_secret;
  const expiry = Number(token.expiry ?? 0) * 1000;
  return {
    email: (opts.email ?? basename(file)).toLowerCase(),
    tenant: ep.tenant,
    clientId,
    flow: 'imported',
    authorityHost: ep.authorityHost,
    endpoints: ep.overrides,
    caFile: opts.caFile,
    purposes: opts.purposes ?? ['smtp'],
    credential: secret ? { type: 'secret', secret } : { type: 'none' },
    refreshToken: token.refresh_token,
    access: token.access_token && expiry > Date.now() ? { outlook: { token: token.access_token, expiresAt: expiry } } : undefined,
    state: 'valid',
    createdAt: now,
    updatedAt: now,
  };
}

/** sasl-xoauth2's token file: {access_token, refresh_token, expiry (epoch seconds)}. */
export function exportSaslXoauth2(rec: AccountRecord): string {
  const a = rec.access?.outlook;
  return `${JSON.stringify({ access_token: a?.token ?? '', refresh_token: rec.refreshToken ?? '', expiry: a ? Math.floor(a.expiresAt / 1000) : 0 }, null, 4)}\n`;
}
