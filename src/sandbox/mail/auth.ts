/**
 * SASL decoding and the access decision the sandbox's SMTP, IMAP and POP servers share
 * (fact sheet §3, §4.3, §7). Independent of relay365's client-side SASL code on purpose.
 */
import type { SandboxContext } from '../context.js';
import type { Identity } from '../directory.js';
import { isOutlookAudience } from '../tokens.js';

export type MailProtocol = 'smtp' | 'imap' | 'pop';

export interface SaslBearer {
  user: string;
  token: string;
}

/** base64("user=" U ^A "auth=Bearer " T ^A ^A) */
export function decodeXoauth2(b64: string): SaslBearer | undefined {
  const text = Buffer.from(b64.trim(), 'base64').toString('utf8');
  const m = /^user=([^\x01]*)\x01auth=Bearer ([^\x01]+)\x01\x01$/.exec(text);
  return m ? { user: m[1]!, token: m[2]! } : undefined;
}

/** RFC 7628: "n,a=U," ^A "host=H" ^A "port=P" ^A "auth=Bearer T" ^A ^A */
export function decodeOauthbearer(b64: string): SaslBearer | undefined {
  const text = Buffer.from(b64.trim(), 'base64').toString('utf8');
  const [gs2, ...kvs] = text.split('\x01');
  const a = /^n,(?:a=([^,]*))?,$/.exec(gs2 ?? '');
  if (!a) return undefined;
  const auth = kvs.find((kv) => kv.startsWith('auth='));
  const m = auth ? /^auth=Bearer (.+)$/.exec(auth) : null;
  if (!m || !text.endsWith('\x01\x01')) return undefined;
  return { user: (a[1] ?? '').replace(/=2C/g, ',').replace(/=3D/g, '='), token: m[1]! };
}

export type MailAuthFailure =
  | 'token'
  | 'scope'
  | 'no-service-principal'
  | 'mailbox-mismatch'
  | 'smtp-disabled-tenant'
  | 'smtp-disabled-mailbox'
  | 'security-defaults';

export type MailAuthResult =
  | { ok: true; identity: Identity; mailbox: string; connected: boolean; expiresAt: number }
  | { ok: false; reason: MailAuthFailure; detail: string };

const DELEGATED_SCOPE: Record<MailProtocol, string> = { smtp: 'SMTP.Send', imap: 'IMAP.AccessAsUser.All', pop: 'POP.AccessAsUser.All' };
const APP_ROLE: Record<MailProtocol, string> = { smtp: 'SMTP.SendAsApp', imap: 'IMAP.AccessAsApp', pop: 'POP.AccessAsApp' };

export function checkMailAuth(ctx: SandboxContext, protocol: MailProtocol, bearer: SaslBearer): MailAuthResult {
  const check = ctx.verifyAccessToken(bearer.token);
  if (!check.ok) return { ok: false, reason: 'token', detail: `token ${check.reason}` };
  const c = check.claims;
  // A Graph-audience token (e.g. from a bare "SMTP.Send" scope) is rejected here (fact sheet §2.1).
  if (!isOutlookAudience(c.aud)) return { ok: false, reason: 'token', detail: `audience ${c.aud} is not Exchange Online` };
  const mailbox = bearer.user.toLowerCase();
  const expiresAt = c.exp * 1000;
  let identity: Identity;
  if (c.roles && c.roles.length > 0 && !c.scp) {
    if (!c.roles.includes(APP_ROLE[protocol])) return { ok: false, reason: 'scope', detail: `roles lack ${APP_ROLE[protocol]}` };
    const sp = ctx.directory.servicePrincipalFor(c.appid);
    if (!sp || !sp.exchangeRegistered || sp.objectId !== c.oid) {
      return { ok: false, reason: 'no-service-principal', detail: `no Exchange service principal for app ${c.appid} with object id ${c.oid}` };
    }
    identity = { kind: 'app', appId: c.appid, oid: c.oid, tid: c.tid };
    if (!ctx.directory.user(mailbox)) return { ok: false, reason: 'mailbox-mismatch', detail: `mailbox ${mailbox} does not exist` };
  } else {
    const scopes = (c.scp ?? '').split(' ');
    if (!scopes.includes(DELEGATED_SCOPE[protocol])) return { ok: false, reason: 'scope', detail: `scp lacks ${DELEGATED_SCOPE[protocol]}` };
    identity = { kind: 'user', upn: (c.upn ?? '').toLowerCase(), oid: c.oid, tid: c.tid };
    if (identity.upn !== mailbox && !ctx.directory.user(mailbox)) return { ok: false, reason: 'mailbox-mismatch', detail: `mailbox ${mailbox} does not exist` };
  }
  const connected = ctx.directory.hasFullAccess(identity, mailbox);
  if (protocol === 'smtp') {
    // SMTP AUTH with a delegated token for another mailbox fails at AUTH (535 5.7.3).
    if (identity.kind === 'user' && !connected) return { ok: false, reason: 'mailbox-mismatch', detail: `${identity.upn} has no access to ${mailbox}` };
    const state = ctx.directory.smtpAuthState(mailbox);
    if (state === 'disabled-tenant') return { ok: false, reason: 'smtp-disabled-tenant', detail: 'SMTP AUTH disabled for the tenant' };
    if (state === 'disabled-mailbox') return { ok: false, reason: 'smtp-disabled-mailbox', detail: 'SMTP AUTH disabled for the mailbox' };
    if (state === 'security-defaults') return { ok: false, reason: 'security-defaults', detail: 'Security Defaults enabled' };
  }
  return { ok: true, identity, mailbox, connected, expiresAt };
}

export function identityLabel(identity: Identity): string {
  return identity.kind === 'user' ? identity.upn : `app:${identity.appId}`;
}

/** Base64 of the UTF-16LE host name, as Exchange puts in IMAP/POP greetings (fact sheet §3.3). */
export function greetingTag(hostname: string): string {
  return Buffer.from(hostname, 'utf16le').toString('base64');
}

/** A line reader over a socket that survives a STARTTLS upgrade (the caller re-attaches). */
export class LineReader {
  private buffer: Buffer = Buffer.alloc(0);
  /** When set, the next `bytes` octets are delivered raw (IMAP literals, SMTP DATA is line-based). */
  constructor(private readonly onLine: (line: string) => void) {}

  push(chunk: Buffer): void {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    for (;;) {
      const i = this.buffer.indexOf(0x0a);
      if (i < 0) break;
      const line = this.buffer.subarray(0, i).toString('latin1').replace(/\r$/, '');
      this.buffer = this.buffer.subarray(i + 1);
      this.onLine(line);
    }
  }

  reset(): void {
    this.buffer = Buffer.alloc(0);
  }
}
