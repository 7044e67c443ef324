/**
 * Hand-off of freshly accepted mail from inbound to delivery without a queue claim. A free
 * delivery slot is a credit in shared memory (the inbound side may be another thread); inbound
 * takes one when it stores a message, has the queue store it already leased to the delivery
 * engine, and delivery starts it from the accepted event. Without a credit (all slots busy) the
 * message is stored as usual and claimed later. Invariant: running deliveries + credits ≤ workers.
 */
export interface Handoff {
  /** [0] free slots (credits), [1] lease length in seconds. */
  slots: Int32Array;
  /** The delivery engine's lease owner (host:pid). */
  owner: string;
}

export function createHandoff(owner: string, workers: number, leaseSeconds: number): Handoff {
  const slots = new Int32Array(new SharedArrayBuffer(8));
  slots[0] = workers;
  slots[1] = leaseSeconds;
  return { slots, owner };
}

/** Takes up to `max` credits; returns how many it got. */
export function takeCredits(h: Handoff, max: number): number {
  for (;;) {
    const available = Atomics.load(h.slots, 0);
    const n = Math.min(available, max);
    if (n <= 0) return 0;
    if (Atomics.compareExchange(h.slots, 0, available, available - n) === available) return n;
  }
}

export function giveCredits(h: Handoff, n: number): void {
  if (n) Atomics.add(h.slots, 0, n);
}

export function handoffLeaseMs(h: Handoff): number {
  return Atomics.load(h.slots, 1) * 1000;
}
