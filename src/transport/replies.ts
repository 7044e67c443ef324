/**
 * Upstream SMTP replies → typed TransportError (enhanced code, temporary or permanent, hint).
 * The hint table covers the Exchange Online catalogue (fact sheet §4.3); anything else falls back
 * to the reply class (4xx temporary, 5xx permanent).
 */
import { TransportError, type SmtpReply } from '../core/errors.js';
import type { ErrorCode } from '../core/codes.js';

export function parseReply(text: string, fallbackCode = 0): SmtpReply {
  const lines = text.trim().split(/\r?\n/);
  const first = /^(\d{3})[ -](?:(\d\.\d{1,3}\.\d{1,3}) )?/.exec(lines[0] ?? '');
  const code = first ? Number(first[1]) : fallbackCode;
  const enhanced = first?.[2];
  const body = lines.map((l) => l.replace(/^\d{3}[ -](?:\d\.\d{1,3}\.\d{1,3} )?/, '')).join(' ');
  return { code, enhanced, text: body };
}

interface ReplyRule {
  match: (r: SmtpReply) => boolean;
  temporary?: boolean;
  code?: ErrorCode;
  hint: string;
}

const enh = (e: string) => (r: SmtpReply) => r.enhanced === e;

/** First match wins. */
const RULES: ReplyRule[] = [
  { match: (r) => r.enhanced === '5.7.139' && /disabled for the Tenant/i.test(r.text), code: 'SMTP_AUTH', hint: 'SMTP AUTH is disabled for the tenant: Set-TransportConfig -SmtpClientAuthenticationDisabled $false, or enable it for this mailbox with Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false.' },
  { match: (r) => r.enhanced === '5.7.139' && /disabled for the Mailbox/i.test(r.text), code: 'SMTP_AUTH', hint: 'SMTP AUTH is disabled for this mailbox: Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false.' },
  { match: (r) => r.enhanced === '5.7.139' && /security defaults/i.test(r.text), code: 'SMTP_AUTH', hint: 'Security Defaults block SMTP AUTH: turn them off (Entra ID > Properties) and use Conditional Access instead.' },
  { match: enh('5.7.139'), code: 'SMTP_AUTH', hint: 'Exchange refused SMTP AUTH by policy (Conditional Access, authentication policy or missing SMTP.SendAsApp permission).' },
  { match: enh('5.7.3'), code: 'SMTP_AUTH', hint: 'The token was refused: check the token audience (https://outlook.office.com/SMTP.Send, not a bare SMTP.Send), that user= is the signed-in mailbox, and for app-only access New-ServicePrincipal + Add-MailboxPermission.' },
  { match: enh('5.7.57'), code: 'SMTP_AUTH', hint: 'The server needs authentication before MAIL FROM: configure an account for this route.' },
  { match: enh('5.7.30'), code: 'SMTP_AUTH', hint: 'Basic authentication is retired for client submission: use OAuth (relay365 account add).' },
  { match: (r) => r.enhanced === '5.7.60' || r.enhanced === '5.2.252' || /SendAsDenied/i.test(r.text), code: 'SMTP_REJECTED', hint: 'The mailbox may not send as this sender: grant SendAs (Add-RecipientPermission <from> -Trustee <mailbox> -AccessRights SendAs) or enable sender rewriting.' },
  { match: (r) => /SubmissionQuotaExceeded/i.test(r.text), code: 'SMTP_REJECTED', temporary: true, hint: 'The mailbox exceeded its daily recipient quota (10,000/24 h): deliveries are held until the window passes.' },
  { match: enh('4.3.2'), code: 'SMTP_TEMPORARY', temporary: true, hint: 'More than 3 concurrent connections for this mailbox: relay365 caps its pool at 3; another client is also sending.' },
  { match: (r) => r.code === 430 || /MapiExceptionLogonFailed/i.test(r.text), code: 'SMTP_TEMPORARY', temporary: true, hint: 'The application has no FullAccess on this mailbox: Add-MailboxPermission -Identity <mailbox> -User <service principal> -AccessRights FullAccess.' },
  { match: enh('4.7.66'), code: 'SMTP_TEMPORARY', temporary: false, hint: 'TLS 1.0/1.1 are refused: relay365 uses TLS 1.2+; check proxies in between.' },
  { match: (r) => r.enhanced === '5.5.127', code: 'SMTP_AUTH', temporary: true, hint: 'The HVE endpoint needs tokens with at least 10 minutes left; relay365 refreshes earlier for HVE routes.' },
  { match: (r) => r.enhanced === '5.5.124', code: 'SMTP_AUTH', hint: 'The HVE endpoint refused the XOAUTH2 data: use an application token (https://outlook.office365.com/.default) granted with Add-HVEAppAccess.' },
  { match: (r) => r.code === 452 || r.enhanced === '4.5.3', code: 'SMTP_TEMPORARY', temporary: true, hint: 'Too many recipients in one message (Exchange: 500): the rest are sent in another transaction.' },
  { match: (r) => r.code === 552 || r.enhanced === '5.3.4', code: 'SMTP_REJECTED', hint: 'The message is larger than the mailbox may send (default 35 MB).' },
];

export function classifyReply(reply: SmtpReply): { code: ErrorCode; temporary: boolean; hint?: string } {
  const rule = RULES.find((r) => r.match(reply));
  const temporary = rule?.temporary ?? (reply.code >= 400 && reply.code < 500);
  const fallback = temporary ? 'The server asked to try again later; the relay defers the message and retries with back-off.' : 'The server refused permanently; the sender gets a bounce (DSN) with this reply.';
  return { code: rule?.code ?? (temporary ? 'SMTP_TEMPORARY' : 'SMTP_REJECTED'), temporary, hint: rule?.hint ?? fallback };
}

export function replyError(reply: SmtpReply, context: string): TransportError {
  const c = classifyReply(reply);
  return new TransportError(c.code, `${context}: ${reply.code}${reply.enhanced ? ` ${reply.enhanced}` : ''} ${reply.text}`, { smtp: reply, temporary: c.temporary, hint: c.hint });
}
