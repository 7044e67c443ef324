/**
 * One SQLite writer at a time among this process's threads, queued in shared memory. The inbound
 * thread and delivery each hold a connection to the same database; left to SQLite, a writer that
 * finds the lock taken sleeps in its busy handler for at least a millisecond (then 2, 5, 10 …)
 * although write transactions here last tens of microseconds, and it sleeps with its event loop
 * blocked. Waiting on this lock instead costs the length of the other transaction. Other
 * processes (the `queue` command) still meet SQLite's own busy timeout.
 *
 * A futex mutex (Drepper, "Futexes Are Tricky", mutex 2): 0 free, 1 taken, 2 taken with waiters,
 * so an uncontended lock and unlock never enter the kernel.
 */
let cell = new Int32Array(new SharedArrayBuffer(4));

/** The lock's memory, for a worker thread to adopt with useWriteLock(). */
export function writeLockMemory(): SharedArrayBuffer {
  return cell.buffer as SharedArrayBuffer;
}

/** In a worker thread: share the lock of the thread that started it. */
export function useWriteLock(memory: SharedArrayBuffer): void {
  cell = new Int32Array(memory);
}

/** Held by this thread: taking it again would wait for ourselves forever. */
let held = false;

export function withWriteLock<T>(fn: () => T): T {
  if (held) throw new Error('queue write lock taken twice by one thread');
  let c = Atomics.compareExchange(cell, 0, 0, 1);
  if (c !== 0) {
    do {
      if (c === 2 || Atomics.compareExchange(cell, 0, 1, 2) !== 0) Atomics.wait(cell, 0, 2);
    } while ((c = Atomics.compareExchange(cell, 0, 0, 2)) !== 0);
  }
  held = true;
  try {
    return fn();
  } finally {
    held = false;
    if (Atomics.sub(cell, 0, 1) !== 1) {
      Atomics.store(cell, 0, 0);
      Atomics.notify(cell, 0, 1);
    }
  }
}
