/**
 * The one failure policy: an upstream reply (or a local error) → what happens to the recipient.
 * A table of rules, first match wins, like Postfix's smtp_trouble.c; no if-chains elsewhere.
 */
import type { Relay365Error, SmtpReply } from '../core/errors.js';

export type TroubleAction =
  /** Try this recipient again later (back-off). */
  | 'defer'
  /** Permanent failure: bounce this recipient. */
  | 'bounce'
  /** Token trouble: defer and flag the account. */
  | 'defer-account'
  /** Daily quota exhausted: hold the account's deliveries until the window passes. */
  | 'hold-account';

interface Rule {
  name: string;
  when: (f: Failure) => boolean;
  action: TroubleAction;
  explain: string;
}

export interface Failure {
  reply?: SmtpReply;
  /** relay365 error code (OAUTH_*, ACCOUNT_REAUTH_REQUIRED, NETWORK, …). */
  code?: string;
  /** The HTTP status of a refused Graph request. */
  httpStatus?: number;
  temporary: boolean;
}

const RULES: Rule[] = [
  { name: 'quota', when: (f) => /SubmissionQuotaExceeded/i.test(f.reply?.text ?? ''), action: 'hold-account', explain: 'Daily recipient quota (10,000/24 h) exceeded; the account is paused for 24 hours.' },
  { name: 'reauth', when: (f) => f.code === 'ACCOUNT_REAUTH_REQUIRED' || f.code === 'OAUTH_SERVER', action: 'defer-account', explain: 'The account cannot get a token; messages wait until it is re-authorized.' },
  // A route naming an account that is not there (a typo, or removed): the mail is fine and should
  // wait for the account to be added, not bounce.
  { name: 'account-missing', when: (f) => f.code === 'ACCOUNT_NOT_FOUND', action: 'defer-account', explain: 'The route names an account relay365 does not have (relay365 account list); messages wait until it is added.' },
  // Graph refusing the caller (no Mail.Send consent, a token refused even after a refresh, an
  // application access policy): a setting of the account or tenant, like a refused SMTP login.
  { name: 'graph-access', when: (f) => f.code === 'GRAPH_REJECTED' && (f.httpStatus === 401 || f.httpStatus === 403), action: 'defer-account', explain: 'Microsoft Graph refused the account (consent, permission or access policy): fix it; messages wait.' },
  { name: 'token-temporary', when: (f) => f.code === 'OAUTH_TEMPORARY', action: 'defer', explain: 'The identity platform is unreachable; retry later (the refresh token is kept).' },
  { name: 'hve-expiring', when: (f) => f.reply?.enhanced === '5.5.127', action: 'defer', explain: 'HVE wants tokens with 10+ minutes left; retry with a fresh token.' },
  // SMTP_AUTH comes from the catalogue (5.7.139, 5.7.3, 5.7.57, 5.7.4, 5.5.124 …): the message is
  // fine, the account or tenant is not, so bouncing it would punish the sender for a setting.
  { name: 'auth-refused', when: (f) => f.reply?.code === 535 || f.code === 'SMTP_AUTH', action: 'defer-account', explain: 'Exchange refused the OAuth login (even after one refresh): fix the account or tenant setting; messages wait.' },
  { name: 'temporary-reply', when: (f) => !!f.reply && f.reply.code >= 400 && f.reply.code < 500, action: 'defer', explain: 'Temporary failure; retry with back-off.' },
  { name: 'permanent-reply', when: (f) => !!f.reply && f.reply.code >= 500, action: 'bounce', explain: 'Permanent failure; the sender gets a DSN.' },
  { name: 'temporary-error', when: (f) => f.temporary, action: 'defer', explain: 'Temporary local or network failure; retry with back-off.' },
  { name: 'permanent-error', when: () => true, action: 'bounce', explain: 'Permanent failure; the sender gets a DSN.' },
];

export function decide(f: Failure): { action: TroubleAction; rule: string; explain: string } {
  const r = RULES.find((x) => x.when(f))!;
  return { action: r.action, rule: r.name, explain: r.explain };
}

export function failureOf(err: Relay365Error): Failure {
  const httpStatus = (err.details as { status?: unknown } | undefined)?.status;
  return { reply: err.smtp, code: err.code, temporary: err.temporary, ...(typeof httpStatus === 'number' ? { httpStatus } : {}) };
}

/** Exponential back-off with ±20 % jitter, capped. */
export function backoffMs(attempts: number, initialSeconds: number, maxSeconds: number, random = Math.random): number {
  const base = Math.min(initialSeconds * 2 ** Math.max(0, attempts), maxSeconds) * 1000;
  return Math.round(base * (0.8 + 0.4 * random()));
}
