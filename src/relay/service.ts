/**
 * The running relay: inbound → queue → delivery, with the token manager as a service the
 * transports ask. `RelayService.start()` is what `relay365 serve` runs; tests start it in-process.
 */
import { EventEmitter } from 'node:events';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { writeFileAtomic } from '../core/fs.js';
import type { Logger } from '../core/log.js';
import { openTokenManager, type TokenManager } from '../oauth/index.js';
import { openQueue, pruneFinishedBefore, type Queue, type QueueEntry } from '../queue/index.js';
import { DeliveryEngine } from './delivery.js';
import type { InboundServer } from './inbound.js';
import { InboundThread } from './inbound-thread.js';
import { Router } from './routing.js';

export interface RelayServiceOptions {
  config: Config;
  stateDir: string;
  log: Logger;
  env?: NodeJS.ProcessEnv;
  /** When finished entries are pruned: first this long after start, then this long after each pass ends. */
  pruneSchedule?: { firstMs: number; everyMs: number };
}

const DAY_MS = 86_400_000;

export class RelayService {
  /** 'accepted' (QueueEntry), 'attempt' (DeliveryEvent), 'settled' (QueueEntry), 'connection'. */
  readonly events = new EventEmitter();
  private constructor(
    private current: Config,
    readonly stateDir: string,
    readonly queue: Queue,
    readonly tokens: TokenManager,
    readonly inbound: InboundServer | InboundThread,
    readonly delivery: DeliveryEngine,
    readonly router: Router,
    private readonly log: Logger,
    private readonly pruneSchedule: { firstMs: number; everyMs: number },
  ) {}

  /** The configuration in force: the one started with, or the last one reloaded. */
  get config(): Config {
    return this.current;
  }

  private pruneTimer?: NodeJS.Timeout;
  private pruning?: Promise<void>;
  private readonly stopPruning = new AbortController();

  /** The next pass is timed from the end of the last one, so two never overlap. */
  private schedulePrune(delayMs: number): void {
    this.pruneTimer = setTimeout(() => {
      this.pruning = this.prune().finally(() => {
        this.pruning = undefined;
        if (!this.stopPruning.signal.aborted) this.schedulePrune(this.pruneSchedule.everyMs);
      });
    }, delayMs);
    // A pending pass does not keep the process alive.
    this.pruneTimer.unref();
  }

  /** Removes finished entries older than queue.keep_finished_days; a failed pass is retried at the next one. */
  private async prune(): Promise<void> {
    const cutoff = new Date(Date.now() - this.current.queue.keep_finished_days * DAY_MS);
    try {
      const removed = await pruneFinishedBefore(this.queue, cutoff, this.stopPruning.signal);
      if (removed) this.log.info({ removed, cutoff: cutoff.toISOString() }, 'removed finished queue entries');
    } catch (err) {
      this.log.warn({ err }, 'could not remove finished queue entries; trying again at the next pass');
    }
  }

  /**
   * SIGHUP: apply a new configuration and the accounts as they are now, without dropping client
   * connections: policy applies to the next command, routes to the next delivery; cached tokens
   * and pooled upstream connections are dropped, so a removed account sends nothing more and a
   * re-authorized one is used at once. Listener addresses and the queue backend need a restart.
   */
  reload(config: Config): void {
    this.inbound.reconfigure(config);
    this.router.reconfigure(config.relay, config.delivery);
    this.delivery.reconfigure(config);
    this.current = config;
    this.tokens.forgetAllCached();
    void this.delivery.accountsReloaded().catch((err) => this.log.warn({ err }, 'could not close pooled upstream connections after the reload'));
    this.log.info('configuration reloaded, accounts re-read (listeners and queue backend unchanged)');
  }

  static async start(opts: RelayServiceOptions): Promise<RelayService> {
    const { config, stateDir, log } = opts;
    const hostname = config.relay.hostname ?? osHostname();
    const queue = await openQueue({ backend: config.queue.backend, dir: config.queue.dir, postgres_url: config.queue.postgres_url, max_message_size: config.relay.max_message_size, max_lifetime_seconds: config.delivery.max_lifetime_seconds }, { stateDir, log });
    const recovered = await queue.recoverAfterCrash();
    if (recovered) log.warn({ recovered }, 'recovered in-flight messages from an earlier run; they will be retried');
    const tokens = openTokenManager({ stateDir, caFile: config.delivery.ca_file, log, env: opts.env });
    tokens.startBackgroundRefresh();
    const router = new Router(config.relay, config.delivery, async () => (await tokens.accounts()).map((a) => ({ email: a.email, mailbox: a.mailbox })));
    const delivery = new DeliveryEngine({ queue, router, tokens, config, log, hostname });
    // The inbound server is created before the service object it reports to.
    const ref: { service?: RelayService } = {};
    const reports = {
      onAccepted: (entry: QueueEntry) => {
        ref.service?.events.emit('accepted', entry);
        delivery.accepted(entry);
      },
      onConnection: () => ref.service?.events.emit('connection'),
      handoff: delivery.handoff,
    };
    // smtp-server is loaded only where it runs: in the inbound thread, or here without one.
    const inbound = config.relay.inbound_thread ? new InboundThread({ config, stateDir, log, hostname, ...reports }) : new (await import('./inbound.js')).InboundServer({ config, queue, log, hostname, ...reports });
    const service = new RelayService(config, stateDir, queue, tokens, inbound, delivery, router, log, opts.pruneSchedule ?? { firstMs: 5_000, everyMs: 10 * 60_000 });
    ref.service = service;
    delivery.events.on('attempt', (e) => service.events.emit('attempt', e));
    delivery.events.on('settled', (e) => service.events.emit('settled', e));
    tokens.events.on('refresh', (e) => service.events.emit('refresh', e));
    await inbound.start();
    delivery.start();
    service.schedulePrune(service.pruneSchedule.firstMs);
    await writeFileAtomic(join(stateDir, 'relay.json'), `${JSON.stringify({ pid: process.pid, smtp: inbound.bound }, null, 2)}\n`, 0o644);
    return service;
  }

  get smtpPort(): number {
    return this.inbound.bound[0]!.port;
  }

  /** Stop accepting, finish in-flight deliveries, close the queue. */
  async stop(): Promise<void> {
    this.stopPruning.abort();
    clearTimeout(this.pruneTimer);
    await this.inbound.stop();
    await this.delivery.stop();
    this.tokens.stopBackgroundRefresh();
    await this.pruning;
    await this.queue.close();
    this.log.info('relay stopped');
  }
}
