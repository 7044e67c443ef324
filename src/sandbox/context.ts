import type { Directory } from './directory.js';
import type { FaultInjector } from './faults.js';
import type { MailStore } from './mail/store.js';
import type { TokenCheck } from './tokens.js';

/** What the sandbox's mail servers share with its identity platform. */
export interface SandboxContext {
  directory: Directory;
  verifyAccessToken(token: string): TokenCheck;
  mail: MailStore;
  faults: FaultInjector;
  tls: { key: string; cert: string; ca: string };
  /** A fake Exchange Online front-end name used in replies. */
  hostname: string;
  now(): number;
  limits: MailLimits;
}

export interface MailLimits {
  /** Concurrent authenticated SMTP connections per mailbox (Exchange: 3). */
  concurrentPerMailbox: number;
  /** Messages per minute per mailbox before submissions are delayed (Exchange: 30). */
  messagesPerMinute: number;
  /** Recipients per rolling 24 h per mailbox (Exchange: 10,000). */
  recipientsPerDay: number;
  /** Recipients per message (Exchange: 500). */
  recipientsPerMessage: number;
  /** Mailbox MaxSendSize in bytes (Exchange default 35 MB). */
  maxMessageBytes: number;
  /** How a SendAs violation is answered: the older 5.7.60 or the newer 5.2.252 text. */
  sendAsReply: '5.7.60' | '5.2.252';
  /** Delay in ms applied to a message over the per-minute rate. */
  rateDelayMs: number;
}

export const DEFAULT_LIMITS: MailLimits = {
  concurrentPerMailbox: 3,
  messagesPerMinute: 30,
  recipientsPerDay: 10_000,
  recipientsPerMessage: 500,
  maxMessageBytes: 35 * 1024 * 1024,
  sendAsReply: '5.2.252',
  rateDelayMs: 2_000,
};
