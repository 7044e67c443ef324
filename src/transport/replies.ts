/**
 * Upstream SMTP replies → typed TransportError (enhanced code, temporary or permanent, hint).
 */
import { TransportError, type SmtpReply } from '../core/errors.js';
import type { ErrorCode } from '../core/codes.js';
import { explainReply } from '../core/catalogue.js';

export function parseReply(text: string, fallbackCode = 0): SmtpReply {
  const lines = text.trim().split(/\r?\n/);
  const first = /^(\d{3})[ -](?:(\d\.\d{1,3}\.\d{1,3}) )?/.exec(lines[0] ?? '');
  const code = first ? Number(first[1]) : fallbackCode;
  const enhanced = first?.[2];
  const body = lines.map((l) => l.replace(/^\d{3}[ -](?:\d\.\d{1,3}\.\d{1,3} )?/, '')).join(' ');
  return { code, enhanced, text: body };
}

/** Catalogue entries whose failure is about authentication rather than the message. */
const AUTH_ENTRIES = /^smtp-(5\.7\.(139|3|57|30|4)|5\.5\.12[47])/;

/**
 * The catalogue (src/core/catalogue.ts, one table for explain, check, logs and these errors)
 * decides temporary/permanent and supplies the hint; a reply it does not know falls back to its
 * class (4xx temporary, 5xx permanent).
 */
export function classifyReply(reply: SmtpReply): { code: ErrorCode; temporary: boolean; hint?: string; catalogue?: string } {
  const entry = explainReply(reply, 'smtp');
  const temporary = entry?.temporary ?? (reply.code >= 400 && reply.code < 500);
  const code: ErrorCode = entry && AUTH_ENTRIES.test(entry.id) ? 'SMTP_AUTH' : temporary ? 'SMTP_TEMPORARY' : 'SMTP_REJECTED';
  if (entry) return { code, temporary, hint: `${entry.en.cause} ${entry.en.fix}`, catalogue: entry.id };
  const fallback = temporary ? 'The server asked to try again later; the relay defers the message and retries with back-off.' : 'The server refused permanently; the sender gets a bounce (DSN) with this reply.';
  return { code, temporary, hint: fallback };
}

export function replyError(reply: SmtpReply, context: string): TransportError {
  const c = classifyReply(reply);
  return new TransportError(c.code, `${context}: ${reply.code}${reply.enhanced ? ` ${reply.enhanced}` : ''} ${reply.text}`, { smtp: reply, temporary: c.temporary, hint: c.hint, details: c.catalogue ? { catalogue: c.catalogue } : undefined });
}
