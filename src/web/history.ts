/**
 * The last hour of traffic for the dashboard: messages per minute (accepted, delivered, deferred,
 * bounced) in 60 one-minute buckets, fed by the relay's events. Kept in memory on purpose: it is a
 * view of what this process saw, the durable truth is the queue (and Prometheus for history).
 */
import type { EventEmitter } from 'node:events';
import type { DeliveryEvent } from '../relay/index.js';

export type Series = 'accepted' | 'delivered' | 'deferred' | 'bounced';

export interface MinuteBucket {
  /** Start of the minute, epoch ms. */
  minute: number;
  counts: Record<Series, number>;
}

const MINUTES = 60;

export class TrafficHistory {
  private readonly buckets = new Map<number, Record<Series, number>>();
  readonly startedAt = Date.now();
  private readonly listeners: Array<[string, (...args: any[]) => void]> = [];

  constructor(events?: EventEmitter) {
    if (!events) return;
    const on = (event: string, fn: (...args: any[]) => void) => {
      events.on(event, fn);
      this.listeners.push([event, fn]);
    };
    on('accepted', () => this.add('accepted'));
    on('attempt', (e: DeliveryEvent) => {
      if (e.outcome === 'delivered' || e.outcome === 'partial') this.add('delivered');
      else if (e.outcome === 'deferred') this.add('deferred');
      else if (e.outcome === 'bounced') this.add('bounced');
    });
  }

  add(series: Series, n = 1, at = Date.now()): void {
    const minute = Math.floor(at / 60_000) * 60_000;
    let b = this.buckets.get(minute);
    if (!b) {
      b = { accepted: 0, delivered: 0, deferred: 0, bounced: 0 };
      this.buckets.set(minute, b);
      for (const k of this.buckets.keys()) if (k < minute - MINUTES * 60_000) this.buckets.delete(k);
    }
    b[series] += n;
  }

  /** The last 60 minutes, oldest first, the current (partial) minute last. */
  lastHour(now = Date.now()): MinuteBucket[] {
    const current = Math.floor(now / 60_000) * 60_000;
    const out: MinuteBucket[] = [];
    for (let i = MINUTES - 1; i >= 0; i--) {
      const minute = current - i * 60_000;
      out.push({ minute, counts: { ...(this.buckets.get(minute) ?? { accepted: 0, delivered: 0, deferred: 0, bounced: 0 }) } });
    }
    return out;
  }

  detach(events: EventEmitter): void {
    for (const [event, fn] of this.listeners.splice(0)) events.off(event, fn);
  }
}
