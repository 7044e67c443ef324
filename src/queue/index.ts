import { join } from 'node:path';
import type { Logger } from '../core/log.js';
import { ConfigError } from '../core/errors.js';
import { SqliteQueue } from './sqlite.js';
import type { Queue } from './types.js';

export type { Queue, QueueEntry, QueueState, QueueCounts, QueueAttempt, QueueRecipient, EnqueueMeta, SettleOutcome } from './types.js';
export { SqliteQueue, newQueueId } from './sqlite.js';

export interface QueueConfig {
  backend: 'sqlite' | 'postgres';
  dir?: string;
  postgres_url?: string;
  max_message_size: number;
  max_lifetime_seconds: number;
}

export async function openQueue(config: QueueConfig, deps: { stateDir: string; log?: Logger }): Promise<Queue> {
  if (config.backend === 'postgres') {
    // The Queue interface is ready for a shared PostgreSQL backend; it is not implemented yet.
    throw new ConfigError('queue.backend: postgres is not available in this version; use sqlite', { keyPath: 'queue.backend' });
  }
  return new SqliteQueue({ dir: config.dir ?? join(deps.stateDir, 'queue'), maxMessageBytes: config.max_message_size, maxLifetimeMs: config.max_lifetime_seconds * 1000, log: deps.log });
}
