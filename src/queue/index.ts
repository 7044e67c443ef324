import { join } from 'node:path';
import type { Logger } from '../core/log.js';
import { ConfigError } from '../core/errors.js';
import { SqliteQueue } from './sqlite.js';
import type { Queue } from './types.js';

export type { Queue, QueueEntry, QueueState, QueueCounts, QueueAttempt, QueueRecipient, EnqueueMeta, SettleOutcome, DsnNotify, EnvelopeDsn, RecipientDsn } from './types.js';
export { SqliteQueue, newQueueId } from './sqlite.js';
export { useWriteLock, writeLockMemory } from './write-lock.js';
export type { PostgresQueueOptions } from './postgres.js';

export interface QueueConfig {
  backend: 'sqlite' | 'postgres';
  dir?: string;
  postgres_url?: string;
  max_message_size: number;
  max_lifetime_seconds: number;
}

/** Entries per pruneFinished() call: a short transaction, so accepting and settling wait little for it. */
const PRUNE_BATCH = 500;

/**
 * Removes every finished entry older than `before`, a batch at a time, letting other work run
 * between batches; stops early once `signal` aborts. Returns how many entries were removed.
 */
export async function pruneFinishedBefore(queue: Queue, before: Date, signal?: AbortSignal): Promise<number> {
  let removed = 0;
  for (;;) {
    const n = await queue.pruneFinished(before, PRUNE_BATCH);
    removed += n;
    if (n < PRUNE_BATCH || signal?.aborted) return removed;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

export async function openQueue(config: QueueConfig, deps: { stateDir: string; log?: Logger }): Promise<Queue> {
  if (config.backend === 'postgres') {
    if (!config.postgres_url) throw new ConfigError('queue.postgres_url is required when queue.backend is postgres (e.g. postgres://relay365@db.example.com/relay365)', { keyPath: 'queue.postgres_url' });
    // pg is loaded only by relays that use it.
    const { PostgresQueue } = await import('./postgres.js');
    return PostgresQueue.open({ url: config.postgres_url, maxMessageBytes: config.max_message_size, maxLifetimeMs: config.max_lifetime_seconds * 1000, log: deps.log });
  }
  return new SqliteQueue({ dir: config.dir ?? join(deps.stateDir, 'queue'), maxMessageBytes: config.max_message_size, maxLifetimeMs: config.max_lifetime_seconds * 1000, log: deps.log });
}
