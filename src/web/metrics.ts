/**
 * Prometheus metrics for the relay (prom-client, a registry of its own). Fed by the relay's
 * events; queue depth is read from the queue at scrape time.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RelayService, DeliveryEvent } from '../relay/index.js';
import type { RefreshEvent } from '../oauth/index.js';

export class RelayMetrics {
  readonly registry = new Registry();
  private readonly accepted = new Counter({ name: 'relay365_messages_accepted_total', help: 'Messages accepted from clients (250 sent after the queue committed them).', registers: [this.registry] });
  private readonly attempts = new Counter({ name: 'relay365_delivery_attempts_total', help: 'Delivery attempts by route and outcome (delivered, deferred, bounced, partial).', labelNames: ['route', 'outcome'], registers: [this.registry] });
  private readonly latency = new Histogram({ name: 'relay365_delivery_duration_seconds', help: 'Upstream delivery duration by route.', labelNames: ['route'], buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60], registers: [this.registry] });
  private readonly replies = new Counter({ name: 'relay365_upstream_replies_total', help: 'Upstream replies by basic reply code.', labelNames: ['code'], registers: [this.registry] });
  private readonly refreshes = new Counter({ name: 'relay365_token_refreshes_total', help: 'Token refreshes by result (ok, temporary, reauth, error).', labelNames: ['result'], registers: [this.registry] });
  private readonly connections = new Counter({ name: 'relay365_inbound_connections_total', help: 'Inbound SMTP connections.', registers: [this.registry] });

  constructor(relay: RelayService) {
    collectDefaultMetrics({ register: this.registry, prefix: 'relay365_process_' });
    new Gauge({
      name: 'relay365_queue_depth',
      help: 'Queue entries by state.',
      labelNames: ['state'],
      registers: [this.registry],
      async collect() {
        const counts = await relay.queue.counts();
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
    relay.events.on('accepted', () => this.accepted.inc());
    relay.events.on('connection', () => this.connections.inc());
    relay.events.on('attempt', (e: DeliveryEvent) => {
      const route = e.route.replace(/:.*$/, '');
      this.attempts.inc({ route, outcome: e.outcome });
      this.latency.observe({ route }, e.durationMs / 1000);
      if (e.replyCode) this.replies.inc({ code: String(e.replyCode) });
    });
    relay.events.on('refresh', (e: RefreshEvent) => this.refreshes.inc({ result: e.result }));
  }
}
