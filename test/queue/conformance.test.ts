/**
 * The Queue contract, checked with the same tests against every backend: the embedded SQLite queue
 * and the shared PostgreSQL queue. Each test gets a fresh queue (a temp directory, or a schema of
 * its own that is dropped afterwards, so test files running at the same time never meet).
 * Where the backends differ on purpose (recoverAfterCrash with several instances) the test says so.
 */
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import Database from 'better-sqlite3';
import pg from 'pg';
import { tempDir } from '../helpers/cli.js';
import { SqliteQueue, type Queue, type QueueEntry } from '../../src/queue/index.js';
import { POSTGRES_SCHEMA_VERSION, PostgresQueue } from '../../src/queue/postgres.js';
import { QueueError } from '../../src/core/errors.js';

const PG_URL = process.env.RELAY365_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

interface OpenOptions {
  owner?: string;
  startedAt?: Date;
  maxMessageBytes?: number;
}

interface Backend {
  name: 'sqlite' | 'postgres';
  /** Several relay instances share this queue (recoverAfterCrash must spare other instances' leases). */
  shared: boolean;
  /** A Queue on the test's store; several calls = several instances (connections) on the same store. */
  open(options?: OpenOptions): Promise<Queue>;
  /** Rows of these entries in a child table, read from the store itself. */
  rows(table: 'recipients' | 'attempts', ids: string[]): Promise<number>;
  /** PostgreSQL: the test's schema. */
  schema?: string;
}

let pgReachable: Promise<string | undefined> | undefined;
/** undefined when reachable, else why not. */
function postgresProblem(): Promise<string | undefined> {
  pgReachable ??= (async () => {
    const c = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 });
    try {
      await c.connect();
      await c.query('SELECT 1');
      return undefined;
    } catch (err) {
      return (err as Error).message || String(err);
    } finally {
      await c.end().catch(() => {});
    }
  })();
  return pgReachable;
}

async function withBackend(t: TestContext, name: Backend['name']): Promise<Backend | undefined> {
  const opened: Queue[] = [];
  if (name === 'sqlite') {
    const dir = join(tempDir('relay365-queue-'), 'queue');
    t.after(() => Promise.all(opened.map((q) => q.close())));
    return {
      name,
      shared: false,
      async open(o = {}) {
        const q = new SqliteQueue({ dir, maxMessageBytes: o.maxMessageBytes });
        opened.push(q);
        return q;
      },
      async rows(table, ids) {
        const db = new Database(join(dir, 'queue.db'), { readonly: true });
        try {
          return (db.prepare(`SELECT count(*) AS n FROM ${table} WHERE entry_id IN (SELECT value FROM json_each(?))`).get(JSON.stringify(ids)) as { n: number }).n;
        } finally {
          db.close();
        }
      },
    };
  }
  const problem = await postgresProblem();
  if (problem) {
    t.skip(`PostgreSQL is not reachable at ${PG_URL} (${problem}); set RELAY365_TEST_POSTGRES_URL to run the postgres half`);
    return undefined;
  }
  const schema = `relay365_t_${randomBytes(6).toString('hex')}`;
  t.after(async () => {
    await Promise.all(opened.map((q) => q.close()));
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await c.end();
  });
  return {
    name,
    shared: true,
    schema,
    async open(o = {}) {
      const q = await PostgresQueue.open({ url: `${PG_URL}?schema=${schema}`, ...o });
      opened.push(q);
      return q;
    },
    async rows(table, ids) {
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      try {
        return Number((await c.query<{ n: string }>(`SELECT count(*) AS n FROM "${schema}".${table} WHERE entry_id = ANY($1::text[])`, [ids])).rows[0]!.n);
      } finally {
        await c.end();
      }
    },
  };
}

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

const meta = (n: number | string, extra: Partial<{ recipients: string[]; messageId: string; sender: string }> = {}) => ({
  sender: extra.sender ?? 'alice@contoso.test',
  recipients: extra.recipients ?? ['bob@fabrikam.test'],
  messageId: extra.messageId ?? `msg-${n}@conformance.test`,
});

const body = (text: string) => Readable.from([Buffer.from(text)]);

async function enqueueMany(q: Queue, n: number, prefix = 'm'): Promise<QueueEntry[]> {
  const out: QueueEntry[] = [];
  for (let i = 0; i < n; i++) {
    out.push(await q.enqueue(meta(`${prefix}${i}`), body(`Subject: ${prefix}${i}\r\n\r\nbody ${i}\r\n`)));
    // Distinct arrival times, so "oldest due first" has one right answer.
    await new Promise((r) => setTimeout(r, 2));
  }
  return out;
}

/** A process id that existed and is gone now (as a crashed relay's would be). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((r) => child.once('exit', r));
  return child.pid!;
}

for (const name of ['sqlite', 'postgres'] as const) {
  describe(`queue conformance: ${name}`, () => {
    test('RFC 3461 parameters: RET/ENVID per entry and NOTIFY/ORCPT per recipient come back from enqueue, get and claim', async (t) => {
      const b = await withBackend(t, name);
      if (!b) return;
      const q = await b.open();
      const recipientDsn = new Map([
        ['bob@fabrikam.test', { notify: ['SUCCESS', 'FAILURE'] as const, orcpt: 'rfc822;Bob@Fabrikam.test' }],
        ['carol@fabrikam.test', { notify: ['NEVER'] as const }],
      ]);
      const e = await q.enqueue({ ...meta('dsn'), recipients: ['bob@fabrikam.test', 'carol@fabrikam.test', 'dave@fabrikam.test'], dsn: { ret: 'FULL', envid: 'QQ314159 envid' }, recipientDsn: new Map([...recipientDsn].map(([k, v]) => [k, { ...v, notify: [...v.notify] }])) }, body('Subject: dsn\r\n\r\nx\r\n'));
      const expected = [
        { address: 'bob@fabrikam.test', state: 'pending', notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;Bob@Fabrikam.test' },
        { address: 'carol@fabrikam.test', state: 'pending', notify: ['NEVER'] },
        { address: 'dave@fabrikam.test', state: 'pending' },
      ];
      assert.deepEqual(e.dsn, { ret: 'FULL', envid: 'QQ314159 envid' });
      assert.deepEqual(e.recipients, expected);
      assert.deepEqual(await q.get(e.id), { ...e, history: [] });
      const [claimed] = await q.claim({ owner: 'w:1', limit: 1, leaseMs: 60_000 });
      assert.deepEqual(claimed!.dsn, { ret: 'FULL', envid: 'QQ314159 envid' });
      assert.deepEqual(claimed!.recipients, expected);
      const plain = await q.enqueue(meta('nodsn'), body('Subject: plain\r\n\r\nx\r\n'));
      assert.equal((await q.get(plain.id))!.dsn, undefined, 'no DSN field when the client gave none');
      const settled = await q.settle(e.id, { delivered: [], failed: [], deferred: [{ recipient: 'bob@fabrikam.test', reply: '451 later' }] });
      assert.deepEqual(settled.recipients[0], { address: 'bob@fabrikam.test', state: 'deferred', lastReply: '451 later', notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;Bob@Fabrikam.test' });
    });

    test('enqueue → get → openBody round trip keeps the envelope, the metadata and the bytes', async (t) => {
      const b = await withBackend(t, name);
      if (!b) return;
      const q = await b.open();
      const raw = 'Received: from x\r\nMessage-ID: <rt-1@conformance.test>\r\nSubject: hi\r\n\r\nHello, wörld\r\n';
      const before = Date.now();
      const e = await q.enqueue({ sender: 'alice@contoso.test', recipients: ['bob@fabrikam.test', 'carol@fabrikam.test', 'bob@fabrikam.test'], clientIp: '127.0.0.1', authUser: 'scanner', messageId: 'rt-1@conformance.test' }, body(raw));
      assert.match(e.id, /^[0-9A-Z]{19}$/);
      assert.equal(e.state, 'incoming');
      assert.equal(e.size, Buffer.byteLength(raw));
      assert.deepEqual(e.recipients, [
        { address: 'bob@fabrikam.test', state: 'pending' },
        { address: 'carol@fabrikam.test', state: 'pending' },
      ], 'duplicates collapse, order is kept');
      assert.equal(e.clientIp, '127.0.0.1');
      assert.equal(e.authUser, 'scanner');
      assert.equal(e.messageId, 'rt-1@conformance.test');
      assert.equal(e.attempts, 0);
      assert.ok(Date.parse(e.createdAt) >= before - 5 && Date.parse(e.nextAttemptAt) <= Date.now());
      assert.ok(Date.parse(e.expiresAt) - Date.parse(e.createdAt) === 5 * 86_400_000, 'default lifetime: 5 days');
      const got = await q.get(e.id);
      assert.deepEqual(got, { ...e, history: [] });
      assert.equal((await readAll(q.openBody(e.id))).toString(), raw);
      assert.equal((await readAll(q.openBody(e.id))).toString(), raw, 'a fresh stream each call');
      assert.equal(await q.get('NOSUCHID'), undefined);
      await assert.rejects(readAll(q.openBody('NOSUCHID')));

      // 5 MB, produced piecewise as an SMTP session would: every byte must come back in order.
      const hash = createHash('sha256');
      let produced = 0;
      const big = Readable.from(
        (function* () {
          for (let i = 0; i < 80; i++) {
            const piece = randomBytes(64 * 1024 + (i % 7));
            produced += piece.length;
            hash.update(piece);
            yield piece;
          }
        })(),
      );
      const e5 = await q.enqueue(meta('big'), big);
      assert.ok(produced > 5 * 1024 * 1024);
      assert.equal(e5.size, produced);
      const back = await readAll(q.openBody(e5.id));
      assert.equal(back.length, produced);
      assert.equal(createHash('sha256').update(back).digest('hex'), hash.digest('hex'));
    });

    test('a message over the size limit is refused with 552 5.3.4 and leaves nothing behind', async (t) => {
      const b = await withBackend(t, name);
      if (!b) return;
      const q = await b.open({ maxMessageBytes: 600 * 1024 });
      // Past the first stored chunk before the limit is hit, so the refusal has to undo a write.
      const err = await q.enqueue(meta('toobig'), Readable.from([0, 1, 2, 3].map(() => randomBytes(200 * 1024)))).then(
        () => assert.fail('accepted'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof QueueError);
      assert.equal(err.code, 'MESSAGE_INVALID');
      assert.equal(err.smtp?.code, 552);
      assert.equal(err.smtp?.enhanced, '5.3.4');
      assert.deepEqual(await q.list(), []);
      // A body stream that fails mid-way (client gone) is not queued either.
      const broken = new Readable({ read() {} });
      broken.push(Buffer.alloc(1000, 'x'));
      setTimeout(() => broken.destroy(new Error('connection reset')), 10);
      await assert.rejects(q.enqueue(meta('broken'), broken), (e: unknown) => e instanceof QueueError && e.code === 'QUEUE_IO');
      assert.deepEqual(await q.counts(), { incoming: 0, active: 0, deferred: 0, hold: 0, done: 0, bounced: 0 });
    });

    test('two instances claiming in parallel: every entry is leased exactly once', async (t) => {
      const b = await withBackend(t, name);
      if (!b) return;
      const [a, c] = [await b.open(), await b.open()];
      const all = await enqueueMany(a, 120);
      const claimed = new Map<string, string[]>();
      const worker = async (q: Queue, owner: string) => {
        for (;;) {
          const got = await q.claim({ owner, limit: 3, leaseMs: 60_000 });
          if (got.length === 0) return;
          for (const e of got) {
            assert.equal(e.state, 'active');
            claimed.set(e.id, [...(claimed.get(e.id) ?? []), owner]);
          }
        }
      };
      // Four workers per instance, as a relay's delivery workers would claim.
      await Promise.all([0, 1, 2, 3].flatMap((i) => [worker(a, `host-a:${i}`), worker(c, `host-b:${i}`)]));
      const twice = [...claimed].filter(([, owners]) => owners.length > 1);
      assert.deepEqual(twice, [], 'no entry claimed twice');
      assert.deepEqual([...claimed.keys()].sort(), all.map((e) => e.id).sort(), 'every entry claimed');
      const owners = new Set([...claimed.values()].flat().map((o) => o.split(':')[0]));
      if (b.shared) assert.deepEqual([...owners].sort(), ['host-a', 'host-b'], 'both instances got work');
      assert.equal((await a.counts()).active, 120);
      assert.deepEqual(await c.claim({ owner: 'host-b:9', limit: 10, leaseMs: 60_000 }), [], 'leased entries are not due');
    });

    test('claim: due entries only, oldest due first, up to the limit', async (t) => {
      const b = await withBackend(t, name);
      if (!b) return;
      const q = await b.open();
      const [e1, e2, e3] = await enqueueMany(q, 3);
      const first = await q.claim({ owner: 'w', limit: 2, leaseMs: 60_000 });
      assert.deepEqual(first.map((e) => e.id), [e1!.id, e2!.id]);
      assert.deepEqual(first[0]!.recipients, [{ address: 'bob@fabrikam.test', state: 'pending' }]);
      // Deferred to the future: not claimable now, claimable once due.
      await q.settle(e1!.id, { delivered: [], failed: [], deferred: [{ recipient: 'bob@fabrikam.test', reply: '451 4.7.500 busy' }], nextAttemptAt: new Date(Date.now() + 3600_000) });
      const second = await q.claim({ owner: 'w', limit: 10, leaseMs: 60_000 });
      assert.deepEqual(second.map((e) => e.id), [e3!.id]);
      const later = await q.claim({ owner: 'w', limit: 10, leaseMs: 60_000, now: new Date(Date.now() + 3601_000) });
      assert.ok(later.some((e) => e.id === e1!.id), 'due after its next attempt time');
      assert.ok(later.some((e) => e.id === e2!.id), 'and the others, whose leases ran out by then');
    });

    test('settle: delivered → done, failed → bounced, deferred → deferred with back-off; history is kept', async (t) => {
      const b = await withBackend(t, name);
      if (!b) return;
      const q = await b.open();
      const e = await q.enqueue(meta('settle', { recipients: ['a@x.test', 'b@x.test', 'c@x.test'] }), body('Subject: s\r\n\r\nx\r\n'));
      await q.claim({ owner: 'w', limit: 1, leaseMs: 60_000 });
      const next = new Date(Date.now() + 60_000);
      const first = { at: '2024-01-01T00:00:00.000Z', route: 'office365', recipients: ['a@x.test', 'b@x.test', 'c@x.test'], reply: '250 2.0.0 OK', durationMs: 120, outcome: 'partial' as const };
      const s1 = await q.settle(e.id, { delivered: ['a@x.test'], failed: [], deferred: [{ recipient: 'b@x.test', reply: '451 4.7.500 Server busy' }, { recipient: 'c@x.test', reply: '452 4.2.0 later' }], nextAttemptAt: next, attempts: [first] });
      assert.equal(s1.state, 'deferred');
      assert.equal(s1.attempts, 1);
      assert.equal(s1.lastError, '451 4.7.500 Server busy');
      assert.equal(s1.nextAttemptAt, next.toISOString());
      assert.deepEqual(s1.recipients, [
        { address: 'a@x.test', state: 'delivered' },
        { address: 'b@x.test', state: 'deferred', lastReply: '451 4.7.500 Server busy' },
        { address: 'c@x.test', state: 'deferred', lastReply: '452 4.2.0 later' },
      ]);
      assert.deepEqual(s1.history, [{ at: '2024-01-01T00:00:00.000Z', route: 'office365', recipients: ['a@x.test', 'b@x.test', 'c@x.test'], reply: '250 2.0.0 OK', durationMs: 120, outcome: 'partial' }]);
      assert.equal((await readAll(q.openBody(e.id))).toString(), 'Subject: s\r\n\r\nx\r\n', 'a deferred entry keeps its body');

      const second = { at: '2024-01-01T00:01:00.000Z', route: 'office365', recipients: ['b@x.test', 'c@x.test'], reply: '550 5.1.1 unknown', durationMs: 80, outcome: 'partial' as const };
      const s2 = await q.settle(e.id, { delivered: ['c@x.test'], failed: [{ recipient: 'b@x.test', reply: '550 5.1.1 unknown' }], deferred: [], attempts: [second] });
      assert.equal(s2.state, 'bounced');
      assert.equal(s2.attempts, 2);
      assert.equal(s2.lastError, '550 5.1.1 unknown');
      assert.deepEqual(s2.history!.map((h) => h.at), ['2024-01-01T00:00:00.000Z', '2024-01-01T00:01:00.000Z']);
      await assert.rejects(readAll(q.openBody(e.id)), 'a finished entry has no body any more');

      const d = await q.enqueue(meta('done', { recipients: ['a@x.test', 'b@x.test'] }), body('x'));
      const s3 = await q.settle(d.id, { delivered: ['a@x.test', 'b@x.test'], failed: [], deferred: [] });
      assert.equal(s3.state, 'done');
      assert.equal(s3.lastError, undefined);
      await assert.rejects(readAll(q.openBody(d.id)));
      assert.deepEqual(await q.claim({ owner: 'w', limit: 10, leaseMs: 1, now: new Date(Date.now() + 86_400_000) }), [], 'finished entries are never claimed');
      assert.deepEqual(await q.counts(), { incoming: 0, active: 0, deferred: 0, hold: 0, done: 1, bounced: 1 });
    });

    test('settle records its attempts in the same step; settles requested together all apply', async (t) => {
      const b = await withBackend(t, name);
      if (!b) return;
      const q = await b.open();
      const entries = await enqueueMany(q, 5);
      await q.claim({ owner: 'w', limit: 10, leaseMs: 60_000 });
      const attempt = (i: number) => ({ at: `2024-01-01T00:00:0${i}.000Z`, route: 'office365', recipients: ['bob@fabrikam.test'], reply: '250 2.0.0 OK', durationMs: 10 + i, outcome: 'delivered' as const });
      const settled = await Promise.all(entries.map((e, i) => q.settle(e.id, { delivered: ['bob@fabrikam.test'], failed: [], deferred: [], attempts: [attempt(i)] })));
      for (const [i, s] of settled.entries()) {
        assert.equal(s.id, entries[i]!.id);
        assert.equal(s.state, 'done');
        assert.deepEqual(s.history, [attempt(i)]);
      }
      assert.deepEqual(await q.counts(), { incoming: 0, active: 0, deferred: 0, hold: 0, done: 5, bounced: 0 });
    });

    test('enqueue with leaseTo: stored leased to that owner (SQLite hands off), or incoming where a backend does not', async (t) => {
      const b = await withBackend(t, name);
      if (!b) return;
      const q = await b.open();
      const e = await q.enqueue({ ...meta('lease'), leaseTo: { owner: 'host-a:1', leaseMs: 60_000 } }, body('Subject: lease\r\n\r\nx\r\n'));
      assert.equal(!!e.leasedTo, name === 'sqlite', 'SQLite leases at enqueue; PostgreSQL claims as before');
      if (e.leasedTo) {
        assert.equal(e.state, 'active');
        assert.equal(e.leasedTo, 'host-a:1');
        assert.equal((await q.get(e.id))!.state, 'active', 'stored leased');
        assert.deepEqual(await q.claim({ owner: 'host-b:1', limit: 10, leaseMs: 1000 }), [], 'not claimable while the lease runs');
        const later = await q.claim({ owner: 'host-b:1', limit: 10, leaseMs: 1000, now: new Date(Date.now() + 61_000) });
        assert.deepEqual(later.map((x) => x.id), [e.id], 'claimable once the lease ran out (its owner died)');
      } else {
        assert.equal(e.state, 'incoming');
        assert.deepEqual((await q.claim({ owner: 'host-b:1', limit: 10, leaseMs: 1000 })).map((x) => x.id), [e.id]);
      }
    });

    test('a finished entry records when it finished, not the back-off delivery passes along', async (t) => {
      const b = await withBackend(t, name);
      if (!b) return;
      const q = await b.open();
      const [e] = await enqueueMany(q, 1);
      await q.claim({ owner: 'w', limit: 1, leaseMs: 60_000 });
      const before = Date.now();
      const done = await q.settle(e!.id, { delivered: ['bob@fabrikam.test'], failed: [], deferred: [], nextAttemptAt: new Date(Date.now() + 3600_000) });
      assert.ok(Date.parse(done.nextAttemptAt) >= before - 5 && Date.parse(done.nextAttemptAt) <= Date.now(), `finished at ${done.nextAttemptAt}`);
      assert.equal(await q.pruneFinished(new Date(before - 1000), 10), 0, 'finished after the cutoff: kept');
      assert.equal(await q.pruneFinished(new Date(Date.now() + 1), 10), 1, 'finished before the cutoff: removed, back-off or not');
    });

    test('pruneFinished removes old done and bounced entries with their recipients and attempts, and nothing else', async (t) => {
      const b = await withBackend(t, name);
      if (!b) return;
      const q = await b.open();
      const [done, bounced, deferred, held, active] = await enqueueMany(q, 5);
      const rcpt = 'bob@fabrikam.test';
      const attempt = (outcome: 'delivered' | 'failed' | 'deferred') => [{ at: new Date().toISOString(), route: 'office365', recipients: [rcpt], reply: outcome === 'delivered' ? '250 2.0.0 OK' : '550 5.1.1 unknown', durationMs: 10, outcome }];
      await q.settle(done!.id, { delivered: [rcpt], failed: [], deferred: [], attempts: attempt('delivered') });
      await q.settle(bounced!.id, { delivered: [], failed: [{ recipient: rcpt, reply: '550 5.1.1 unknown' }], deferred: [], attempts: attempt('failed') });
      await q.settle(deferred!.id, { delivered: [], failed: [], deferred: [{ recipient: rcpt, reply: '451 4.7.500 busy' }], nextAttemptAt: new Date(Date.now() + 3600_000), attempts: attempt('deferred') });
      await q.hold(held!.id);
      assert.deepEqual((await q.claim({ owner: 'w', limit: 10, leaseMs: 60_000 })).map((e) => e.id), [active!.id]);
      const [incoming] = await enqueueMany(q, 1, 'incoming');
      const finished = [done!.id, bounced!.id];
      const live = [incoming!.id, deferred!.id, held!.id, active!.id];
      assert.equal(await b.rows('recipients', finished), 2);
      assert.equal(await b.rows('attempts', finished), 2);

      assert.equal(await q.pruneFinished(new Date(Date.now() - 60_000), 100), 0, 'finished less than a minute ago: newer than the cutoff');
      // A cutoff in the future makes every entry old enough: only the state decides.
      assert.equal(await q.pruneFinished(new Date(Date.now() + 86_400_000), 100), 2);
      for (const id of finished) assert.equal(await q.get(id), undefined);
      assert.equal(await b.rows('recipients', finished), 0, 'recipients gone');
      assert.equal(await b.rows('attempts', finished), 0, 'attempt history gone');
      assert.deepEqual(Object.fromEntries(await Promise.all(live.map(async (id) => [id, (await q.get(id))?.state]))), { [incoming!.id]: 'incoming', [deferred!.id]: 'deferred', [held!.id]: 'hold', [active!.id]: 'active' });
      assert.equal(await b.rows('recipients', live), 4);
      assert.equal(await b.rows('attempts', [deferred!.id]), 1, 'a live entry keeps its history');
      assert.deepEqual(await q.counts(), { incoming: 1, active: 1, deferred: 1, hold: 1, done: 0, bounced: 0 });
      assert.equal(await q.pruneFinished(new Date(Date.now() + 86_400_000), 100), 0);
    });

    test('pruneFinished removes at most `limit` entries per call', async (t) => {
      const b = await withBackend(t, name);
      if (!b) return;
      const q = await b.open();
      for (const e of await enqueueMany(q, 5)) await q.settle(e.id, { delivered: ['bob@fabrikam.test'], failed: [], deferred: [] });
      const cutoff = new Date(Date.now() + 1000);
      const removed: number[] = [];
      for (let i = 0; i < 4; i++) removed.push(await q.pruneFinished(cutoff, 2));
      assert.deepEqual(removed, [2, 2, 1, 0]);
      assert.deepEqual(await q.list(), []);
    });

    test('hold, release, retry and delete follow the Postfix states', async (t) => {
      const b = await withBackend(t, name);
      if (!b) return;
      const q = await b.open();
      const [h, d, x] = await enqueueMany(q, 3);
      assert.equal(await q.hold(h!.id), true);
      assert.equal(await q.hold(h!.id), false, 'already held');
      assert.equal((await q.get(h!.id))!.state, 'hold');
      assert.equal(await q.release(d!.id), false, 'only held entries are released');
      const claimed = await q.claim({ owner: 'w', limit: 10, leaseMs: 60_000 });
      assert.deepEqual(claimed.map((e) => e.id).sort(), [d!.id, x!.id].sort(), 'held entries are not claimed');
      assert.equal(await q.hold(d!.id), false, 'an active entry cannot be held');
      await q.settle(d!.id, { delivered: [], failed: [], deferred: [{ recipient: 'bob@fabrikam.test', reply: '451 later' }], nextAttemptAt: new Date(Date.now() + 3600_000) });
      assert.equal(await q.release(h!.id), true);
      const released = (await q.get(h!.id))!;
      assert.equal(released.state, 'deferred');
      assert.ok(Date.parse(released.nextAttemptAt) <= Date.now(), 'due now');
      assert.equal(await q.retry(d!.id), 1);
      assert.ok(Date.parse((await q.get(d!.id))!.nextAttemptAt) <= Date.now());
      await q.settle(d!.id, { delivered: [], failed: [], deferred: [{ recipient: 'bob@fabrikam.test', reply: '451 later' }], nextAttemptAt: new Date(Date.now() + 3600_000) });
      assert.equal(await q.hold(d!.id), true, 'a deferred entry can be held');
      assert.equal(await q.retry(d!.id), 1, 'retry also releases a held entry');
      assert.equal((await q.get(d!.id))!.state, 'deferred');
      assert.equal(await q.retry(x!.id), 0, 'an active entry is not retried');
      await q.settle(d!.id, { delivered: [], failed: [], deferred: [{ recipient: 'bob@fabrikam.test', reply: '451 later' }], nextAttemptAt: new Date(Date.now() + 3600_000) });
      assert.equal(await q.retry('all'), 2, 'every deferred entry');
      const due = await q.claim({ owner: 'w', limit: 10, leaseMs: 60_000 });
      assert.deepEqual(due.map((e) => e.id).sort(), [h!.id, d!.id].sort());
      assert.equal(await q.delete(h!.id), true);
      assert.equal(await q.delete(h!.id), false);
      assert.equal(await q.get(h!.id), undefined);
      await assert.rejects(readAll(q.openBody(h!.id)));
      assert.equal(await q.retry('NOSUCHID'), 0);
      assert.equal(await q.hold('NOSUCHID'), false);
      assert.deepEqual(await q.counts(), { incoming: 0, active: 2, deferred: 0, hold: 0, done: 0, bounced: 0 });
    });

    test('list: newest first, by state, search by Message-ID, sender, recipient or id, paging; counts', async (t) => {
      const b = await withBackend(t, name);
      if (!b) return;
      const q = await b.open();
      const e1 = await q.enqueue(meta(1, { messageId: 'CAF00d+Invoice-2024@mail.contoso.test' }), body('1'));
      await new Promise((r) => setTimeout(r, 3));
      const e2 = await q.enqueue(meta(2, { sender: 'printer@branch.test', recipients: ['ops@fabrikam.test'] }), body('2'));
      await new Promise((r) => setTimeout(r, 3));
      const e3 = await q.enqueue(meta(3, { messageId: 'other@mail.contoso.test' }), body('3'));
      await q.hold(e3.id);
      assert.deepEqual((await q.list()).map((e) => e.id), [e3.id, e2.id, e1.id]);
      const [hit] = await q.list({ search: 'Invoice-2024' });
      assert.equal(hit?.id, e1.id);
      assert.equal(hit?.messageId, 'CAF00d+Invoice-2024@mail.contoso.test');
      assert.equal(hit?.history, undefined, 'list does not load the history');
      assert.deepEqual((await q.list({ search: 'invoice-2024' })).map((e) => e.id), [e1.id], 'case-insensitive');
      assert.deepEqual((await q.list({ search: 'mail.contoso.test' })).map((e) => e.id), [e3.id, e1.id]);
      assert.deepEqual((await q.list({ search: 'printer@' })).map((e) => e.id), [e2.id], 'by sender');
      assert.deepEqual((await q.list({ search: 'ops@fabrikam' })).map((e) => e.id), [e2.id], 'by recipient');
      assert.deepEqual((await q.list({ search: e3.id.slice(-8) })).map((e) => e.id), [e3.id], 'by queue id');
      assert.deepEqual((await q.list({ search: 'contoso', state: 'hold' })).map((e) => e.id), [e3.id]);
      assert.deepEqual((await q.list({ state: 'incoming' })).map((e) => e.id), [e2.id, e1.id]);
      assert.deepEqual(await q.list({ search: 'no-such-thing' }), []);
      assert.deepEqual((await q.list({ limit: 1, offset: 1 })).map((e) => e.id), [e2.id]);
      assert.deepEqual(hit!.recipients, [{ address: 'bob@fabrikam.test', state: 'pending' }]);
      assert.deepEqual(await q.counts(), { incoming: 2, active: 0, deferred: 0, hold: 1, done: 0, bounced: 0 });
    });

    test('recoverAfterCrash: expired leases and leases of dead processes on this host come back due now', async (t) => {
      const b = await withBackend(t, name);
      if (!b) return;
      const q = await b.open();
      const [dead, expired, untouched] = await enqueueMany(q, 3);
      await q.hold(untouched!.id);
      const pid = await deadPid();
      await q.claim({ owner: `${hostname()}:${pid}`, limit: 1, leaseMs: 600_000 });
      await q.claim({ owner: 'gone-host:1', limit: 1, leaseMs: 1 });
      await new Promise((r) => setTimeout(r, 10));
      const restarted = await b.open();
      assert.equal(await restarted.recoverAfterCrash(), 2);
      for (const id of [expired!.id, dead!.id]) {
        const e = (await restarted.get(id))!;
        assert.equal(e.state, 'deferred');
        assert.ok(Date.parse(e.nextAttemptAt) <= Date.now(), 'due now');
        assert.equal(e.attempts, 0, 'a crash is not an attempt');
      }
      assert.equal((await restarted.get(untouched!.id))!.state, 'hold');
      const again = await restarted.claim({ owner: `${hostname()}:${process.pid}`, limit: 10, leaseMs: 60_000 });
      assert.deepEqual(again.map((e) => e.id).sort(), [expired!.id, dead!.id].sort());
      assert.equal(await restarted.recoverAfterCrash(), b.shared ? 0 : 2, b.shared ? 'a live lease of this process is kept' : 'single instance: every active entry is a crashed one');
    });

    test('recoverAfterCrash on a restart does not take live leases of other instances', async (t) => {
      const b = await withBackend(t, name);
      if (!b) return;
      const other = await b.open({ owner: 'relay-b.example:4242' });
      const [theirs] = await enqueueMany(other, 1);
      await other.claim({ owner: 'relay-b.example:4242', limit: 1, leaseMs: 600_000 });
      const me = await b.open({ owner: 'relay-a.example:1' });
      const recovered = await me.recoverAfterCrash();
      if (!b.shared) {
        // The SQLite queue belongs to one relay: whatever is active at start-up is its own crashed work.
        assert.equal(recovered, 1);
        return;
      }
      assert.equal(recovered, 0);
      assert.equal((await me.get(theirs!.id))!.state, 'active');
      assert.deepEqual(await me.claim({ owner: 'relay-a.example:1', limit: 10, leaseMs: 60_000 }), []);
      // Our own owner name from before this process started (a container restarts as pid 1): ours to recover.
      const [mine] = await enqueueMany(me, 1, 'mine');
      await me.claim({ owner: 'relay-a.example:1', limit: 1, leaseMs: 600_000 });
      const meAgain = await b.open({ owner: 'relay-a.example:1', startedAt: new Date(Date.now() + 1) });
      await new Promise((r) => setTimeout(r, 5));
      assert.equal(await meAgain.recoverAfterCrash(), 1);
      assert.equal((await meAgain.get(mine!.id))!.state, 'deferred');
      assert.equal((await meAgain.get(theirs!.id))!.state, 'active');
    });

    test('an expired lease is taken over by another instance; a live one is not', async (t) => {
      const b = await withBackend(t, name);
      if (!b) return;
      const a = await b.open();
      const c = await b.open();
      const [e] = await enqueueMany(a, 1);
      const t0 = Date.now();
      assert.equal((await a.claim({ owner: 'relay-a:1', limit: 5, leaseMs: 60_000, now: new Date(t0) })).length, 1);
      assert.deepEqual(await c.claim({ owner: 'relay-b:1', limit: 5, leaseMs: 60_000, now: new Date(t0 + 59_000) }), [], 'lease still valid');
      const taken = await c.claim({ owner: 'relay-b:1', limit: 5, leaseMs: 60_000, now: new Date(t0 + 61_000) });
      assert.deepEqual(taken.map((x) => x.id), [e!.id]);
      assert.deepEqual(await a.claim({ owner: 'relay-a:1', limit: 5, leaseMs: 60_000, now: new Date(t0 + 62_000) }), [], 'the new lease holds');
      const done = await c.settle(e!.id, { delivered: ['bob@fabrikam.test'], failed: [], deferred: [] });
      assert.equal(done.state, 'done');
      assert.equal(done.attempts, 1);
    });
  });
}

/**
 * A PostgreSQL queue holding one entry, taken back to what an older relay365 left (`downgrade`,
 * statements on the schema), then opened again: the upgrade under test runs in that open.
 */
async function reopenedFromOlderSchema(t: TestContext, downgrade: (schema: string) => string[]) {
  const b = await withBackend(t, 'postgres');
  if (!b) return undefined;
  const q = await b.open();
  const [kept] = await enqueueMany(q, 1);
  await q.close();
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  t.after(() => c.end());
  for (const sql of downgrade(b.schema!)) await c.query(sql);
  return { b, c, kept: kept!, upgraded: await b.open() };
}

test('postgres: a version 1 schema is upgraded to version 2 (the index pruneFinished reads) when a relay opens it', async (t) => {
  // What a relay365 from before version 2 left: no entries_finished index, version 1.
  const older = await reopenedFromOlderSchema(t, (schema) => [`DROP INDEX "${schema}".entries_finished`, `UPDATE "${schema}".schema_version SET version = 1`]);
  if (!older) return;
  const { b, c, kept, upgraded } = older;
  assert.equal((await c.query<{ version: number }>(`SELECT version FROM "${b.schema}".schema_version`)).rows[0]?.version, POSTGRES_SCHEMA_VERSION);
  assert.equal(POSTGRES_SCHEMA_VERSION, 3);
  const index = await c.query<{ indexdef: string }>('SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = $2', [b.schema, 'entries_finished']);
  assert.match(index.rows[0]?.indexdef ?? '', /\(next_attempt_at\) WHERE \(state = ANY/);
  assert.equal((await upgraded.get(kept.id))?.state, 'incoming', 'the queue itself is untouched');
});

test('postgres: a version 2 schema gains the DSN columns (version 3); its entries read as "no DSN parameters"', async (t) => {
  // What a relay365 from before version 3 left: no DSN columns, version 2.
  const older = await reopenedFromOlderSchema(t, (schema) => [
    `ALTER TABLE "${schema}".entries DROP COLUMN dsn_ret, DROP COLUMN dsn_envid`,
    `ALTER TABLE "${schema}".recipients DROP COLUMN notify, DROP COLUMN orcpt`,
    `UPDATE "${schema}".schema_version SET version = 2`,
  ]);
  if (!older) return;
  const { b, c, kept, upgraded } = older;
  assert.equal((await c.query<{ version: number }>(`SELECT version FROM "${b.schema}".schema_version`)).rows[0]?.version, 3);
  const old = await upgraded.get(kept.id);
  assert.equal(old?.dsn, undefined);
  assert.deepEqual(old?.recipients, [{ address: 'bob@fabrikam.test', state: 'pending' }]);
  const e = await upgraded.enqueue({ ...meta('v3'), dsn: { envid: 'E1' }, recipientDsn: new Map([['bob@fabrikam.test', { notify: ['DELAY' as const] }]]) }, body('Subject: v3\r\n\r\nx\r\n'));
  assert.deepEqual((await upgraded.get(e.id))?.recipients, [{ address: 'bob@fabrikam.test', state: 'pending', notify: ['DELAY'] }]);
});

test('sqlite: a database without the DSN columns gains them when a relay opens it', async () => {
  const dir = join(tempDir('relay365-queue-'), 'queue');
  const q = new SqliteQueue({ dir });
  const [kept] = await enqueueMany(q, 1);
  await q.close();
  // What a relay365 from before the DSN columns left.
  const db = new Database(join(dir, 'queue.db'));
  db.exec('ALTER TABLE entries DROP COLUMN dsn_ret; ALTER TABLE entries DROP COLUMN dsn_envid; ALTER TABLE recipients DROP COLUMN notify; ALTER TABLE recipients DROP COLUMN orcpt;');
  db.close();
  const upgraded = new SqliteQueue({ dir });
  try {
    const old = await upgraded.get(kept.id);
    assert.equal(old?.dsn, undefined);
    assert.deepEqual(old?.recipients, [{ address: 'bob@fabrikam.test', state: 'pending' }]);
    const e = await upgraded.enqueue({ ...meta('new'), dsn: { ret: 'HDRS' }, recipientDsn: new Map([['bob@fabrikam.test', { orcpt: 'rfc822;bob@fabrikam.test' }]]) }, body('Subject: new\r\n\r\nx\r\n'));
    const got = await upgraded.get(e.id);
    assert.deepEqual(got?.dsn, { ret: 'HDRS' });
    assert.deepEqual(got?.recipients, [{ address: 'bob@fabrikam.test', state: 'pending', orcpt: 'rfc822;bob@fabrikam.test' }]);
  } finally {
    await upgraded.close();
  }
});
