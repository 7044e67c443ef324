/**
 * chunksOf: a readable stream's chunks as written (no joining), with the async iterator's
 * contract: backpressure, errors, premature close, early stop.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { setImmediate as turn } from 'node:timers/promises';
import { chunksOf } from '../../src/core/stream.js';

const chunk = (n: number, fill: number) => Buffer.alloc(n, fill);

test('chunks come out as they were written, not joined, even when several were buffered', async () => {
  const s = new PassThrough();
  const written = [chunk(10, 1), chunk(70_000, 2), chunk(3, 3), chunk(5, 4)];
  // All written before anyone reads: the stream's own iterator would hand them over as one Buffer.
  for (const c of written) s.write(c);
  s.end();
  const seen: Buffer[] = [];
  for await (const c of chunksOf(s)) seen.push(c);
  assert.deepEqual(seen.map((c) => c.length), [10, 70_000, 3, 5]);
  assert.ok(seen.every((c, i) => c.equals(written[i]!)));
});

test('backpressure: a consumer that takes its time pauses the stream instead of buffering everything', async () => {
  const s = new PassThrough({ highWaterMark: 1024 });
  let accepted = 0;
  let refused = false;
  const producer = (async () => {
    for (let i = 0; i < 50; i++) {
      if (!s.write(chunk(1024, i))) {
        refused = true;
        await new Promise((r) => s.once('drain', r));
      }
      accepted++;
    }
    s.end();
  })();
  let total = 0;
  for await (const c of chunksOf(s)) {
    total += c.length;
    await turn();
    await turn();
  }
  await producer;
  assert.equal(total, 50 * 1024);
  assert.equal(accepted, 50);
  assert.ok(refused, 'the writer was told to wait at least once');
});

test("the stream's error is thrown after the chunks that came before it", async () => {
  const s = new PassThrough();
  s.write(chunk(4, 1));
  const seen: number[] = [];
  const consume = (async () => {
    for await (const c of chunksOf(s)) {
      seen.push(c.length);
      setImmediate(() => s.destroy(Object.assign(new Error('connection reset'), { code: 'ECONNECTION' })));
    }
  })();
  await assert.rejects(consume, /connection reset/);
  assert.deepEqual(seen, [4]);
});

test('a stream destroyed without an error before its end is a premature close, not an end', async () => {
  const s = new PassThrough();
  s.write(chunk(4, 1));
  setTimeout(() => s.destroy(), 5);
  await assert.rejects(
    (async () => {
      for await (const c of chunksOf(s)) assert.equal(c.length, 4);
    })(),
    (err: NodeJS.ErrnoException) => err.code === 'ERR_STREAM_PREMATURE_CLOSE',
  );
});

test('a consumer that stops early destroys the stream and leaves no listener behind', async () => {
  const s = new PassThrough();
  s.write(chunk(4, 1));
  s.write(chunk(4, 2));
  for await (const c of chunksOf(s)) {
    assert.equal(c[0], 1);
    break;
  }
  assert.ok(s.destroyed);
  assert.equal(s.listenerCount('data'), 0);
});
