/**
 * The embedded queue: SQLite (WAL) for the index, small bodies inline, large ones as files.
 * Written by hand: no maintained library offers a durable SMTP queue.
 *
 * Durability before the 250 reply, at the price of as few fsyncs as possible (group commit):
 * - a body up to INLINE_MAX is kept in memory and stored as a BLOB in the same transaction as its
 *   row; a larger one is written straight into bodies/ under its final name (see BodyFile) and
 *   its data and its directory entry are synced before its row is committed. The row is the commit
 *   point: a body file without a row (a crash mid-message) is an orphan, removed at recovery;
 * - the database runs with synchronous=NORMAL (commits write the WAL without syncing it) and an
 *   accepting commit is made durable by fsyncing the WAL file ourselves, off the event loop. That
 *   is what synchronous=FULL would do, but asynchronously: messages that finish arriving while one
 *   sync runs go together in the next commit, so 50 clients sending at once cost a handful of
 *   syncs, not one each (group commit).
 * Commits after acceptance (claims, attempts, settling) are not synced on their own: a power cut
 * may undo one, which only means a message is tried again (at least once, never lost); the next
 * accepting commit syncs them along with it anyway.
 * Unreadable entries are moved to quarantine/ with a log line instead of stopping the relay.
 */
import { promises as fsp, mkdirSync, renameSync, existsSync, openSync, closeSync, writeSync, readSync, fsync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { QueueError } from '../core/errors.js';
import { fsyncDir } from '../core/fs.js';
import type { Logger } from '../core/log.js';
import { withWriteLock } from './write-lock.js';
import type { DsnNotify, EnqueueMeta, EnvelopeDsn, Queue, QueueAttempt, QueueCounts, QueueEntry, QueueRecipient, QueueState, SettleOutcome } from './types.js';

/** Bodies up to this size are stored inside the database (one sync for body and row). */
const INLINE_MAX = 256 * 1024;

interface PendingCommit {
  id: string;
  meta: EnqueueMeta;
  size: number;
  /** The body when it is stored in the row; absent for a body file (already durable). */
  inline?: Buffer;
  resolve: (entry: QueueEntry) => void;
  reject: (err: unknown) => void;
}

const fsyncFd = (fd: number) => new Promise<void>((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));

/**
 * A large body on its way to disk, written with synchronous writes: each chunk goes to the page
 * cache in microseconds, while a write through the thread pool costs two thread wake-ups, which
 * on a loaded two-core machine made the relay's file I/O cost more than the copies themselves.
 * Only the fsync, which waits for the disk, runs in the thread pool. (A disk so slow that a write
 * to the page cache blocks would stall this event loop for that write; Postfix's cleanup blocks
 * the same way.)
 */
class BodyFile {
  private fd: number;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'wx', 0o600);
  }

  write(chunk: Buffer): void {
    for (let done = 0; done < chunk.length; ) done += writeSync(this.fd, chunk, done, chunk.length - done);
  }

  /** Data and size on disk, then the descriptor closed. */
  async sync(): Promise<void> {
    await fsyncFd(this.fd);
    closeSync(this.fd);
    this.fd = -1;
  }

  discard(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    try {
      unlinkSync(this.path);
    } catch {
      // already gone; an orphan would be removed at recovery anyway
    }
  }
}

/**
 * A body file read with synchronous reads, for the reason BodyFile writes that way. Files read
 * here were mostly written moments ago and are in the page cache.
 */
class BodyFileStream extends Readable {
  private fd = -1;

  constructor(private readonly path: string) {
    super({ highWaterMark: INLINE_MAX });
  }

  override _read(): void {
    try {
      if (this.fd < 0) this.fd = openSync(this.path, 'r');
      // 256 KB reads: a 1 MB body in four system calls (a quarter of the cost of 64 KB reads).
      const buf = Buffer.allocUnsafe(INLINE_MAX);
      const n = readSync(this.fd, buf, 0, INLINE_MAX, null);
      this.push(n ? buf.subarray(0, n) : null);
    } catch (err) {
      this.destroy(err as Error);
    }
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    callback(err);
  }
}

/**
 * Buffers that hold the first INLINE_MAX bytes of a message until it proves small (stored inline)
 * or large (written to its file), reused from one message to the next. Keeping the received chunks
 * themselves cost full garbage collections: a quarter-megabyte takes long enough to arrive that
 * its chunks outlive two young-generation collections and move to the old generation, where only
 * a full collection frees them, and V8 starts one whenever that much buffer memory has built up
 * (about every 40 messages of 1 MB, with 10 clients sending).
 */
class HeadBuffers {
  private readonly free: Buffer[] = [];

  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(INLINE_MAX);
  }

  /** At most 8 are kept (2 MB) for the next messages; the rest go to the garbage collector. */
  give(buf: Buffer): void {
    if (this.free.length < 8) this.free.push(buf);
  }
}

export interface SqliteQueueOptions {
  dir: string;
  maxMessageBytes?: number;
  maxLifetimeMs?: number;
  log?: Logger;
}

/** Random bytes drawn in blocks: one system call per 800 ids instead of one per id. */
let randomPool = Buffer.alloc(0);
let randomOffset = 0;

/** Sortable, unique queue ids: time (base36) + random. */
export function newQueueId(): string {
  if (randomOffset + 5 > randomPool.length) {
    randomPool = randomBytes(4000);
    randomOffset = 0;
  }
  const random = randomPool.toString('hex', randomOffset, (randomOffset += 5)).toUpperCase();
  return `${Date.now().toString(36).toUpperCase().padStart(9, '0')}${random}`;
}

interface Row {
  id: string;
  state: QueueState;
  sender: string;
  size: number;
  created_at: number;
  next_attempt_at: number;
  expires_at: number;
  attempts: number;
  last_error: string | null;
  client_ip: string | null;
  auth_user: string | null;
  message_id: string | null;
  dsn_ret: EnvelopeDsn['ret'] | null;
  dsn_envid: string | null;
}

/**
 * Columns added after the first release, created at open on a database that lacks them (SQLite
 * has no IF NOT EXISTS for columns). NULL in old rows means "not given", which is what they were.
 */
const ADDED_COLUMNS: Array<{ table: string; column: string; type: string }> = [
  // RFC 3461 DSN parameters: RET and ENVID per message, NOTIFY (comma list) and ORCPT per recipient.
  { table: 'entries', column: 'dsn_ret', type: 'TEXT' },
  { table: 'entries', column: 'dsn_envid', type: 'TEXT' },
  { table: 'recipients', column: 'notify', type: 'TEXT' },
  { table: 'recipients', column: 'orcpt', type: 'TEXT' },
];

/** The DSN fields of a recipient row, left out when absent (most mail has none). */
export function recipientDsnOf(notify: string | null, orcpt: string | null): Pick<QueueRecipient, 'notify' | 'orcpt'> {
  if (notify === null && orcpt === null) return {};
  return { ...(notify !== null ? { notify: notify.split(',') as DsnNotify[] } : {}), ...(orcpt !== null ? { orcpt } : {}) };
}

/** The DSN field of an entry row, left out when the client gave neither RET nor ENVID. */
export function envelopeDsnOf(ret: EnvelopeDsn['ret'] | null, envid: string | null): Pick<QueueEntry, 'dsn'> {
  if (ret === null && envid === null) return {};
  return { dsn: { ...(ret !== null ? { ret } : {}), ...(envid !== null ? { envid } : {}) } };
}

export class SqliteQueue implements Queue {
  private readonly db: Database.Database;
  private readonly bodies: string;
  private readonly tmp: string;
  private readonly quarantine: string;
  private pending: PendingCommit[] = [];
  private flushing = false;
  private readonly insertEntry: Database.Statement;
  private readonly insertRecipient: Database.Statement;
  private readonly insertBody: Database.Statement;
  private readonly selectBody: Database.Statement;
  private readonly statements = new Map<string, Database.Statement>();
  /** One transaction wrapper for every write (better-sqlite3 builds several functions per wrapper). */
  private readonly runTransaction: Database.Transaction<(fn: () => unknown) => unknown>;
  private wal?: fsp.FileHandle;
  private readonly walMode: boolean;
  /** bodies/, open for fsync: a new file's name is durable once the directory is synced. */
  private readonly bodiesDirFd: number;
  private dirSyncRunning?: Promise<void>;
  private dirSyncNext?: Promise<void>;
  private readonly heads = new HeadBuffers();

  constructor(private readonly options: SqliteQueueOptions) {
    this.bodies = join(options.dir, 'bodies');
    this.tmp = join(options.dir, 'tmp');
    this.quarantine = join(options.dir, 'quarantine');
    try {
      for (const d of [options.dir, this.bodies, this.tmp, this.quarantine]) mkdirSync(d, { recursive: true, mode: 0o700 });
      this.db = new Database(join(options.dir, 'queue.db'));
      // Where WAL is unavailable (some network filesystems) every commit syncs itself instead.
      this.walMode = String(this.db.pragma('journal_mode = WAL', { simple: true })).toLowerCase() === 'wal';
      this.db.pragma(this.walMode ? 'synchronous = NORMAL' : 'synchronous = FULL');
      this.db.pragma('busy_timeout = 5000');
      // Write transactions begin IMMEDIATE: with a second writer (the inbound thread, another
      // process) a deferred one that read first could not upgrade and would fail with SQLITE_BUSY
      // instead of waiting its turn.
      this.db.exec(`
        CREATE TABLE IF NOT EXISTS entries (
          id TEXT PRIMARY KEY, state TEXT NOT NULL, sender TEXT NOT NULL, size INTEGER NOT NULL,
          created_at INTEGER NOT NULL, next_attempt_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
          attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, client_ip TEXT, auth_user TEXT, message_id TEXT,
          lease_owner TEXT, lease_until INTEGER, dsn_ret TEXT, dsn_envid TEXT);
        CREATE INDEX IF NOT EXISTS entries_due ON entries(state, next_attempt_at);
        CREATE TABLE IF NOT EXISTS recipients (
          entry_id TEXT NOT NULL, address TEXT NOT NULL, state TEXT NOT NULL, last_reply TEXT, notify TEXT, orcpt TEXT,
          PRIMARY KEY (entry_id, address));
        CREATE TABLE IF NOT EXISTS attempts (
          entry_id TEXT NOT NULL, at TEXT NOT NULL, route TEXT NOT NULL, recipients TEXT NOT NULL,
          reply TEXT NOT NULL, duration_ms INTEGER NOT NULL, outcome TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS attempts_entry ON attempts(entry_id);
        CREATE TABLE IF NOT EXISTS bodies (entry_id TEXT PRIMARY KEY, data BLOB NOT NULL);
      `);
      this.runTransaction = this.db.transaction((fn: () => unknown) => fn());
      this.addMissingColumns();
      this.insertEntry = this.db.prepare('INSERT INTO entries (id, state, sender, size, created_at, next_attempt_at, expires_at, client_ip, auth_user, message_id, lease_owner, lease_until, dsn_ret, dsn_envid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)');
      this.insertRecipient = this.db.prepare("INSERT OR IGNORE INTO recipients (entry_id, address, state, notify, orcpt) VALUES (?, ?, 'pending', ?, ?)");
      this.insertBody = this.db.prepare('INSERT INTO bodies (entry_id, data) VALUES (?, ?)');
      this.selectBody = this.db.prepare('SELECT data FROM bodies WHERE entry_id = ?');
      this.bodiesDirFd = openSync(this.bodies, 'r');
    } catch (err) {
      throw new QueueError('QUEUE_IO', `Cannot open the queue database in ${options.dir}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Migrates a queue database written by an older relay365 (see ADDED_COLUMNS). */
  private addMissingColumns(): void {
    const missing = () => {
      const present = new Set<string>();
      for (const table of new Set(ADDED_COLUMNS.map((c) => c.table))) {
        for (const c of this.db.pragma(`table_info(${table})`) as Array<{ name: string }>) present.add(`${table}.${c.name}`);
      }
      return ADDED_COLUMNS.filter((c) => !present.has(`${c.table}.${c.column}`));
    };
    if (!missing().length) return;
    // Looked at again inside the write transaction: another thread or process (the inbound thread,
    // a CLI command) may have added them meanwhile, and adding a column twice is an error.
    this.write(() => {
      for (const c of missing()) this.db.exec(`ALTER TABLE ${c.table} ADD COLUMN ${c.column} ${c.type}`);
    });
  }

  /** A write transaction: BEGIN IMMEDIATE, taken in turn with this process's other threads. */
  private write<T>(fn: () => T): T {
    return withWriteLock(() => this.runTransaction.immediate(fn) as T);
  }

  /** Prepared once per distinct SQL text (preparing costs more than running these statements). */
  private sqlStatement(sql: string): Database.Statement {
    let st = this.statements.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  /** fsync of the WAL: makes every commit so far durable, in the thread pool. */
  private async syncWal(): Promise<void> {
    if (!this.walMode) return;
    if (!this.wal) {
      this.wal = await fsp.open(join(this.options.dir, 'queue.db-wal'), 'r+');
      await fsyncDir(this.options.dir);
    }
    await this.wal.sync();
  }

  /**
   * Resolves when an fsync of bodies/ that began after this call has finished, so that every file
   * created before the call has a durable name. Callers arriving while one runs share the next.
   */
  private syncBodiesDir(): Promise<void> {
    const start = (): Promise<void> => {
      const run = fsyncFd(this.bodiesDirFd).finally(() => {
        if (this.dirSyncRunning === run) this.dirSyncRunning = undefined;
      });
      this.dirSyncRunning = run;
      return run;
    };
    if (!this.dirSyncRunning) return start();
    this.dirSyncNext ??= this.dirSyncRunning
      .catch(() => undefined)
      .then(() => {
        this.dirSyncNext = undefined;
        return start();
      });
    return this.dirSyncNext;
  }

  bodyPath(id: string): string {
    return join(this.bodies, `${id}.eml`);
  }

  async enqueue(meta: EnqueueMeta, body: AsyncIterable<Buffer>): Promise<QueueEntry> {
    const id = newQueueId();
    const max = meta.maxBytes ?? this.options.maxMessageBytes ?? Number.POSITIVE_INFINITY;
    const tooBig = () => new QueueError('MESSAGE_INVALID', `Message exceeds the size limit of ${max} bytes`, { temporary: false, smtp: { code: 552, enhanced: '5.3.4', text: 'Message size exceeds fixed maximum message size' } });
    let size = 0;
    const head = this.heads.take();
    let file: BodyFile | undefined;
    let dirSynced: Promise<void> | undefined;
    let inline: Buffer | undefined;
    try {
      // Small messages stay in memory until the commit; the first byte past INLINE_MAX moves the
      // message to a file, so a large one is streamed and never held whole.
      for await (const chunk of body) {
        const buf = chunk as Buffer;
        if (size + buf.length > max) throw tooBig();
        if (!file && size + buf.length <= INLINE_MAX) {
          size += buf.copy(head, size);
          continue;
        }
        if (!file) {
          file = new BodyFile(this.bodyPath(id));
          // The file's name becomes durable while the rest of the message arrives.
          dirSynced = this.syncBodiesDir();
          dirSynced.catch(() => undefined);
          file.write(head.subarray(0, size));
        }
        file.write(buf);
        size += buf.length;
      }
      if (file) {
        // One after the other (both are under way): the descriptor is closed only when no sync
        // uses it, whichever fails.
        await file.sync();
        await dirSynced;
      } else {
        inline = Buffer.from(head.subarray(0, size));
      }
    } catch (err) {
      file?.discard();
      if (err instanceof QueueError) throw err;
      throw new QueueError('QUEUE_IO', `Could not store the message: ${(err as Error).message}`, { cause: err });
    } finally {
      this.heads.give(head);
    }
    return new Promise<QueueEntry>((resolve, reject) => {
      this.pending.push({ id, meta, size, ...(inline ? { inline } : {}), resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  /** Group commit: every message waiting when a sync starts is made durable by that sync. */
  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.pending.length) {
        const group = this.pending.splice(0);
        try {
          const now = Date.now();
          const expiresOf = (g: PendingCommit) => now + (g.meta.lifetimeMs ?? this.options.maxLifetimeMs ?? 5 * 86_400_000);
          this.write(() => {
            for (const g of group) {
              const lease = g.meta.leaseTo;
              const dsn = g.meta.dsn;
              this.insertEntry.run(g.id, lease ? 'active' : 'incoming', g.meta.sender, g.size, now, now, expiresOf(g), g.meta.clientIp ?? null, g.meta.authUser ?? null, g.meta.messageId ?? null, lease?.owner ?? null, lease ? now + lease.leaseMs : null, dsn?.ret ?? null, dsn?.envid ?? null);
              const rcptDsn = g.meta.recipientDsn;
              for (const r of g.meta.recipients) {
                const d = rcptDsn?.get(r);
                this.insertRecipient.run(g.id, r, d?.notify?.join(',') ?? null, d?.orcpt ?? null);
              }
              if (g.inline) this.insertBody.run(g.id, g.inline);
            }
          });
          // The rows are visible (a worker may already deliver them: harmless), but no 250 is
          // given before the WAL holding them is on disk.
          await this.syncWal();
          // What was just written, without reading it back.
          for (const g of group) {
            g.resolve({
              id: g.id,
              state: g.meta.leaseTo ? 'active' : 'incoming',
              sender: g.meta.sender,
              recipients: [...new Set(g.meta.recipients)].map((address) => ({ address, state: 'pending', ...g.meta.recipientDsn?.get(address) })),
              size: g.size,
              createdAt: new Date(now).toISOString(),
              nextAttemptAt: new Date(now).toISOString(),
              expiresAt: new Date(expiresOf(g)).toISOString(),
              attempts: 0,
              ...(g.meta.clientIp ? { clientIp: g.meta.clientIp } : {}),
              ...(g.meta.authUser ? { authUser: g.meta.authUser } : {}),
              ...(g.meta.messageId ? { messageId: g.meta.messageId } : {}),
              ...(g.meta.dsn ? { dsn: g.meta.dsn } : {}),
              ...(g.meta.leaseTo ? { leasedTo: g.meta.leaseTo.owner } : {}),
              history: [],
            });
          }
        } catch (err) {
          await Promise.all(group.map((g) => (g.inline ? undefined : this.dropBodyFile(g.id).catch(() => undefined))));
          const e = new QueueError('QUEUE_IO', `Could not record the message: ${(err as Error).message}`, { cause: err });
          for (const g of group) g.reject(e);
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  /** Removes a finished entry's body file (an inline body goes with its row's transaction). */
  private async dropBodyFile(id: string): Promise<void> {
    // unlink, not rm: rm walks the path as if it could be a directory (an lstat per call).
    await fsp.unlink(this.bodyPath(id)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }

  async claim(options: { owner: string; limit: number; leaseMs: number; now?: Date }): Promise<QueueEntry[]> {
    const now = (options.now ?? new Date()).getTime();
    const ids = this.write(() => {
      // One index range per state (no OR, no sort): retries due get up to half the slots so a
      // stream of new mail cannot starve them, new mail the rest, then leases of crashed workers.
      const due = this.sqlStatement('SELECT id FROM entries WHERE state = ? AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?');
      const take = (state: string, n: number) => (n > 0 ? (due.all(state, now, n) as Array<{ id: string }>) : []);
      const rows = take('deferred', Math.ceil(options.limit / 2));
      rows.push(...take('incoming', options.limit - rows.length));
      if (rows.length < options.limit) rows.push(...take('deferred', options.limit - rows.length).filter((r) => !rows.some((x) => x.id === r.id)));
      if (rows.length < options.limit) rows.push(...(this.sqlStatement("SELECT id FROM entries WHERE state = 'active' AND lease_until < ? LIMIT ?").all(now, options.limit - rows.length) as Array<{ id: string }>));
      const upd = this.sqlStatement("UPDATE entries SET state = 'active', lease_owner = ?, lease_until = ? WHERE id = ?");
      for (const r of rows) upd.run(options.owner, now + options.leaseMs, r.id);
      return rows.map((r) => r.id);
    });
    const out: QueueEntry[] = [];
    // A claim reads what delivery needs, not the attempt history (get() has that).
    const read = this.sqlStatement('SELECT e.*, EXISTS (SELECT 1 FROM bodies b WHERE b.entry_id = e.id) AS inline FROM entries e WHERE e.id = ?');
    for (const id of ids) {
      const row = read.get(id) as (Row & { inline: number }) | undefined;
      if (!row) continue;
      if (!row.inline && !existsSync(this.bodyPath(id))) {
        this.quarantineEntry(id, 'body file missing');
        continue;
      }
      out.push(this.toEntry(row, false));
    }
    return out;
  }

  private quarantineEntry(id: string, reason: string): void {
    this.options.log?.error({ queueId: id, reason }, 'queue entry quarantined');
    try {
      if (existsSync(this.bodyPath(id))) renameSync(this.bodyPath(id), join(this.quarantine, `${id}.eml`));
    } catch {
      // the row is marked regardless, so the relay keeps running
    }
    this.write(() => this.sqlStatement("UPDATE entries SET state = 'hold', last_error = ?, lease_owner = NULL WHERE id = ?").run(`quarantined: ${reason}`, id));
  }

  openBody(id: string): Readable {
    const row = this.selectBody.get(id) as { data: Buffer } | undefined;
    return row ? Readable.from([row.data]) : new BodyFileStream(this.bodyPath(id));
  }

  private insertAttempt(id: string, a: QueueAttempt): void {
    this.sqlStatement('INSERT INTO attempts (entry_id, at, route, recipients, reply, duration_ms, outcome) VALUES (?, ?, ?, ?, ?, ?, ?)').run(id, a.at, a.route, a.recipients.join(','), a.reply, a.durationMs, a.outcome);
  }

  /**
   * Settling is batched like accepting: every settle requested in one turn of the event loop is
   * written in one transaction (a delivery's attempts, its recipients' states, the entry's state
   * and, for a finished entry, an inline body's removal). A commit per step was most of
   * delivery's queue cost. Settles are not synced on their own (see the header).
   */
  settle(id: string, o: SettleOutcome): Promise<QueueEntry> {
    return new Promise((resolve, reject) => {
      this.settles.push({ id, o, resolve, reject });
      if (this.settles.length === 1) setImmediate(() => void this.flushSettles());
    });
  }

  private settles: Array<{ id: string; o: SettleOutcome; resolve: (e: QueueEntry) => void; reject: (err: unknown) => void }> = [];
  private settling?: Promise<void>;

  private async flushSettles(): Promise<void> {
    const batch = this.settles.splice(0);
    if (!batch.length) return;
    let finish!: () => void;
    this.settling = new Promise((r) => (finish = r));
    try {
      let results: Array<{ done: boolean; inline: boolean } | { error: unknown }>;
      try {
        results = this.write(() => batch.map((b) => this.settleOne(b.id, b.o)));
      } catch {
        // One bad entry must not fail the others: each again on its own, with its own error.
        results = batch.map((b) => {
          try {
            return this.write(() => this.settleOne(b.id, b.o));
          } catch (error) {
            return { error };
          }
        });
      }
      // Read at once: a pruning pass may remove a finished entry while body files are unlinked below.
      const entries = batch.map((b, i) => ('error' in results[i]! ? undefined : this.read(b.id)));
      for (const [i, b] of batch.entries()) {
        const r = results[i]!;
        if ('error' in r) {
          b.reject(new QueueError('QUEUE_IO', `Could not settle ${b.id}: ${(r.error as Error).message}`, { cause: r.error }));
          continue;
        }
        try {
          if (r.done && !r.inline) await this.dropBodyFile(b.id);
          b.resolve(entries[i]!);
        } catch (err) {
          b.reject(err);
        }
      }
    } finally {
      this.settling = undefined;
      finish();
    }
  }

  private settleOne(id: string, o: SettleOutcome): { done: boolean; inline: boolean } {
    for (const a of o.attempts ?? []) this.insertAttempt(id, a);
    const set = this.sqlStatement('UPDATE recipients SET state = ?, last_reply = ? WHERE entry_id = ? AND address = ?');
    for (const r of o.delivered) set.run('delivered', null, id, r);
    for (const f of o.failed) set.run('failed', f.reply, id, f.recipient);
    for (const d of o.deferred) set.run('deferred', d.reply, id, d.recipient);
    const rcpts = this.sqlStatement('SELECT state FROM recipients WHERE entry_id = ?').all(id) as Array<{ state: string }>;
    const open = rcpts.some((r) => r.state === 'pending' || r.state === 'deferred');
    const anyFailed = rcpts.some((r) => r.state === 'failed');
    const state: QueueState = open ? 'deferred' : anyFailed ? 'bounced' : 'done';
    const lastError = o.deferred[0]?.reply ?? o.failed[0]?.reply ?? null;
    const finished = state === 'done' || state === 'bounced';
    // A finished entry keeps when it finished there (delivery passes its back-off time regardless):
    // pruneFinished() goes by it.
    this.sqlStatement('UPDATE entries SET state = ?, attempts = attempts + 1, next_attempt_at = ?, last_error = COALESCE(?, last_error), lease_owner = NULL, lease_until = NULL WHERE id = ?').run(state, finished ? Date.now() : (o.nextAttemptAt ?? new Date()).getTime(), lastError, id);
    if (!finished) return { done: false, inline: false };
    return { done: true, inline: this.sqlStatement('DELETE FROM bodies WHERE entry_id = ?').run(id).changes > 0 };
  }

  private setState(id: string, from: QueueState[], to: QueueState, dueNow = false): boolean {
    const placeholders = from.map(() => '?').join(',');
    const r = this.write(() => this.sqlStatement(`UPDATE entries SET state = ?${dueNow ? ', next_attempt_at = ?' : ''} WHERE id = ? AND state IN (${placeholders})`).run(...(dueNow ? [to, Date.now(), id, ...from] : [to, id, ...from])));
    return r.changes > 0;
  }

  async hold(id: string): Promise<boolean> {
    return this.setState(id, ['incoming', 'deferred'], 'hold');
  }

  async release(id: string): Promise<boolean> {
    return this.setState(id, ['hold'], 'deferred', true);
  }

  async retry(id: string | 'all'): Promise<number> {
    if (id === 'all') return this.write(() => this.sqlStatement("UPDATE entries SET next_attempt_at = ? WHERE state = 'deferred'").run(Date.now()).changes);
    return this.setState(id, ['deferred', 'hold'], 'deferred', true) ? 1 : 0;
  }

  async delete(id: string): Promise<boolean> {
    const r = this.write(() => {
      this.sqlStatement('DELETE FROM recipients WHERE entry_id = ?').run(id);
      this.sqlStatement('DELETE FROM attempts WHERE entry_id = ?').run(id);
      return { removed: this.sqlStatement('DELETE FROM entries WHERE id = ?').run(id).changes, inline: this.sqlStatement('DELETE FROM bodies WHERE entry_id = ?').run(id).changes > 0 };
    });
    if (!r.inline) await this.dropBodyFile(id);
    return r.removed > 0;
  }

  async pruneFinished(before: Date, limit: number): Promise<number> {
    const ids = this.write(() => {
      // Served by entries_due (state, next_attempt_at): one index range per finished state.
      const old = (this.sqlStatement("SELECT id FROM entries WHERE state IN ('done', 'bounced') AND next_attempt_at < ? LIMIT ?").all(before.getTime(), limit) as Array<{ id: string }>).map((r) => r.id);
      const list = JSON.stringify(old);
      // The tables have no foreign keys: the child rows are removed here, in the same transaction.
      for (const table of ['recipients', 'attempts', 'bodies']) this.sqlStatement(`DELETE FROM ${table} WHERE entry_id IN (SELECT value FROM json_each(?))`).run(list);
      this.sqlStatement('DELETE FROM entries WHERE id IN (SELECT value FROM json_each(?))').run(list);
      return old;
    });
    // Settling removed their body files, unless the relay stopped between its commit and the unlink.
    for (const id of ids) await this.dropBodyFile(id);
    return ids.length;
  }

  private toEntry(row: Row, withHistory: boolean): QueueEntry {
    const rcpts = this.sqlStatement('SELECT address, state, last_reply, notify, orcpt FROM recipients WHERE entry_id = ? ORDER BY rowid').all(row.id) as Array<{ address: string; state: QueueEntry['recipients'][number]['state']; last_reply: string | null; notify: string | null; orcpt: string | null }>;
    const entry: QueueEntry = {
      id: row.id,
      state: row.state,
      sender: row.sender,
      recipients: rcpts.map((r) => ({ address: r.address, state: r.state, ...(r.last_reply ? { lastReply: r.last_reply } : {}), ...recipientDsnOf(r.notify, r.orcpt) })),
      size: row.size,
      createdAt: new Date(row.created_at).toISOString(),
      nextAttemptAt: new Date(row.next_attempt_at).toISOString(),
      expiresAt: new Date(row.expires_at).toISOString(),
      attempts: row.attempts,
      ...(row.last_error ? { lastError: row.last_error } : {}),
      ...(row.client_ip ? { clientIp: row.client_ip } : {}),
      ...(row.auth_user ? { authUser: row.auth_user } : {}),
      ...(row.message_id ? { messageId: row.message_id } : {}),
      ...envelopeDsnOf(row.dsn_ret, row.dsn_envid),
    };
    if (withHistory) {
      entry.history = (this.sqlStatement('SELECT at, route, recipients, reply, duration_ms, outcome FROM attempts WHERE entry_id = ? ORDER BY rowid').all(row.id) as Array<{ at: string; route: string; recipients: string; reply: string; duration_ms: number; outcome: QueueAttempt['outcome'] }>).map((a) => ({ at: a.at, route: a.route, recipients: a.recipients.split(','), reply: a.reply, durationMs: a.duration_ms, outcome: a.outcome }));
    }
    return entry;
  }

  async get(id: string): Promise<QueueEntry | undefined> {
    return this.read(id);
  }

  private read(id: string): QueueEntry | undefined {
    const row = this.sqlStatement('SELECT * FROM entries WHERE id = ?').get(id) as Row | undefined;
    return row ? this.toEntry(row, true) : undefined;
  }

  async list(options: { state?: QueueState; search?: string; limit?: number; offset?: number } = {}): Promise<QueueEntry[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (options.state) {
      where.push('state = ?');
      args.push(options.state);
    }
    if (options.search) {
      where.push('(id LIKE ? OR sender LIKE ? OR message_id LIKE ? OR id IN (SELECT entry_id FROM recipients WHERE address LIKE ?))');
      const like = `%${options.search}%`;
      args.push(like, like, like, like);
    }
    const rows = this.sqlStatement(`SELECT * FROM entries ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC LIMIT ? OFFSET ?`).all(...args, options.limit ?? 100, options.offset ?? 0) as Row[];
    return rows.map((r) => this.toEntry(r, false));
  }

  async counts(): Promise<QueueCounts> {
    const out: QueueCounts = { incoming: 0, active: 0, deferred: 0, hold: 0, done: 0, bounced: 0 };
    for (const r of this.sqlStatement('SELECT state, COUNT(*) AS n FROM entries GROUP BY state').all() as Array<{ state: QueueState; n: number }>) out[r.state] = r.n;
    return out;
  }

  async recoverAfterCrash(): Promise<number> {
    // Bodies whose row was never committed never got a 250: remove them (tmp/ held them before
    // bodies were written in place).
    for (const f of await fsp.readdir(this.tmp)) await fsp.rm(join(this.tmp, f), { force: true });
    // So are those of finished entries: a crash between a settle's commit and the unlink after it
    // leaves the body of a message already delivered or bounced.
    const needed = this.sqlStatement("SELECT 1 FROM entries WHERE id = ? AND state NOT IN ('done', 'bounced')");
    for (const f of await fsp.readdir(this.bodies)) {
      if (f.endsWith('.eml') && !needed.get(f.slice(0, -4))) await fsp.rm(join(this.bodies, f), { force: true });
    }
    return this.write(() => this.sqlStatement("UPDATE entries SET state = 'deferred', next_attempt_at = ?, lease_owner = NULL, lease_until = NULL WHERE state = 'active'").run(Date.now()).changes);
  }

  async close(): Promise<void> {
    while (this.flushing || this.settling || this.settles.length) await (this.settling ?? new Promise((r) => setTimeout(r, 5)));
    await this.wal?.close();
    closeSync(this.bodiesDirFd);
    this.db.close();
  }
}
