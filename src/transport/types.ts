/**
 * The one contract every outbound route implements: deliver(envelope, message) → typed result.
 * Transports never touch the queue; the relay's delivery stage decides retry/bounce from the
 * result and the TransportError's smtp reply.
 */
import type { Readable } from 'node:stream';
import type { SmtpReply } from '../core/errors.js';

export interface Envelope {
  /** Envelope sender (MAIL FROM); '' for the null sender of bounces. */
  from: string;
  /** Envelope recipients (RCPT TO). */
  to: string[];
  /** RFC 3461 parameters passed on to the next hop: RET and ENVID per message, NOTIFY and ORCPT per recipient (by address). */
  dsn?: { ret?: 'FULL' | 'HDRS'; envid?: string; notify?: Map<string, string[]>; orcpt?: Map<string, string> };
}

/** The message as bytes: a fresh stream each time it is called (a retry needs a new stream). */
export type MessageSource = () => Readable;

export interface RecipientFailure {
  recipient: string;
  reply: SmtpReply;
  temporary: boolean;
}

export interface DeliveryResult {
  /** Recipients the upstream accepted. */
  accepted: string[];
  /** Recipients refused individually (RCPT stage); the rest were accepted. */
  rejected: RecipientFailure[];
  /** Final upstream reply text (e.g. "250 2.0.0 OK <id> [Hostname=...]", or "202 Accepted" for Graph). */
  response: string;
  /** Upstream message id / queue id if the server told us. */
  messageId?: string;
  /** Which route/host actually took it, for logs. */
  route: string;
  durationMs: number;
}

export interface Transport {
  /** A short name for logs and metrics, e.g. "smtp:alice@contoso.com", "mx", "graph:alice@…". */
  readonly name: string;
  /** Deliver or throw TransportError (smtp reply, temporary flag, hint). */
  deliver(envelope: Envelope, message: MessageSource): Promise<DeliveryResult>;
  /** Close pooled connections. */
  close(): Promise<void>;
}
