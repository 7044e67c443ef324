/**
 * The shared queue: PostgreSQL holds the index, the recipients, the attempt history AND the
 * message bodies, so several relay instances on different hosts work from one queue.
 *
 * Bodies are bytea rows of 256 KiB (`body_chunks`), not large objects: chunk rows are deleted
 * with their entry by a foreign-key cascade (large objects would need lo_unlink and leak when
 * that is missed), travel with ordinary pg_dump / logical replication, need no extra privileges,
 * and can be written inside the same transaction as the metadata. Enqueue reads the client's
 * stream one chunk at a time (memory stays at about one chunk), writes the entry row, the chunks
 * and the recipients in ONE transaction and resolves only after COMMIT, so a 250 reply always
 * refers to a message that is durable (Postfix's discipline, as in ./sqlite.ts). Messages smaller
 * than one chunk are read completely before a connection is taken, so a slow client does not
 * hold a transaction open; larger ones do, which is what the pool size is for.
 *
 * Leases: claim() locks due rows with `FOR UPDATE SKIP LOCKED`, so concurrent claimers on any
 * number of instances never take the same entry, and stamps lease_owner/lease_until/claimed_at.
 * An entry whose lease has expired is claimable by anyone (a crashed instance's work is taken
 * over). recoverAfterCrash() runs when an instance starts and, unlike the single-instance SQLite
 * queue, must not touch another live instance's active entries. It recovers only entries that
 *   - have an expired lease, or
 *   - are leased to a process on THIS host (owner `host:pid`, the DeliveryEngine's format) that
 *     no longer exists (a restart on the same host: the dead pid cannot still be delivering), or
 *   - are leased to this very owner but were claimed before this process started (containers
 *     restart with the same host name and pid 1).
 * A live process elsewhere cannot be told from a dead one, so its entries wait for the lease to
 * expire. That is why every instance needs a distinct host name, and why clocks must agree to
 * well within a lease (10 minutes): all timestamps are taken on the client, as in ./sqlite.ts.
 *
 * Tables live in one schema (default `relay365`, or `?schema=` on queue.postgres_url) with a
 * schema_version row; migrations run under an advisory lock so instances may start together.
 */
import { hostname as osHostname } from 'node:os';
import { Readable } from 'node:stream';
import pg from 'pg';
import { ConfigError, QueueError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { envelopeDsnOf, newQueueId, recipientDsnOf } from './sqlite.js';
import type { EnqueueMeta, EnvelopeDsn, Queue, QueueAttempt, QueueCounts, QueueEntry, QueueState, RecipientState, SettleOutcome } from './types.js';

export interface PostgresQueueOptions {
  /** postgres://… ; an extra `schema=` query parameter selects the schema (removed before connecting). */
  url: string;
  /** Overrides `?schema=`; default `relay365`. */
  schema?: string;
  maxMessageBytes?: number;
  maxLifetimeMs?: number;
  log?: Logger;
  /** This instance's lease owner name; must match what DeliveryEngine passes to claim(). */
  owner?: string;
  /** When this instance (process) started: entries of `owner` claimed earlier are from a previous life. */
  startedAt?: Date;
  /** Connections: concurrent inbound DATA transfers larger than a chunk + workers + a few. */
  poolSize?: number;
  chunkBytes?: number;
}

export const POSTGRES_SCHEMA_VERSION = 3;
const DEFAULT_CHUNK = 256 * 1024;
/** One key for every relay365 schema: CREATE EXTENSION is database-wide, so migrations serialize globally. */
const MIGRATION_LOCK = 0x72656c61; // "rela"

interface Row {
  id: string;
  state: QueueState;
  sender: string;
  size: string;
  body_chunks: number;
  created_at: Date;
  next_attempt_at: Date;
  expires_at: Date;
  attempts: number;
  last_error: string | null;
  client_ip: string | null;
  auth_user: string | null;
  message_id: string | null;
  dsn_ret: EnvelopeDsn['ret'] | null;
  dsn_envid: string | null;
}

function splitSchema(url: string): { connectionString: string; schema?: string } {
  const q = url.indexOf('?');
  if (q < 0) return { connectionString: url };
  const params = new URLSearchParams(url.slice(q + 1));
  const schema = params.get('schema') ?? undefined;
  params.delete('schema');
  const rest = params.toString();
  return { connectionString: url.slice(0, q) + (rest ? `?${rest}` : ''), schema };
}

function defaultOwner(): string {
  return `${osHostname()}:${process.pid}`;
}

/** Only a pid on this host can be checked, and only a missing one is known to be dead. */
function isDeadLocalOwner(owner: string, host: string): boolean {
  const m = /^(.*):(\d+)$/.exec(owner);
  if (!m || m[1] !== host) return false;
  const pid = Number(m[2]);
  if (pid === process.pid || pid <= 1) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

function ioError(what: string, err: unknown): QueueError {
  if (err instanceof QueueError) return err;
  return new QueueError('QUEUE_IO', `${what}: ${(err as Error).message}`, { cause: err });
}

export class PostgresQueue implements Queue {
  readonly schema: string;
  private readonly pool: pg.Pool;
  private readonly owner: string;
  private readonly startedAt: Date;
  private readonly chunkBytes: number;
  private closed = false;

  private constructor(private readonly options: PostgresQueueOptions) {
    const { connectionString, schema } = splitSchema(options.url);
    this.schema = options.schema ?? schema ?? 'relay365';
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(this.schema)) throw new ConfigError(`queue.postgres_url: schema "${this.schema}" must be a lower-case SQL identifier`, { keyPath: 'queue.postgres_url' });
    this.owner = options.owner ?? defaultOwner();
    this.startedAt = options.startedAt ?? new Date(Date.now() - process.uptime() * 1000);
    this.chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK;
    this.pool = new pg.Pool({ connectionString, max: options.poolSize ?? 20, connectionTimeoutMillis: 30_000, application_name: `relay365 ${this.owner}`.slice(0, 63) });
    // An idle connection dropped by the server must not crash the relay; the next query reconnects.
    this.pool.on('error', (err) => options.log?.warn({ err }, 'PostgreSQL queue connection lost'));
  }

  /** Connects and creates or migrates the tables. */
  static async open(options: PostgresQueueOptions): Promise<PostgresQueue> {
    const q = new PostgresQueue(options);
    try {
      await q.migrate();
    } catch (err) {
      await q.pool.end().catch(() => {});
      throw ioError(`Cannot open the PostgreSQL queue (schema ${q.schema})`, err);
    }
    return q;
  }

  private t(name: string): string {
    return `"${this.schema}".${name}`;
  }

  private async migrate(): Promise<void> {
    await this.tx(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await c.query(`CREATE SCHEMA IF NOT EXISTS "${this.schema}"`);
      await c.query(`CREATE TABLE IF NOT EXISTS ${this.t('schema_version')} (one boolean PRIMARY KEY DEFAULT true CHECK (one), version integer NOT NULL)`);
      const current = ((await c.query<{ version: number }>(`SELECT version FROM ${this.t('schema_version')}`)).rows[0]?.version) ?? 0;
      if (current > POSTGRES_SCHEMA_VERSION) throw new QueueError('QUEUE_IO', `The queue schema "${this.schema}" is at version ${current}, newer than this relay365 supports (${POSTGRES_SCHEMA_VERSION}); upgrade this instance.`);
      if (current < 1) await this.migrateV1(c);
      if (current < 2) await this.migrateV2(c);
      if (current < 3) await this.migrateV3(c);
      await c.query(`INSERT INTO ${this.t('schema_version')} (version) VALUES ($1) ON CONFLICT (one) DO UPDATE SET version = EXCLUDED.version`, [POSTGRES_SCHEMA_VERSION]);
    });
  }

  private async migrateV1(c: pg.PoolClient): Promise<void> {
    const t = (n: string) => this.t(n);
    await c.query(`
      CREATE TABLE ${t('entries')} (
        id text PRIMARY KEY,
        state text NOT NULL CHECK (state IN ('incoming','active','deferred','hold','done','bounced')),
        sender text NOT NULL, size bigint NOT NULL, body_chunks integer NOT NULL,
        created_at timestamptz NOT NULL, next_attempt_at timestamptz NOT NULL, expires_at timestamptz NOT NULL,
        attempts integer NOT NULL DEFAULT 0, last_error text, client_ip text, auth_user text, message_id text,
        lease_owner text, lease_until timestamptz, claimed_at timestamptz);
      CREATE INDEX entries_due ON ${t('entries')} (next_attempt_at) WHERE state IN ('incoming','deferred');
      CREATE INDEX entries_leased ON ${t('entries')} (lease_until) WHERE state = 'active';
      CREATE INDEX entries_created ON ${t('entries')} (created_at);
      CREATE INDEX entries_state_created ON ${t('entries')} (state, created_at);
      CREATE INDEX entries_message_id ON ${t('entries')} (message_id);
      CREATE TABLE ${t('recipients')} (
        entry_id text NOT NULL REFERENCES ${t('entries')} (id) ON DELETE CASCADE,
        position integer NOT NULL, address text NOT NULL, state text NOT NULL, last_reply text,
        PRIMARY KEY (entry_id, address));
      CREATE TABLE ${t('attempts')} (
        seq bigserial PRIMARY KEY,
        entry_id text NOT NULL REFERENCES ${t('entries')} (id) ON DELETE CASCADE,
        at text NOT NULL, route text NOT NULL, recipients text[] NOT NULL, reply text NOT NULL,
        duration_ms integer NOT NULL, outcome text NOT NULL);
      CREATE INDEX attempts_entry ON ${t('attempts')} (entry_id, seq);
      CREATE TABLE ${t('body_chunks')} (
        entry_id text NOT NULL REFERENCES ${t('entries')} (id) ON DELETE CASCADE,
        seq integer NOT NULL, data bytea NOT NULL,
        PRIMARY KEY (entry_id, seq));
      -- Mail is mostly base64 already: compressing it again costs CPU for little.
      ALTER TABLE ${t('body_chunks')} ALTER COLUMN data SET STORAGE EXTERNAL;
    `);
    // Searches are substring matches (LIKE '%…%'), which only trigram indexes serve. pg_trgm is a
    // trusted extension but may still be refused (no CREATE on the database): then searches scan.
    const trgm = await this.trigramSchema(c);
    if (trgm) {
      const ops = `"${trgm}".gin_trgm_ops`;
      await c.query(`
        CREATE INDEX entries_message_id_trgm ON ${t('entries')} USING gin (message_id ${ops});
        CREATE INDEX entries_sender_trgm ON ${t('entries')} USING gin (sender ${ops});
        CREATE INDEX entries_id_trgm ON ${t('entries')} USING gin (id ${ops});
        CREATE INDEX recipients_address_trgm ON ${t('recipients')} USING gin (address ${ops});
      `);
    } else {
      await c.query(`CREATE INDEX recipients_address ON ${t('recipients')} (address)`);
      this.options.log?.info('pg_trgm is not available: queue searches will scan the table');
    }
  }

  /** pruneFinished() looks finished entries up by finish time; v1's partial indexes cover only live states. */
  private async migrateV2(c: pg.PoolClient): Promise<void> {
    await c.query(`CREATE INDEX entries_finished ON ${this.t('entries')} (next_attempt_at) WHERE state IN ('done','bounced')`);
  }

  /** RFC 3461 DSN parameters: RET/ENVID per entry, NOTIFY (comma list)/ORCPT per recipient; NULL = not given. */
  private async migrateV3(c: pg.PoolClient): Promise<void> {
    await c.query(`
      ALTER TABLE ${this.t('entries')} ADD COLUMN IF NOT EXISTS dsn_ret text, ADD COLUMN IF NOT EXISTS dsn_envid text;
      ALTER TABLE ${this.t('recipients')} ADD COLUMN IF NOT EXISTS notify text, ADD COLUMN IF NOT EXISTS orcpt text;
    `);
  }

  private async trigramSchema(c: pg.PoolClient): Promise<string | undefined> {
    const find = async () => (await c.query<{ schema: string }>("SELECT extnamespace::regnamespace::text AS schema FROM pg_extension WHERE extname = 'pg_trgm'")).rows[0]?.schema.replace(/^"|"$/g, '');
    const found = await find();
    if (found) return found;
    await c.query('SAVEPOINT trgm');
    try {
      // Never into our own schema: dropping it would take the extension (and other schemas' indexes) along.
      await c.query('CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public');
      await c.query('RELEASE SAVEPOINT trgm');
      return await find();
    } catch {
      await c.query('ROLLBACK TO SAVEPOINT trgm');
      return undefined;
    }
  }

  private async tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await c.query('BEGIN');
      const out = await fn(c);
      await c.query('COMMIT');
      return out;
    } catch (err) {
      await c.query('ROLLBACK').catch((e: Error) => (broken = e));
      throw err;
    } finally {
      c.release(broken);
    }
  }

  private async query<R extends pg.QueryResultRow>(what: string, sql: string, params: unknown[] = []): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(sql, params);
    } catch (err) {
      throw ioError(what, err);
    }
  }

  async enqueue(meta: EnqueueMeta, body: AsyncIterable<Buffer>): Promise<QueueEntry> {
    const id = newQueueId();
    const max = meta.maxBytes ?? this.options.maxMessageBytes ?? Number.POSITIVE_INFINITY;
    const chunkBytes = this.chunkBytes;
    const now = Date.now();
    const expires = now + (meta.lifetimeMs ?? this.options.maxLifetimeMs ?? 5 * 86_400_000);
    let client: pg.PoolClient | undefined;
    let broken: Error | undefined;
    let size = 0;
    let seq = 0;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const begin = async (c: pg.PoolClient) => {
      await c.query('BEGIN');
      // Inserted first so the chunks' foreign key holds; nobody sees it before COMMIT.
      await c.query(`INSERT INTO ${this.t('entries')} (id, state, sender, size, body_chunks, created_at, next_attempt_at, expires_at, client_ip, auth_user, dsn_ret, dsn_envid) VALUES ($1, 'incoming', $2, 0, 0, $3, $3, $4, $5, $6, $7, $8)`, [id, meta.sender, new Date(now), new Date(expires), meta.clientIp ?? null, meta.authUser ?? null, meta.dsn?.ret ?? null, meta.dsn?.envid ?? null]);
    };
    const flush = async (final: boolean) => {
      if (!client) {
        client = await this.pool.connect();
        await begin(client);
      }
      while (pendingBytes >= chunkBytes || (final && pendingBytes > 0)) {
        const all = pending.length === 1 ? pending[0]! : Buffer.concat(pending);
        const piece = all.subarray(0, chunkBytes);
        const rest = all.subarray(piece.length);
        pending = rest.length ? [rest] : [];
        pendingBytes = rest.length;
        await client.query(`INSERT INTO ${this.t('body_chunks')} (entry_id, seq, data) VALUES ($1, $2, $3)`, [id, seq++, piece]);
      }
    };
    try {
      for await (const raw of body) {
        const chunk = typeof raw === 'string' ? Buffer.from(raw, 'latin1') : (raw as Buffer);
        size += chunk.length;
        if (size > max) throw new QueueError('MESSAGE_INVALID', `Message exceeds the size limit of ${max} bytes`, { temporary: false, smtp: { code: 552, enhanced: '5.3.4', text: 'Message size exceeds fixed maximum message size' } });
        pending.push(chunk);
        pendingBytes += chunk.length;
        if (pendingBytes >= chunkBytes) await flush(false);
      }
      await flush(true);
      const c = client!;
      // The Message-ID is known only once the headers have streamed through (inbound.ts notes it).
      await c.query(`UPDATE ${this.t('entries')} SET size = $2, body_chunks = $3, message_id = $4 WHERE id = $1`, [id, size, seq, meta.messageId ?? null]);
      const rcptDsn = meta.recipientDsn;
      const notify = meta.recipients.map((r) => rcptDsn?.get(r)?.notify?.join(',') ?? null);
      const orcpt = meta.recipients.map((r) => rcptDsn?.get(r)?.orcpt ?? null);
      await c.query(`INSERT INTO ${this.t('recipients')} (entry_id, position, address, state, notify, orcpt) SELECT $1, r.n, r.address, 'pending', r.notify, r.orcpt FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS r(address, notify, orcpt, n) ON CONFLICT DO NOTHING`, [id, meta.recipients, notify, orcpt]);
      await c.query('COMMIT');
    } catch (err) {
      if (client) await client.query('ROLLBACK').catch((e: Error) => (broken = e));
      if (err instanceof QueueError) throw err;
      throw new QueueError('QUEUE_IO', `Could not store the message: ${(err as Error).message}`, { cause: err });
    } finally {
      client?.release(broken);
    }
    // What was just committed, without reading it back (as ./sqlite.ts): no round trips before the 250.
    return {
      id,
      state: 'incoming',
      sender: meta.sender,
      recipients: [...new Set(meta.recipients)].map((address) => ({ address, state: 'pending', ...meta.recipientDsn?.get(address) })),
      size,
      createdAt: new Date(now).toISOString(),
      nextAttemptAt: new Date(now).toISOString(),
      expiresAt: new Date(expires).toISOString(),
      attempts: 0,
      ...(meta.clientIp ? { clientIp: meta.clientIp } : {}),
      ...(meta.authUser ? { authUser: meta.authUser } : {}),
      ...(meta.messageId ? { messageId: meta.messageId } : {}),
      ...(meta.dsn ? { dsn: meta.dsn } : {}),
      history: [],
    };
  }

  async claim(options: { owner: string; limit: number; leaseMs: number; now?: Date }): Promise<QueueEntry[]> {
    const now = options.now ?? new Date();
    const until = new Date(now.getTime() + options.leaseMs);
    const quarantined: string[] = [];
    let rows: Array<Row & { stored_chunks: string }>;
    try {
      rows = await this.tx(async (c) => {
        // SKIP LOCKED: rows another instance is claiming right now are left to it, not waited for;
        // READ COMMITTED re-checks the WHERE on rows changed since the snapshot, so none is taken twice.
        const r = await c.query<Row & { stored_chunks: string }>(
          `WITH due AS (
             SELECT id FROM ${this.t('entries')}
             WHERE (state IN ('incoming','deferred') AND next_attempt_at <= $1) OR (state = 'active' AND lease_until < $1)
             ORDER BY next_attempt_at, id LIMIT $2
             FOR UPDATE SKIP LOCKED)
           UPDATE ${this.t('entries')} e SET state = 'active', lease_owner = $3, lease_until = $4, claimed_at = $1
           FROM due WHERE e.id = due.id
           RETURNING e.*, (SELECT count(*) FROM ${this.t('body_chunks')} b WHERE b.entry_id = e.id) AS stored_chunks`,
          [now, options.limit, options.owner, until],
        );
        for (const row of r.rows) {
          if (Number(row.stored_chunks) === row.body_chunks) continue;
          quarantined.push(row.id);
          await c.query(`UPDATE ${this.t('entries')} SET state = 'hold', last_error = $2, lease_owner = NULL, lease_until = NULL, claimed_at = NULL WHERE id = $1`, [row.id, `quarantined: body incomplete (${row.stored_chunks} of ${row.body_chunks} chunks)`]);
        }
        return r.rows.filter((row) => !quarantined.includes(row.id));
      });
    } catch (err) {
      throw ioError('Could not claim queue entries', err);
    }
    for (const id of quarantined) this.options.log?.error({ queueId: id, reason: 'body incomplete' }, 'queue entry quarantined');
    rows.sort((a, b) => a.next_attempt_at.getTime() - b.next_attempt_at.getTime() || a.id.localeCompare(b.id));
    return this.toEntries(rows, false);
  }

  openBody(id: string): Readable {
    return Readable.from(this.bodyChunks(id), { objectMode: false });
  }

  private async *bodyChunks(id: string): AsyncGenerator<Buffer> {
    const row = (await this.query<{ body_chunks: number; state: QueueState }>('Could not read the message', `SELECT body_chunks, state FROM ${this.t('entries')} WHERE id = $1`, [id])).rows[0];
    if (!row) throw new QueueError('QUEUE_NOT_FOUND', `No queue entry ${id}.`);
    if (row.state === 'done' || row.state === 'bounced') throw new QueueError('QUEUE_NOT_FOUND', `The body of ${id} was removed when it was ${row.state}.`);
    // One chunk per query: memory stays at one chunk however large the message.
    for (let seq = 0; seq < row.body_chunks; seq++) {
      const c = (await this.query<{ data: Buffer }>('Could not read the message', `SELECT data FROM ${this.t('body_chunks')} WHERE entry_id = $1 AND seq = $2`, [id, seq])).rows[0];
      if (!c) throw new QueueError('QUEUE_IO', `The body of ${id} is incomplete (chunk ${seq} of ${row.body_chunks} missing).`);
      yield c.data;
    }
  }

  private attemptInsert(id: string, a: QueueAttempt): [string, unknown[]] {
    return [`INSERT INTO ${this.t('attempts')} (entry_id, at, route, recipients, reply, duration_ms, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7)`, [id, a.at, a.route, a.recipients, a.reply, Math.round(a.durationMs), a.outcome]];
  }

  async settle(id: string, o: SettleOutcome): Promise<QueueEntry> {
    // Applied in the SQLite order (delivered, failed, deferred): the last word on a recipient wins.
    const updates = new Map<string, { state: RecipientState; reply: string | null }>();
    for (const r of o.delivered) updates.set(r, { state: 'delivered', reply: null });
    for (const f of o.failed) updates.set(f.recipient, { state: 'failed', reply: f.reply });
    for (const d of o.deferred) updates.set(d.recipient, { state: 'deferred', reply: d.reply });
    try {
      return await this.tx(async (c) => {
        const locked = await c.query(`SELECT id FROM ${this.t('entries')} WHERE id = $1 FOR UPDATE`, [id]);
        if (!locked.rowCount) throw new QueueError('QUEUE_NOT_FOUND', `No queue entry ${id}.`);
        for (const a of o.attempts ?? []) await c.query(...this.attemptInsert(id, a));
        const addrs = [...updates.keys()];
        await c.query(
          `UPDATE ${this.t('recipients')} r SET state = u.state, last_reply = u.reply
           FROM unnest($2::text[], $3::text[], $4::text[]) AS u(address, state, reply)
           WHERE r.entry_id = $1 AND r.address = u.address`,
          [id, addrs, addrs.map((a) => updates.get(a)!.state), addrs.map((a) => updates.get(a)!.reply)],
        );
        const rcpts = (await c.query<{ state: RecipientState }>(`SELECT state FROM ${this.t('recipients')} WHERE entry_id = $1`, [id])).rows;
        const open = rcpts.some((r) => r.state === 'pending' || r.state === 'deferred');
        const anyFailed = rcpts.some((r) => r.state === 'failed');
        const state: QueueState = open ? 'deferred' : anyFailed ? 'bounced' : 'done';
        const lastError = o.deferred[0]?.reply ?? o.failed[0]?.reply ?? null;
        const finished = state === 'done' || state === 'bounced';
        // A finished entry keeps when it finished there, as in ./sqlite.ts: pruneFinished() goes by it.
        await c.query(`UPDATE ${this.t('entries')} SET state = $2, attempts = attempts + 1, next_attempt_at = $3, last_error = COALESCE($4, last_error), lease_owner = NULL, lease_until = NULL, claimed_at = NULL WHERE id = $1`, [id, state, finished ? new Date() : (o.nextAttemptAt ?? new Date()), lastError]);
        // Same transaction: a finished entry never keeps its body, and never loses it early.
        if (finished) await c.query(`DELETE FROM ${this.t('body_chunks')} WHERE entry_id = $1`, [id]);
        // Read in the same transaction: once it commits, a pruning pass (queue.keep_finished_days: 0,
        // on any instance) may remove a finished entry at once.
        const rows = (await c.query<Row>(`SELECT * FROM ${this.t('entries')} WHERE id = $1`, [id])).rows;
        return (await this.toEntries(rows, true, c))[0]!;
      });
    } catch (err) {
      throw ioError(`Could not settle ${id}`, err);
    }
  }

  private async setState(id: string, from: QueueState[], to: QueueState, dueNow = false): Promise<boolean> {
    const r = await this.query('Could not change the entry', `UPDATE ${this.t('entries')} SET state = $2${dueNow ? ', next_attempt_at = $4' : ''} WHERE id = $1 AND state = ANY($3::text[])`, dueNow ? [id, to, from, new Date()] : [id, to, from]);
    return (r.rowCount ?? 0) > 0;
  }

  async hold(id: string): Promise<boolean> {
    return this.setState(id, ['incoming', 'deferred'], 'hold');
  }

  async release(id: string): Promise<boolean> {
    return this.setState(id, ['hold'], 'deferred', true);
  }

  async retry(id: string | 'all'): Promise<number> {
    if (id === 'all') return (await this.query('Could not retry', `UPDATE ${this.t('entries')} SET next_attempt_at = $1 WHERE state = 'deferred'`, [new Date()])).rowCount ?? 0;
    return (await this.setState(id, ['deferred', 'hold'], 'deferred', true)) ? 1 : 0;
  }

  async delete(id: string): Promise<boolean> {
    // Recipients, attempts and body chunks go with it (ON DELETE CASCADE).
    const r = await this.query('Could not delete the entry', `DELETE FROM ${this.t('entries')} WHERE id = $1`, [id]);
    return (r.rowCount ?? 0) > 0;
  }

  async pruneFinished(before: Date, limit: number): Promise<number> {
    // Recipients, attempts and body chunks go with their entries (ON DELETE CASCADE). SKIP LOCKED:
    // instances pruning at the same time take different entries instead of waiting for each other.
    const r = await this.query(
      'Could not prune the queue',
      `DELETE FROM ${this.t('entries')} WHERE id IN (
         SELECT id FROM ${this.t('entries')} WHERE state IN ('done','bounced') AND next_attempt_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`,
      [before, limit],
    );
    return r.rowCount ?? 0;
  }

  /** `inTx`: read through that transaction's client instead of the pool. */
  private async toEntries(rows: Row[], withHistory: boolean, inTx?: pg.PoolClient): Promise<QueueEntry[]> {
    if (rows.length === 0) return [];
    const query = <R extends pg.QueryResultRow>(what: string, sql: string, params: unknown[]) => (inTx ? inTx.query<R>(sql, params) : this.query<R>(what, sql, params));
    const ids = rows.map((r) => r.id);
    const rcpts = new Map<string, QueueEntry['recipients']>();
    for (const r of (await query<{ entry_id: string; address: string; state: RecipientState; last_reply: string | null; notify: string | null; orcpt: string | null }>('Could not read recipients', `SELECT entry_id, address, state, last_reply, notify, orcpt FROM ${this.t('recipients')} WHERE entry_id = ANY($1::text[]) ORDER BY entry_id, position`, [ids])).rows) {
      const list = rcpts.get(r.entry_id) ?? [];
      list.push({ address: r.address, state: r.state, ...(r.last_reply ? { lastReply: r.last_reply } : {}), ...recipientDsnOf(r.notify, r.orcpt) });
      rcpts.set(r.entry_id, list);
    }
    const history = new Map<string, QueueAttempt[]>();
    if (withHistory) {
      for (const a of (await query<{ entry_id: string; at: string; route: string; recipients: string[]; reply: string; duration_ms: number; outcome: QueueAttempt['outcome'] }>('Could not read attempts', `SELECT entry_id, at, route, recipients, reply, duration_ms, outcome FROM ${this.t('attempts')} WHERE entry_id = ANY($1::text[]) ORDER BY seq`, [ids])).rows) {
        const list = history.get(a.entry_id) ?? [];
        list.push({ at: a.at, route: a.route, recipients: a.recipients, reply: a.reply, durationMs: a.duration_ms, outcome: a.outcome });
        history.set(a.entry_id, list);
      }
    }
    return rows.map((row) => ({
      id: row.id,
      state: row.state,
      sender: row.sender,
      recipients: rcpts.get(row.id) ?? [],
      size: Number(row.size),
      createdAt: row.created_at.toISOString(),
      nextAttemptAt: row.next_attempt_at.toISOString(),
      expiresAt: row.expires_at.toISOString(),
      attempts: row.attempts,
      ...(row.last_error ? { lastError: row.last_error } : {}),
      ...(row.client_ip ? { clientIp: row.client_ip } : {}),
      ...(row.auth_user ? { authUser: row.auth_user } : {}),
      ...(row.message_id ? { messageId: row.message_id } : {}),
      ...envelopeDsnOf(row.dsn_ret, row.dsn_envid),
      ...(withHistory ? { history: history.get(row.id) ?? [] } : {}),
    }));
  }

  async get(id: string): Promise<QueueEntry | undefined> {
    const rows = (await this.query<Row>('Could not read the entry', `SELECT * FROM ${this.t('entries')} WHERE id = $1`, [id])).rows;
    return (await this.toEntries(rows, true))[0];
  }

  async list(options: { state?: QueueState; search?: string; limit?: number; offset?: number } = {}): Promise<QueueEntry[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (options.state) {
      args.push(options.state);
      where.push(`state = $${args.length}`);
    }
    if (options.search) {
      args.push(`%${options.search}%`);
      const p = `$${args.length}`;
      // A UNION rather than one OR, so each branch can use its own (trigram) index.
      where.push(`id IN (SELECT id FROM ${this.t('entries')} WHERE id ILIKE ${p} OR sender ILIKE ${p} OR message_id ILIKE ${p} UNION SELECT entry_id FROM ${this.t('recipients')} WHERE address ILIKE ${p})`);
    }
    args.push(options.limit ?? 100, options.offset ?? 0);
    const rows = (await this.query<Row>('Could not list the queue', `SELECT * FROM ${this.t('entries')} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC LIMIT $${args.length - 1} OFFSET $${args.length}`, args)).rows;
    return this.toEntries(rows, false);
  }

  async counts(): Promise<QueueCounts> {
    const out: QueueCounts = { incoming: 0, active: 0, deferred: 0, hold: 0, done: 0, bounced: 0 };
    for (const r of (await this.query<{ state: QueueState; n: string }>('Could not count the queue', `SELECT state, count(*) AS n FROM ${this.t('entries')} GROUP BY state`)).rows) out[r.state] = Number(r.n);
    return out;
  }

  async recoverAfterCrash(): Promise<number> {
    // Uncommitted enqueues (no 250 yet) were rolled back by PostgreSQL itself: nothing to clean up.
    const host = osHostname();
    const now = new Date();
    const owners = (await this.query<{ lease_owner: string }>('Could not recover the queue', `SELECT DISTINCT lease_owner FROM ${this.t('entries')} WHERE state = 'active' AND lease_owner LIKE $1`, [`${host.replace(/[\\%_]/g, '\\$&')}:%`])).rows.map((r) => r.lease_owner);
    const dead = owners.filter((o) => isDeadLocalOwner(o, host));
    const r = await this.query(
      'Could not recover the queue',
      `UPDATE ${this.t('entries')} SET state = 'deferred', next_attempt_at = $1, lease_owner = NULL, lease_until = NULL, claimed_at = NULL
       WHERE state = 'active' AND (lease_until < $1 OR lease_owner = ANY($2::text[]) OR (lease_owner = $3 AND claimed_at < $4))`,
      [now, dead, this.owner, this.startedAt],
    );
    if (dead.length) this.options.log?.warn({ owners: dead }, 'took over the leases of relay processes on this host that are gone');
    return r.rowCount ?? 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
