/**
 * The mail queue contract (Postfix vocabulary): a message is `incoming` once durably accepted,
 * `active` while a worker holds its lease, `deferred` until its next attempt, `hold` until an
 * admin releases it; finished entries stay as `done` or `bounced` records until pruneFinished()
 * removes them (the relay does after queue.keep_finished_days).
 */
import type { Readable } from 'node:stream';

export type QueueState = 'incoming' | 'active' | 'deferred' | 'hold' | 'done' | 'bounced';
export type RecipientState = 'pending' | 'delivered' | 'failed' | 'deferred';

/** RFC 3461 NOTIFY values (NEVER stands alone). */
export type DsnNotify = 'NEVER' | 'SUCCESS' | 'FAILURE' | 'DELAY';

/** RFC 3461 MAIL FROM parameters, xtext-decoded. */
export interface EnvelopeDsn {
  ret?: 'FULL' | 'HDRS';
  envid?: string;
}

/** RFC 3461 RCPT TO parameters, xtext-decoded; absent NOTIFY means "the relay decides" (FAILURE and DELAY). */
export interface RecipientDsn {
  notify?: DsnNotify[];
  /** "addr-type;address", e.g. "rfc822;bob@example.com". */
  orcpt?: string;
}

export interface QueueRecipient extends RecipientDsn {
  address: string;
  state: RecipientState;
  lastReply?: string;
}

export interface QueueAttempt {
  at: string;
  route: string;
  recipients: string[];
  reply: string;
  durationMs: number;
  outcome: 'delivered' | 'deferred' | 'failed' | 'partial';
}

export interface QueueEntry {
  id: string;
  state: QueueState;
  sender: string;
  recipients: QueueRecipient[];
  size: number;
  createdAt: string;
  nextAttemptAt: string;
  expiresAt: string;
  attempts: number;
  lastError?: string;
  clientIp?: string;
  authUser?: string;
  messageId?: string;
  /** RET/ENVID the client gave (DSN extension); absent when it gave neither. */
  dsn?: EnvelopeDsn;
  /** Present on get(). */
  history?: QueueAttempt[];
  /** Set by enqueue when the entry was stored leased to this owner (EnqueueMeta.leaseTo). */
  leasedTo?: string;
}

export interface EnqueueMeta {
  sender: string;
  recipients: string[];
  /** The size limit in force for this message (relay.max_message_size as of now, SIGHUP included); default: the queue's own. */
  maxBytes?: number;
  /** How long the message may stay queued (delivery.max_lifetime_seconds as of now); default: the queue's own. */
  lifetimeMs?: number;
  clientIp?: string;
  authUser?: string;
  messageId?: string;
  /** RET/ENVID from MAIL FROM. */
  dsn?: EnvelopeDsn;
  /** NOTIFY/ORCPT from RCPT TO, by address as it appears in `recipients`; only recipients that gave any. */
  recipientDsn?: Map<string, RecipientDsn>;
  /**
   * Hand-off: store the entry already leased ('active') to this delivery owner, which takes it
   * straight from the accepted event instead of claiming it from the queue. A backend may ignore
   * it (the entry is then 'incoming' and claimed as usual); delivery goes by the returned state.
   */
  leaseTo?: { owner: string; leaseMs: number };
}

export interface SettleOutcome {
  delivered: string[];
  failed: Array<{ recipient: string; reply: string }>;
  deferred: Array<{ recipient: string; reply: string }>;
  /** When the deferred recipients are due again (a finished entry records the settle time instead). */
  nextAttemptAt?: Date;
  /** Attempts to record with the outcome, in the same transaction (one commit per delivery). */
  attempts?: QueueAttempt[];
}

export type QueueCounts = Record<QueueState, number>;

export interface Queue {
  /**
   * Streams the body (a Readable or any async iterable of chunks) to durable storage; resolves
   * only after it is on disk and committed.
   */
  enqueue(meta: EnqueueMeta, body: AsyncIterable<Buffer>): Promise<QueueEntry>;
  /** Atomically leases up to `limit` due entries to `owner`. */
  claim(options: { owner: string; limit: number; leaseMs: number; now?: Date }): Promise<QueueEntry[]>;
  /** A fresh stream of the message each call. */
  openBody(id: string): Readable;
  settle(id: string, outcome: SettleOutcome): Promise<QueueEntry>;
  hold(id: string): Promise<boolean>;
  release(id: string): Promise<boolean>;
  /** Deferred/held → due now; 'all' for every deferred entry. */
  retry(id: string | 'all'): Promise<number>;
  delete(id: string): Promise<boolean>;
  get(id: string): Promise<QueueEntry | undefined>;
  list(options?: { state?: QueueState; search?: string; limit?: number; offset?: number }): Promise<QueueEntry[]>;
  counts(): Promise<QueueCounts>;
  /**
   * Removes up to `limit` `done`/`bounced` entries that finished before `before` (the settle time,
   * kept in nextAttemptAt), with their recipients, attempts and any body left; returns how many.
   */
  pruneFinished(before: Date, limit: number): Promise<number>;
  /** Start-up: active entries (a crashed worker's) become deferred and due now. */
  recoverAfterCrash(): Promise<number>;
  close(): Promise<void>;
}
