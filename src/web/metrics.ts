/**
 * Prometheus metrics for the relay (prom-client, a registry of its own so tests and several
 * relays in one process never share counters). Fed by the relay's events; queue depth is read
 * from the queue at scrape time, so it is right even for entries that arrived before a restart.
 */
import type { EventEmitter } from 'node:events';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DeliveryEvent } from '../relay/index.js';
import type { RefreshEvent } from '../oauth/index.js';
import type { Queue } from '../queue/index.js';

/** What the metrics need from the relay (a RelayService satisfies it). */
export interface MetricsSource {
  queue: Pick<Queue, 'counts'>;
  /** 'accepted', 'connection', 'attempt' (DeliveryEvent), 'refresh' (RefreshEvent). */
  events: EventEmitter;
}

/** "by-sender:alice@contoso.com" → "by-sender": route labels stay few (no addresses in label values). */
export function routeLabel(route: string): string {
  return route.replace(/:.*$/, '');
}

export class RelayMetrics {
  readonly registry = new Registry();
  private readonly accepted = new Counter({ name: 'relay365_messages_accepted_total', help: 'Messages accepted from clients (250 sent after the queue committed them).', registers: [this.registry] });
  private readonly attempts = new Counter({ name: 'relay365_delivery_attempts_total', help: 'Delivery attempts by route and outcome (delivered, deferred, bounced, partial).', labelNames: ['route', 'outcome'], registers: [this.registry] });
  private readonly latency = new Histogram({ name: 'relay365_delivery_duration_seconds', help: 'Upstream delivery duration by route.', labelNames: ['route'], buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60], registers: [this.registry] });
  private readonly replies = new Counter({ name: 'relay365_upstream_replies_total', help: 'Upstream replies by basic reply code.', labelNames: ['code'], registers: [this.registry] });
  private readonly refreshes = new Counter({ name: 'relay365_token_refreshes_total', help: 'Token refreshes by result (ok, temporary, reauth, error).', labelNames: ['result'], registers: [this.registry] });
  private readonly connections = new Counter({ name: 'relay365_inbound_connections_total', help: 'Inbound SMTP connections.', registers: [this.registry] });
  private readonly listeners: Array<[string, (...args: any[]) => void]> = [];

  constructor(private readonly source: MetricsSource) {
    collectDefaultMetrics({ register: this.registry, prefix: 'relay365_process_' });
    new Gauge({
      name: 'relay365_queue_depth',
      help: 'Queue entries by state (incoming, active, deferred, hold; done and bounced are records kept for queue.keep_finished_days).',
      labelNames: ['state'],
      registers: [this.registry],
      async collect() {
        const counts = await source.queue.counts();
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
    this.on('accepted', () => this.accepted.inc());
    this.on('connection', () => this.connections.inc());
    this.on('attempt', (e: DeliveryEvent) => {
      const route = routeLabel(e.route);
      this.attempts.inc({ route, outcome: e.outcome });
      this.latency.observe({ route }, e.durationMs / 1000);
      if (e.replyCode) this.replies.inc({ code: String(e.replyCode) });
    });
    this.on('refresh', (e: RefreshEvent) => this.refreshes.inc({ result: e.result }));
  }

  private on(event: string, fn: (...args: any[]) => void): void {
    this.source.events.on(event, fn);
    this.listeners.push([event, fn]);
  }

  /** Stop listening to the relay (the registry keeps its values). */
  detach(): void {
    for (const [event, fn] of this.listeners.splice(0)) this.source.events.off(event, fn);
  }
}
