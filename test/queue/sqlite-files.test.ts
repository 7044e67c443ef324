/**
 * The SQLite queue's body files (bodies over 256 KB): written in place under their final name, the
 * row being the commit point. What a crash or an error can leave behind, and what recovery and
 * claims make of it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { tempDir } from '../helpers/cli.js';
import { seededRandom, splitAtRandom } from '../helpers/random.js';
import { SqliteQueue } from '../../src/queue/index.js';
import { QueueError } from '../../src/core/errors.js';

const meta = (n: string) => ({ sender: 'alice@contoso.test', recipients: ['bob@fabrikam.test'], messageId: `${n}@files.test` });
const bigBody = (chunks = 6) => Readable.from(Array.from({ length: chunks }, () => randomBytes(64 * 1024)));

function open(t: { after(fn: () => Promise<void>): void }, options: { maxMessageBytes?: number } = {}) {
  const dir = join(tempDir('relay365-queue-files-'), 'queue');
  const q = new SqliteQueue({ dir, ...options });
  t.after(() => q.close());
  return { dir, q, files: () => readdirSync(join(dir, 'bodies')).sort() };
}

test('a large body is one private file named after its entry; finishing the entry removes it', async (t) => {
  const { dir, q, files } = open(t);
  const e = await q.enqueue(meta('big'), bigBody());
  assert.deepEqual(files(), [`${e.id}.eml`]);
  assert.equal(statSync(join(dir, 'bodies', `${e.id}.eml`)).mode & 0o777, 0o600);
  assert.equal(statSync(join(dir, 'bodies', `${e.id}.eml`)).size, 6 * 64 * 1024);
  const [claimed] = await q.claim({ owner: 'test', limit: 1, leaseMs: 60_000 });
  assert.equal(claimed?.id, e.id);
  await q.settle(e.id, { delivered: ['bob@fabrikam.test'], failed: [], deferred: [] });
  assert.deepEqual(files(), []);
});

test('messages around the inline limit, arriving at once in interleaved chunks, are stored byte for byte', async (t) => {
  // The first 256 KB of every message wait in a reused buffer (one per message being received)
  // until the message proves small or large: no two messages may share one, and a buffer a
  // finished message gave back must not leak into the next.
  const { q, files } = open(t);
  const limit = 256 * 1024;
  const sizes = [0, 1, 1000, limit - 1, limit, limit + 1, 3 * limit + 7, 1024 * 1024];
  const bodies = [...sizes, ...sizes].map((size) => randomBytes(size));
  const rng = seededRandom(5);
  const dribble = (body: Buffer) =>
    (async function* () {
      for (const part of splitAtRandom(body, rng, 70_000)) {
        await new Promise((r) => setImmediate(r));
        yield part;
      }
    })();
  // Staggered starts, so that later messages take buffers that earlier ones gave back while their
  // commits still wait for a sync.
  const entries = await Promise.all(bodies.map((b, i) => new Promise((r) => setTimeout(r, i)).then(() => q.enqueue(meta(`m${i}`), dribble(b)))));
  for (const [i, e] of entries.entries()) {
    assert.equal(e.size, bodies[i]!.length);
    const stored = Buffer.concat(await q.openBody(e.id).toArray());
    assert.ok(stored.equals(bodies[i]!), `message ${i} (${bodies[i]!.length} bytes) stored as sent`);
  }
  assert.equal(files().length, 6, 'only the bodies over the limit have files');
});

test('a refused or broken large message leaves no file behind', async (t) => {
  const { q, files } = open(t, { maxMessageBytes: 600 * 1024 });
  await assert.rejects(q.enqueue(meta('toobig'), bigBody(12)), (e: unknown) => e instanceof QueueError && e.smtp?.code === 552);
  const broken = new Readable({ read() {} });
  broken.push(randomBytes(300 * 1024));
  setTimeout(() => broken.destroy(new Error('connection reset')), 10);
  await assert.rejects(q.enqueue(meta('broken'), broken), (e: unknown) => e instanceof QueueError && e.code === 'QUEUE_IO');
  assert.deepEqual(files(), []);
});

test('recovery removes body files whose row was never committed and keeps the others', async (t) => {
  const { dir, q, files } = open(t);
  const kept = await q.enqueue(meta('kept'), bigBody());
  // What a crash between writing a body and committing its row leaves: a file without a row.
  const orphan = join(dir, 'bodies', '0000000000ORPHAN00.eml');
  writeFileSync(orphan, randomBytes(300 * 1024));
  writeFileSync(join(dir, 'tmp', 'left-by-an-older-version'), 'x');
  await q.recoverAfterCrash();
  assert.deepEqual(files(), [`${kept.id}.eml`]);
  assert.deepEqual(readdirSync(join(dir, 'tmp')), []);
  assert.equal((await q.get(kept.id))?.state, 'incoming');
});

test('recovery removes the body file of an entry that finished just before a crash (settle committed, unlink not done)', async (t) => {
  const { dir, q, files } = open(t);
  const delivered = await q.enqueue(meta('delivered'), bigBody());
  const waiting = await q.enqueue(meta('waiting'), bigBody());
  await q.claim({ owner: 'test', limit: 2, leaseMs: 60_000 });
  await q.settle(delivered.id, { delivered: ['bob@fabrikam.test'], failed: [], deferred: [] });
  // The state a kill right after the settle's commit leaves behind: the file is still there.
  writeFileSync(join(dir, 'bodies', `${delivered.id}.eml`), randomBytes(300 * 1024));
  await q.recoverAfterCrash();
  assert.deepEqual(files(), [`${waiting.id}.eml`]);
  assert.equal((await q.get(delivered.id))?.state, 'done');
  assert.equal((await q.get(waiting.id))?.state, 'deferred', 'the leased entry is given back for a retry');
});

test('an entry whose body file is missing is quarantined (held, with the reason), not a crash', async (t) => {
  const { dir, q } = open(t);
  const lost = await q.enqueue(meta('lost'), bigBody());
  const fine = await q.enqueue(meta('fine'), bigBody());
  rmSync(join(dir, 'bodies', `${lost.id}.eml`));
  const claimed = await q.claim({ owner: 'test', limit: 10, leaseMs: 60_000 });
  assert.deepEqual(claimed.map((c) => c.id), [fine.id]);
  const held = await q.get(lost.id);
  assert.equal(held?.state, 'hold');
  assert.match(held?.lastError ?? '', /quarantined: body file missing/);
  assert.ok(!existsSync(join(dir, 'quarantine', `${lost.id}.eml`)));
});

test('pruning a finished entry removes a body file its settling left behind (the relay stopped before the unlink)', async (t) => {
  const { dir, q, files } = open(t);
  const e = await q.enqueue(meta('pruned'), bigBody());
  const kept = await q.enqueue(meta('kept'), bigBody());
  await q.settle(e.id, { delivered: ['bob@fabrikam.test'], failed: [], deferred: [] });
  assert.deepEqual(files(), [`${kept.id}.eml`]);
  writeFileSync(join(dir, 'bodies', `${e.id}.eml`), randomBytes(300 * 1024));
  assert.equal(await q.pruneFinished(new Date(Date.now() + 1000), 10), 1);
  assert.deepEqual(files(), [`${kept.id}.eml`], 'the finished entry\'s file is gone, the queued one\'s stays');
  assert.equal(await q.get(e.id), undefined);
});
