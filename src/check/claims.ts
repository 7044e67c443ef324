/**
 * Reads an access token's claims (without verifying the signature: only the resource can do that)
 * and judges them against what a protocol needs (fact sheet §2): the audience, the delegated
 * `scp` or application `roles`, the user versus the mailbox in user=, and the time left.
 * Personal-account (MSA) tokens are opaque; their claims cannot be read.
 */
import { ADVICE } from './advice.js';
import type { CheckProtocol, Explanation } from './types.js';

export interface TokenClaims {
  aud?: string;
  scp?: string;
  roles?: string[];
  upn?: string;
  unique_name?: string;
  preferred_username?: string;
  appid?: string;
  azp?: string;
  oid?: string;
  tid?: string;
  exp?: number;
}

export function decodeJwtClaims(token: string): TokenClaims | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const v = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    return v && typeof v === 'object' ? (v as TokenClaims) : undefined;
  } catch {
    return undefined;
  }
}

const OUTLOOK_AUDIENCES = ['https://outlook.office.com', 'https://outlook.office365.com', '00000002-0000-0ff1-ce00-000000000000', 'https://outlook.office365.us', 'https://partner.outlook.cn'];
const GRAPH_AUDIENCES = ['https://graph.microsoft.com', '00000003-0000-0000-c000-000000000000', 'https://graph.microsoft.us', 'https://dod-graph.microsoft.us', 'https://microsoftgraph.chinacloudapi.cn'];

const isOutlook = (aud: string) => OUTLOOK_AUDIENCES.includes(aud.replace(/\/$/, '').toLowerCase());
const isGraph = (aud: string) => GRAPH_AUDIENCES.includes(aud.replace(/\/$/, '').toLowerCase());

export const NEEDED: Record<CheckProtocol, { delegated: string; application: string }> = {
  smtp: { delegated: 'SMTP.Send', application: 'SMTP.SendAsApp' },
  imap: { delegated: 'IMAP.AccessAsUser.All', application: 'IMAP.AccessAsApp' },
  pop3: { delegated: 'POP.AccessAsUser.All', application: 'POP.AccessAsApp' },
  graph: { delegated: 'Mail.Send', application: 'Mail.Send' },
};

export interface ClaimsVerdict {
  status: 'pass' | 'fail' | 'warn' | 'skip';
  detail: string;
  explanation?: Explanation;
}

export function judgeClaims(token: string, protocol: CheckProtocol, mailbox: string, expiresAt: number, now = Date.now()): ClaimsVerdict {
  const minutesLeft = Math.floor((expiresAt - now) / 60_000);
  const c = decodeJwtClaims(token);
  if (!c) return { status: 'skip', detail: `opaque token (personal Microsoft account): claims are not readable; ${minutesLeft} min left` };
  const app = !c.scp && Array.isArray(c.roles);
  const perms = app ? (c.roles ?? []) : (c.scp ?? '').split(' ').filter(Boolean);
  const user = (c.upn ?? c.preferred_username ?? c.unique_name ?? '').toLowerCase();
  const facts = [`aud ${c.aud}`, app ? `roles ${perms.join(' ') || '(none)'}` : `scp ${perms.join(' ') || '(none)'}`, app ? `app ${c.appid ?? c.azp}, service principal ${c.oid}` : `upn ${user || '(none)'}`, `${minutesLeft} min left`];
  const detail = facts.join(', ');
  const aud = String(c.aud ?? '');
  if (protocol === 'graph' ? !isGraph(aud) : !isOutlook(aud)) {
    const explanation = protocol !== 'graph' && isGraph(aud) ? ADVICE.audienceGraph : protocol === 'graph' && isOutlook(aud) ? ADVICE.audienceOutlook : ADVICE.audienceOther;
    return { status: 'fail', detail, explanation };
  }
  const need = app ? NEEDED[protocol].application : NEEDED[protocol].delegated;
  if (!perms.includes(need)) return { status: 'fail', detail: `${detail}; needs ${app ? 'role' : 'scope'} ${need}`, explanation: ADVICE.permissionMissing };
  if (expiresAt <= now || (c.exp !== undefined && c.exp * 1000 <= now)) return { status: 'fail', detail, explanation: ADVICE.tokenExpired };
  if (!app && user && mailbox && user !== mailbox.toLowerCase()) return { status: 'warn', detail: `${detail}; user= is ${mailbox}`, explanation: ADVICE.upnMismatch };
  return { status: 'pass', detail };
}
