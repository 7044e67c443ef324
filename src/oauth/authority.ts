/**
 * Authorities, national clouds, endpoints and scope presets (fact sheet §1.1, §1.9, §2).
 */
import { OAuthError } from '../core/errors.js';
import type { TokenPurpose } from './types.js';

export interface Cloud {
  authorityHost: string;
  /** Delegated Exchange resource. */
  outlook: string;
  /** App-only Exchange resource. */
  outlookApp: string;
  graph: string;
  smtpHost: string;
  imapHost: string;
}

export const CLOUDS: Record<string, Cloud> = {
  global: { authorityHost: 'https://login.microsoftonline.com', outlook: 'https://outlook.office.com', outlookApp: 'https://outlook.office365.com', graph: 'https://graph.microsoft.com', smtpHost: 'smtp.office365.com', imapHost: 'outlook.office365.com' },
  'us-gov': { authorityHost: 'https://login.microsoftonline.us', outlook: 'https://outlook.office365.us', outlookApp: 'https://outlook.office365.us', graph: 'https://graph.microsoft.us', smtpHost: 'smtp.office365.us', imapHost: 'outlook.office365.us' },
  'us-dod': { authorityHost: 'https://login.microsoftonline.us', outlook: 'https://outlook.office365.us', outlookApp: 'https://outlook.office365.us', graph: 'https://dod-graph.microsoft.us', smtpHost: 'smtp.office365.us', imapHost: 'outlook.office365.us' },
  china: { authorityHost: 'https://login.partner.microsoftonline.cn', outlook: 'https://partner.outlook.cn', outlookApp: 'https://partner.outlook.cn', graph: 'https://microsoftgraph.chinacloudapi.cn', smtpHost: 'smtp.partner.outlook.cn', imapHost: 'partner.outlook.cn' },
};

export interface EndpointOverrides {
  token?: string;
  device?: string;
  authorize?: string;
}

export interface Endpoints {
  issuer: string;
  token: string;
  device: string;
  authorize: string;
}

/** Plain http:// is accepted only for loopback hosts (tests, local proxies). */
export function assertSafeUrl(url: string, what: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new OAuthError('OAUTH_FLOW', `${what} is not a valid URL: ${url}`);
  }
  const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(u.hostname);
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && loopback)) {
    throw new OAuthError('OAUTH_FLOW', `${what} must use https:// (http:// is allowed only for loopback hosts): ${url}`);
  }
  return u;
}

export function resolveEndpoints(authorityHost: string, tenant: string, overrides: EndpointOverrides = {}): Endpoints {
  const base = `${authorityHost.replace(/\/+$/, '')}/${encodeURIComponent(tenant)}`;
  const e = {
    issuer: `${base}/v2.0`,
    token: overrides.token ?? `${base}/oauth2/v2.0/token`,
    device: overrides.device ?? `${base}/oauth2/v2.0/devicecode`,
    authorize: overrides.authorize ?? `${base}/oauth2/v2.0/authorize`,
  };
  assertSafeUrl(e.token, 'token endpoint');
  assertSafeUrl(e.device, 'device endpoint');
  assertSafeUrl(e.authorize, 'authorize endpoint');
  return e;
}

/** Purposes that share one token: one resource per token (fact sheet §1.3). */
export function resourceGroup(purpose: TokenPurpose): 'outlook' | 'graph' {
  return purpose === 'graph' ? 'graph' : 'outlook';
}

const DELEGATED_NAME: Record<Exclude<TokenPurpose, 'graph'>, string> = {
  smtp: 'SMTP.Send',
  imap: 'IMAP.AccessAsUser.All',
  pop: 'POP.AccessAsUser.All',
};

/** The scope string for a token request. */
export function scopeFor(group: 'outlook' | 'graph', purposes: TokenPurpose[], appOnly: boolean, cloud: Cloud = CLOUDS.global!): string {
  if (appOnly) return group === 'graph' ? `${cloud.graph}/.default` : `${cloud.outlookApp}/.default`;
  // Mail.ReadWrite: messages over Graph's 4 MB request limit go through a draft and an upload session.
  if (group === 'graph') return `offline_access ${cloud.graph}/Mail.Send ${cloud.graph}/Mail.ReadWrite`;
  const names = purposes.filter((p): p is Exclude<TokenPurpose, 'graph'> => p !== 'graph').map((p) => `${cloud.outlook}/${DELEGATED_NAME[p]}`);
  return ['offline_access', ...new Set(names)].join(' ');
}

/** Reject scope spellings that are known to fail (fact sheet §2.1): a bare SMTP.Send is a Graph scope. */
export function checkCustomScopes(scopes: string[]): void {
  for (const s of scopes) {
    if (['SMTP.Send', 'IMAP.AccessAsUser.All', 'POP.AccessAsUser.All'].includes(s)) {
      throw new OAuthError('OAUTH_SCOPE', `The scope "${s}" without a resource prefix resolves to Microsoft Graph and its token is refused by SMTP/IMAP/POP.`, {
        hint: `Use https://outlook.office.com/${s} (or --scopes smtp,imap,pop and let relay365 choose).`,
      });
    }
  }
}

export function parsePurposes(list: string): TokenPurpose[] {
  const out: TokenPurpose[] = [];
  for (const raw of list.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean)) {
    const p = raw === 'pop3' ? 'pop' : raw;
    if (!['smtp', 'imap', 'pop', 'graph'].includes(p)) throw new OAuthError('OAUTH_SCOPE', `Unknown scope preset "${raw}"; use smtp, imap, pop or graph.`);
    out.push(p as TokenPurpose);
  }
  return out.length ? out : ['smtp'];
}
