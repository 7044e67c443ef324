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
  // The worker runs the module itself (under tsx, registered in the thread as the relay's inbound
  // thread does), so both sides use the real withWriteLock on one shared lock.
  const tsx = import.meta.resolve('tsx/esm/api');
  const moduleUrl = new URL('../../src/queue/write-lock.ts', import.meta.url).href;
  const source = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(${JSON.stringify(tsx)})
      .then((m) => m.register())
      .then(() => import(${JSON.stringify(moduleUrl)}))
      .then(({ useWriteLock, withWriteLock }) => {
        useWriteLock(workerData.lock);
        parentPort.postMessage('ready');
        Atomics.wait(new Int32Array(workerData.go), 0, 0);
        const counter = new Int32Array(workerData.counter);
        const pause = new Int32Array(new SharedArrayBuffer(4));
        for (let i = 0; i < workerData.rounds; i++) {
          withWriteLock(() => {
            const v = Atomics.load(counter, 0);
            if (i % 50 === 0) Atomics.wait(pause, 0, 0, 1);
            Atomics.store(counter, 0, v + 1);
          });
        }
        parentPort.postMessage('done');
      });
  `;
  // Both start together once the worker has loaded the module (which takes a while under tsx).
  const go = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(source, { eval: true, workerData: { lock: writeLockMemory(), counter: counter.buffer, go: go.buffer, rounds } });
  const messages: string[] = [];
  const finished = new Promise((resolve, reject) => {
    worker.on('message', (m: string) => {
      messages.push(m);
      if (m === 'done') resolve(m);
    });
    worker.once('error', reject);
  });
  while (!messages.includes('ready')) await new Promise((r) => setTimeout(r, 10));
  Atomics.store(go, 0, 1);
  Atomics.notify(go, 0);
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
