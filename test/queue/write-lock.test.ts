/**
 * The queue's write lock (src/queue/write-lock.ts): threads of one process take turns, and a
 * thread cannot take it twice.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { withWriteLock, writeLockMemory } from '../../src/queue/write-lock.js';

test('two threads incrementing a shared counter under the lock lose no increment', async () => {
  // A read-modify-write with a pause in the middle: without mutual exclusion increments are lost.
  const counter = new Int32Array(new SharedArrayBuffer(4));
  const rounds = 2000;
  const source = `
    const { workerData, parentPort } = require('node:worker_threads');
    const lock = new Int32Array(workerData.lock);
    const counter = new Int32Array(workerData.counter);
    const pause = new Int32Array(new SharedArrayBuffer(4));
    for (let i = 0; i < workerData.rounds; i++) {
      let c = Atomics.compareExchange(lock, 0, 0, 1);
      if (c !== 0) {
        do {
          if (c === 2 || Atomics.compareExchange(lock, 0, 1, 2) !== 0) Atomics.wait(lock, 0, 2);
        } while ((c = Atomics.compareExchange(lock, 0, 0, 2)) !== 0);
      }
      const v = Atomics.load(counter, 0);
      if (i % 50 === 0) Atomics.wait(pause, 0, 0, 1);
      Atomics.store(counter, 0, v + 1);
      if (Atomics.sub(lock, 0, 1) !== 1) { Atomics.store(lock, 0, 0); Atomics.notify(lock, 0, 1); }
    }
    parentPort.postMessage('done');
  `;
  // The worker runs the same protocol as withWriteLock (a copy: a worker cannot import TypeScript).
  const worker = new Worker(source, { eval: true, workerData: { lock: writeLockMemory(), counter: counter.buffer, rounds } });
  const finished = new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < rounds; i++) {
    withWriteLock(() => {
      const v = Atomics.load(counter, 0);
      if (i % 50 === 0) Atomics.wait(pause, 0, 0, 1);
      Atomics.store(counter, 0, v + 1);
    });
    if (i % 100 === 0) await new Promise((r) => setImmediate(r));
  }
  await finished;
  await worker.terminate();
  assert.equal(Atomics.load(counter, 0), 2 * rounds);
  assert.equal(Atomics.load(new Int32Array(writeLockMemory()), 0), 0, 'released');
});

test('taking the lock again inside itself is an error, not a hang, and leaves it free', () => {
  assert.throws(() => withWriteLock(() => withWriteLock(() => 1)), /taken twice/);
  assert.equal(withWriteLock(() => 42), 42);
  assert.equal(Atomics.load(new Int32Array(writeLockMemory()), 0), 0);
});
