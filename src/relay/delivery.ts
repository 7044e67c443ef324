/**
 * Delivery: workers lease due queue entries, route each recipient, deliver through the route's
 * transport and settle every recipient through the failure policy (./trouble.ts). Exchange's
 * per-mailbox limits are respected here: at most 3 connections (one transport pool per mailbox and
 * endpoint), 30 messages per minute (sliding window: a few deliveries wait for room, the rest are
 * deferred until there is some, so one account cannot hold every worker), 10,000 recipients per
 * day (hold the account).
 */
import { EventEmitter } from 'node:events';
import { hostname as osHostname } from 'node:os';
import { Readable } from 'node:stream';
import { Relay365Error, toRelay365Error } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { Config } from '../config/schema.js';
import type { Queue, QueueEntry, QueueRecipient, SettleOutcome } from '../queue/index.js';
import type { TokenProvider } from '../oauth/types.js';
import { createTransport, transportKey, type Envelope, type RouteSpec, type Transport } from '../transport/index.js';
import { backoffMs, decide, failureOf } from './trouble.js';
import type { RelayRoute, Router } from './routing.js';
import { buildDsn, readReturnedContent, wantsNotice, type DsnRecipient } from './dsn.js';
import { rewriteSender } from './rewrite.js';
import { createHandoff, giveCredits, takeCredits, type Handoff } from './handoff.js';

export interface DeliveryEvent {
  queueId: string;
  route: string;
  outcome: 'delivered' | 'deferred' | 'bounced' | 'partial';
  recipients: number;
  durationMs: number;
  reply: string;
  replyCode?: number;
}

class SlidingWindow {
  private readonly times = new Map<string, number[]>();
  constructor(public perMinute: number) {}

  /** Takes a place in `key`'s window, waiting for one if needed; rejects when `signal` aborts. */
  async acquire(key: string, signal?: AbortSignal): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      const now = Date.now();
      const list = this.recent(key, now);
      if (list.length < this.perMinute) {
        list.push(now);
        return;
      }
      await sleep(list[0]! + 60_000 - now + 5, signal);
    }
  }

  /** When a message with `ahead` others already waiting for `key` gets a place: 0 for now. */
  freeAt(key: string, ahead: number, now = Date.now()): number {
    const list = this.recent(key, now);
    const mustExpire = list.length + ahead - this.perMinute;
    if (mustExpire < 0) return 0;
    return (list[mustExpire] ?? now) + 60_000;
  }

  private recent(key: string, now: number): number[] {
    const list = (this.times.get(key) ?? []).filter((t) => t > now - 60_000);
    this.times.set(key, list);
    return list;
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      signal?.removeEventListener('abort', aborted);
      resolve();
    }
    function aborted(): void {
      clearTimeout(timer);
      reject(signal!.reason);
    }
    signal?.addEventListener('abort', aborted, { once: true });
  });
}

/**
 * Recipients handed to each account over the last 24 hours, so the relay pauses an account itself
 * before Exchange's 10,000-recipient limit turns into a 24-hour block (5.2.0 SubmissionQuota).
 * In memory: after a restart the count starts again from zero, and Exchange's own reply (held by
 * the failure policy) is the backstop.
 */
class DailyRecipientBudget {
  private readonly sent = new Map<string, Array<{ at: number; count: number }>>();
  constructor(public perDay: number) {}

  /**
   * When `count` more recipients fit for `key`: now (0) or the time enough of the window has passed.
   * More than a whole day's budget never fits: the answer is when a full day's budget is free.
   */
  fitsAt(key: string, count: number, now = Date.now()): number {
    const wanted = Math.min(count, this.perDay);
    const list = this.window(key, now);
    let used = list.reduce((n, e) => n + e.count, 0);
    if (used + wanted <= this.perDay) return 0;
    for (const e of list) {
      used -= e.count;
      if (used + wanted <= this.perDay) return e.at + DAY_MS;
    }
    return now + DAY_MS;
  }

  /** How many more recipients `key` may be sent now. */
  room(key: string, now = Date.now()): number {
    return Math.max(0, this.perDay - this.window(key, now).reduce((n, e) => n + e.count, 0));
  }

  record(key: string, count: number, now = Date.now()): void {
    if (count > 0) this.window(key, now).push({ at: now, count });
  }

  private window(key: string, now: number): Array<{ at: number; count: number }> {
    const list = (this.sent.get(key) ?? []).filter((e) => e.at > now - DAY_MS);
    this.sent.set(key, list);
    return list;
  }
}

const DAY_MS = 24 * 3600_000;
/** The attempt-history route name of a delay notice. */
const DELAY_NOTICE_ROUTE = 'delay-notice';

export class DeliveryEngine {
  readonly events = new EventEmitter();
  private timer?: NodeJS.Timeout;
  private readonly inflight = new Set<Promise<void>>();
  private readonly transports = new Map<string, Transport>();
  private readonly heldUntil = new Map<string, number>();
  /**
   * Accounts whose login the server refused (defer-account): their other messages wait instead of
   * each trying AUTH again (repeated failed logins get a mailbox throttled); the pause grows with
   * back-off and ends at the first success.
   */
  private readonly paused = new Map<string, { until: number; failures: number; reply: string }>();
  private readonly limiter: SlidingWindow;
  private readonly budget: DailyRecipientBudget;
  private readonly owner = `${osHostname()}:${process.pid}`;
  private stopping = false;

  constructor(
    private readonly deps: { queue: Queue; router: Router; tokens: TokenProvider; config: Config; log: Logger; hostname: string },
  ) {
    this.limiter = new SlidingWindow(deps.config.delivery.messages_per_minute_per_account);
    this.budget = new DailyRecipientBudget(deps.config.delivery.recipients_per_day_per_account);
    this.handoff = createHandoff(this.owner, deps.config.delivery.workers, deps.config.delivery.lease_seconds);
  }

  /** Free worker slots, shared with the inbound side (./handoff.ts). */
  readonly handoff: Handoff;

  /**
   * A message was accepted: one the inbound side handed off (stored leased to this engine, with
   * one of its slots) starts now; any other wakes the workers to claim it.
   */
  accepted(entry: QueueEntry): void {
    if (entry.leasedTo === this.owner) this.run(entry);
    else this.kick();
  }

  start(): void {
    this.stopping = false;
    if (this.stopWaits.signal.aborted) this.stopWaits = new AbortController();
    this.timer = setInterval(() => {
      // Deferred entries fall due with time alone: the poll looks even when nothing was kicked.
      this.mayHaveWork = true;
      void this.tick();
    }, this.deps.config.delivery.poll_interval_ms);
    void this.tick();
  }

  /** SIGHUP: retries, limits, bounces and routes' settings apply from the next attempt on. */
  reconfigure(config: Config): void {
    giveCredits(this.handoff, config.delivery.workers - this.deps.config.delivery.workers);
    Atomics.store(this.handoff.slots, 1, config.delivery.lease_seconds);
    this.deps.config = config;
    this.limiter.perMinute = config.delivery.messages_per_minute_per_account;
    this.budget.perDay = config.delivery.recipients_per_day_per_account;
  }

  /** Wake the workers now: new or released work is due. */
  kick(): void {
    this.mayHaveWork = true;
    this.kicks++;
    this.scheduleTick();
  }

  /** One pending tick at a time: a burst of kicks (a group commit accepts many) is one claim. */
  private tickScheduled = false;
  private scheduleTick(): void {
    if (this.tickScheduled || this.stopping) return;
    this.tickScheduled = true;
    setImmediate(() => {
      this.tickScheduled = false;
      void this.tick();
    });
  }

  /**
   * False once a claim came back short and nothing was kicked since: a worker that finishes then
   * does not query the queue again (a claim per finished delivery was the relay's largest cost).
   */
  private mayHaveWork = true;
  /** Counts kicks, so one that lands while a claim is running is not lost. */
  private kicks = 0;

  /**
   * Accounts were reloaded (SIGHUP): pooled connections, logged in with the old tokens, are closed,
   * and paused accounts get their next chance at once (an account added or signed in again since
   * should not wait out its back-off; one still refused is paused again by its next attempt).
   */
  async accountsReloaded(): Promise<void> {
    this.paused.clear();
    await this.resetTransports();
    this.kick();
  }

  /** Deliveries waiting for a place in an account's per-minute window. */
  private readonly waiting = new Map<string, number>();
  /** Aborts waits for a window on stop, so that a SIGTERM is not held up by a minute's pacing. */
  private stopWaits = new AbortController();

  private waitingFor(account: string): number {
    return this.waiting.get(account) ?? 0;
  }

  /**
   * When a delivery for `account` that gives its worker back rather than wait (see process()) is
   * tried again; 0 when it may wait for the account's window.
   */
  private pacedUntil(account: string): number {
    const waiting = this.waitingFor(account);
    return waiting >= this.deps.config.delivery.connections_per_account ? this.limiter.freeAt(account, waiting) : 0;
  }

  /** Waits for a place in `account`'s window, counted among the waiting. */
  private async paced(account: string): Promise<void> {
    this.waiting.set(account, this.waitingFor(account) + 1);
    try {
      await this.limiter.acquire(account, this.stopWaits.signal);
    } finally {
      const left = this.waitingFor(account) - 1;
      if (left > 0) this.waiting.set(account, left);
      else this.waiting.delete(account);
    }
  }

  /** Close pooled upstream connections (after an account change; the next delivery reconnects). */
  async resetTransports(): Promise<void> {
    const all = [...this.transports.values()];
    this.transports.clear();
    await Promise.all(all.map((t) => t.close()));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    this.stopWaits.abort(new Relay365Error('NETWORK', 'The relay is stopping; the message is tried again after the restart.', { temporary: true }));
    await Promise.allSettled([...this.inflight]);
    await Promise.all([...this.transports.values()].map((t) => t.close()));
    this.transports.clear();
  }

  private ticking = false;

  private async tick(): Promise<void> {
    if (this.stopping || this.ticking) return;
    this.ticking = true;
    const kicksBefore = this.kicks;
    let free = 0;
    try {
      if (!this.mayHaveWork) return;
      free = takeCredits(this.handoff, this.deps.config.delivery.workers);
      if (free <= 0) return;
      const entries = await this.deps.queue.claim({ owner: this.owner, limit: free, leaseMs: this.deps.config.delivery.lease_seconds * 1000 });
      if (entries.length < free && this.kicks === kicksBefore) this.mayHaveWork = false;
      free -= entries.length;
      for (const e of entries) this.run(e);
    } catch (err) {
      this.deps.log.error({ err }, 'queue claim failed');
    } finally {
      giveCredits(this.handoff, free);
      this.ticking = false;
      if (this.kicks !== kicksBefore) this.scheduleTick();
    }
  }

  /** Delivers one leased entry in a slot already taken; the slot is a credit again afterwards. */
  private run(entry: QueueEntry): void {
    const p = this.process(entry)
      .catch((err) => this.deps.log.error({ err, queueId: entry.id }, 'delivery crashed; entry will be retried'))
      .finally(() => {
        giveCredits(this.handoff, 1);
        this.inflight.delete(p);
        if (this.mayHaveWork) this.scheduleTick();
      });
    this.inflight.add(p);
  }

  private transportFor(spec: RouteSpec): Transport {
    const key = transportKey(spec);
    let t = this.transports.get(key);
    if (!t) {
      t = createTransport(spec, { tokens: this.deps.tokens, log: this.deps.log, heloName: this.deps.hostname });
      this.transports.set(key, t);
    }
    return t;
  }

  private async process(entry: QueueEntry): Promise<void> {
    const { queue, router, config, log } = this.deps;
    const pending = entry.recipients.filter((r) => r.state === 'pending' || r.state === 'deferred').map((r) => r.address);
    const groups = new Map<string, { route: RelayRoute; recipients: string[] }>();
    for (const rcpt of pending) {
      const route = await router.route({ sender: entry.sender, recipient: rcpt, user: entry.authUser, clientIp: entry.clientIp });
      const key = route.kind === 'transport' ? `${route.name}|${JSON.stringify(route.spec)}` : route.name;
      const g = groups.get(key) ?? { route, recipients: [] };
      g.recipients.push(rcpt);
      groups.set(key, g);
    }
    const outcome: SettleOutcome = { delivered: [], failed: [], deferred: [], attempts: [] };
    let holdUntil: number | undefined;
    const dsn: DsnRecipient[] = [];
    // NOTIFY/ORCPT by address, only for the (rare) message whose client gave any.
    const rcptDsn = entry.recipients.some((r) => r.notify || r.orcpt) ? new Map(entry.recipients.map((r) => [r.address, r])) : undefined;
    const failureNotice = (r: string, status: string, diagnostic: string) => {
      if (wantsNotice(rcptDsn?.get(r)?.notify, 'FAILURE')) dsn.push(noticeFor(rcptDsn, r, 'failed', status, diagnostic));
    };
    for (const { route, recipients } of groups.values()) {
      const started = Date.now();
      let reply = '';
      let replyCode: number | undefined;
      const fail = (rcpts: string[], text: string, permanent: boolean, status: string) => {
        for (const r of rcpts) {
          if (permanent) {
            outcome.failed.push({ recipient: r, reply: text });
            failureNotice(r, status, text);
          } else outcome.deferred.push({ recipient: r, reply: text });
        }
      };
      if (route.kind === 'reject') {
        reply = `550 5.7.1 ${route.message}`;
        fail(recipients, reply, true, '5.7.1');
      } else if (route.kind === 'none') {
        reply = `451 4.3.0 No route: ${route.reason}`;
        fail(recipients, reply, false, '4.3.0');
      } else {
        // Lower-case: Exchange's limits are per mailbox, however a route spells its account.
        const account = 'account' in route.spec ? route.spec.account.toLowerCase() : undefined;
        const quotaHeld = account ? this.heldUntil.get(account) : undefined;
        // More recipients than a whole day's budget never fit at once: such a message goes in parts,
        // as many recipients as there is room for now and the rest when the window allows (held
        // whole, it would wait for a day that never comes until it expired).
        const room = account && recipients.length > this.budget.perDay ? this.budget.room(account) : 0;
        const batch = room > 0 ? recipients.slice(0, room) : recipients;
        const budgetFreesAt = account ? this.budget.fitsAt(account, batch.length) : 0;
        const pause = account ? this.paused.get(account) : undefined;
        const held = quotaHeld && quotaHeld > Date.now() ? quotaHeld : budgetFreesAt || undefined;
        const pacedUntil = account ? this.pacedUntil(account) : 0;
        if (pause && pause.until > Date.now()) {
          reply = `451 4.7.0 Account ${account} is paused until ${new Date(pause.until).toISOString()} after the server refused its login: ${pause.reply}`;
          fail(recipients, reply, false, '4.7.0');
          holdUntil = Math.max(holdUntil ?? 0, pause.until);
        } else if (held) {
          const why = quotaHeld && quotaHeld > Date.now() ? 'Exchange reported the daily quota exceeded' : `${config.delivery.recipients_per_day_per_account} recipients in 24 hours reached`;
          reply = `452 4.2.0 Account ${account} is paused until ${new Date(held).toISOString()} (${why})`;
          fail(recipients, reply, false, '4.2.0');
          holdUntil = Math.max(holdUntil ?? 0, held);
        } else if (pacedUntil) {
          // Only a few deliveries wait for an account's per-minute window; the rest give their
          // worker back and come again when it has room, so one busy account (a scanner's burst)
          // does not hold every worker while other routes' mail waits.
          reply = `452 4.2.0 Account ${account} sends at most ${config.delivery.messages_per_minute_per_account} messages a minute; next try at ${new Date(pacedUntil).toISOString()}`;
          fail(recipients, reply, false, '4.2.0');
          holdUntil = Math.max(holdUntil ?? 0, pacedUntil);
        } else {
          try {
            if (account) await this.paced(account);
            const transport = this.transportFor(route.spec);
            // The router decides (rewrite_sender; a bounce goes out as the account's mailbox).
            const rewriteTo = route.rewriteTo;
            const source = () => (rewriteTo ? rewriteSender(queue.openBody(entry.id), rewriteTo) : queue.openBody(entry.id));
            const sender = rewriteTo ?? entry.sender;
            const dsnParams = nextHopDsn(entry, batch, rcptDsn);
            const result = await transport.deliver({ from: sender, to: batch, ...(dsnParams ? { dsn: dsnParams } : {}) }, source);
            outcome.delivered.push(...result.accepted);
            // Graph returns no DSNs: a SUCCESS request ends here, with a "relayed" one (RFC 3461 §6.2.4).
            if (rcptDsn && route.spec.type === 'graph') {
              for (const r of result.accepted) if (wantsNotice(rcptDsn.get(r)?.notify, 'SUCCESS')) dsn.push(noticeFor(rcptDsn, r, 'relayed', '2.0.0', result.response));
            }
            if (account) {
              this.budget.record(account, result.accepted.length);
              if (this.paused.delete(account)) await this.deps.tokens.noteServerAccepted?.(account).catch((err) => log.error({ err, account }, 'could not clear the account flag'));
            }
            reply = result.response;
            replyCode = Number(result.response.slice(0, 3)) || undefined;
            for (const r of result.rejected) {
              const d = decide({ reply: r.reply, temporary: r.temporary });
              const text = `${r.reply.code} ${r.reply.enhanced ?? ''} ${r.reply.text}`.replace(/\s+/g, ' ');
              fail([r.recipient], text, d.action === 'bounce', r.reply.enhanced ?? (r.temporary ? '4.0.0' : '5.0.0'));
            }
          } catch (e) {
            const err = e instanceof Relay365Error ? e : toRelay365Error(e);
            const d = decide(failureOf(err));
            reply = err.smtp ? `${err.smtp.code} ${err.smtp.enhanced ?? ''} ${err.smtp.text}`.replace(/\s+/g, ' ') : err.message;
            replyCode = err.smtp?.code;
            if (d.action === 'hold-account' && account) {
              holdUntil = Date.now() + 24 * 3600_000;
              this.heldUntil.set(account, holdUntil);
            }
            if (d.action === 'defer-account' && account) {
              const failures = (this.paused.get(account)?.failures ?? 0) + 1;
              const until = Date.now() + backoffMs(failures - 1, config.delivery.retry_initial_seconds, config.delivery.retry_max_seconds);
              this.paused.set(account, { until, failures, reply });
              holdUntil = Math.max(holdUntil ?? 0, until);
              // Token failures are already on the account (the token manager records them).
              if (!/^(OAUTH_|ACCOUNT_)/.test(err.code)) await this.deps.tokens.noteServerRefusal?.(account, { code: err.code, message: reply, hint: err.hint }).catch((e2) => log.error({ err: e2, account }, 'could not flag the account'));
            }
            fail(batch, reply, d.action === 'bounce', err.smtp?.enhanced ?? (d.action === 'bounce' ? '5.0.0' : '4.0.0'));
            log.warn({ queueId: entry.id, route: route.name, action: d.action, rule: d.rule, code: err.code, reply }, d.explain);
          }
          if (batch.length < recipients.length) {
            const rest = recipients.slice(batch.length);
            const freesAt = this.budget.fitsAt(account!, rest.length);
            fail(rest, `452 4.2.0 Account ${account} has room for ${config.delivery.recipients_per_day_per_account} recipients in 24 hours and this message has ${recipients.length}: it goes in parts, these from ${new Date(freesAt).toISOString()}`, false, '4.2.0');
            holdUntil = Math.max(holdUntil ?? 0, freesAt);
          }
        }
      }
      const durationMs = Date.now() - started;
      const delivered = recipients.filter((r) => outcome.delivered.includes(r));
      const groupOutcome = delivered.length === recipients.length ? 'delivered' : delivered.length ? 'partial' : outcome.failed.some((f) => recipients.includes(f.recipient)) ? 'failed' : 'deferred';
      outcome.attempts!.push({ at: new Date(started).toISOString(), route: route.name, recipients, reply, durationMs, outcome: groupOutcome });
      // One line per attempt: never bodies or tokens.
      log.info({ queueId: entry.id, sender: entry.sender, recipients, route: route.name, reply, durationMs, outcome: groupOutcome }, 'delivery attempt');
      this.events.emit('attempt', { queueId: entry.id, route: route.name, outcome: groupOutcome === 'failed' ? 'bounced' : groupOutcome, recipients: recipients.length, durationMs, reply, replyCode } satisfies DeliveryEvent);
    }
    const now = Date.now();
    if (outcome.deferred.length && now > Date.parse(entry.expiresAt)) {
      for (const d of outcome.deferred.splice(0)) {
        const text = `Message expired after ${Math.round((now - Date.parse(entry.createdAt)) / 3600_000)} h in the queue; last error: ${d.reply}`;
        outcome.failed.push({ recipient: d.recipient, reply: text });
        failureNotice(d.recipient, '4.4.7', text);
      }
    }
    outcome.nextAttemptAt = new Date(holdUntil ?? now + backoffMs(entry.attempts, config.delivery.retry_initial_seconds, config.delivery.retry_max_seconds));
    if (outcome.deferred.length && entry.sender && config.delivery.delay_notice_after_seconds > 0 && now - Date.parse(entry.createdAt) >= config.delivery.delay_notice_after_seconds * 1000) {
      await this.delayNotice(entry, outcome, rcptDsn).catch((err) => log.error({ err, queueId: entry.id }, 'could not queue a delay notice'));
    }
    // The DSN is queued before settling (settling a finished entry removes its body).
    if (dsn.length && entry.sender && config.delivery.bounces) await this.bounce(entry, dsn).catch((err) => log.error({ err, queueId: entry.id }, 'could not queue a bounce'));
    const settled = await queue.settle(entry.id, outcome);
    this.events.emit('settled', settled);
  }

  /**
   * One "delayed" DSN per message. The notice is recorded in the entry's attempt history, which is
   * what makes it once-only across retries and restarts (and shows it on the admin page).
   */
  private async delayNotice(entry: QueueEntry, outcome: SettleOutcome, rcptDsn: Map<string, QueueRecipient> | undefined): Promise<void> {
    // Only recipients whose NOTIFY asked for DELAY, or who gave none (RFC 3461 §4.1).
    const deferred = rcptDsn ? outcome.deferred.filter((d) => wantsNotice(rcptDsn.get(d.recipient)?.notify, 'DELAY')) : outcome.deferred;
    if (!deferred.length) return;
    const history = (await this.deps.queue.get(entry.id))?.history ?? [];
    if (history.some((a) => a.route === DELAY_NOTICE_ROUTE)) return;
    await this.bounce(
      entry,
      deferred.map((d) => noticeFor(rcptDsn, d.recipient, 'delayed', /\b(4\.\d{1,3}\.\d{1,3})\b/.exec(d.reply)?.[1] ?? '4.0.0', d.reply)),
    );
    outcome.attempts!.push({ at: new Date().toISOString(), route: DELAY_NOTICE_ROUTE, recipients: deferred.map((d) => d.recipient), reply: `delay notice sent to ${entry.sender}`, durationMs: 0, outcome: 'deferred' });
  }

  /**
   * Queue a DSN to the envelope sender; a bounce (null sender) is never bounced: callers check the
   * sender, so a DSN whose own delivery fails is dropped. RET=FULL returns the message (up to a
   * size, see ./dsn.ts) with failure notices only: delay and relayed notices carry the headers
   * (RFC 3461 §4.3), as does a message without RET (the relay's choice).
   */
  private async bounce(entry: QueueEntry, recipients: DsnRecipient[]): Promise<void> {
    const full = entry.dsn?.ret === 'FULL' && recipients.some((r) => r.action === 'failed');
    const returned = await readReturnedContent(this.deps.queue.openBody(entry.id), full);
    const message = buildDsn({ reportingMta: this.deps.hostname, originalSender: entry.sender, queueId: entry.id, arrivalDate: new Date(entry.createdAt), envid: entry.dsn?.envid, recipients, returned });
    await this.deps.queue.enqueue({ sender: '', recipients: [entry.sender], lifetimeMs: this.deps.config.delivery.max_lifetime_seconds * 1000 }, Readable.from([message]));
    this.kick();
  }
}

/** A recipient's line in a DSN, with the original recipient (ORCPT) its client gave, if any. */
function noticeFor(rcptDsn: Map<string, QueueRecipient> | undefined, recipient: string, action: DsnRecipient['action'], status: string, diagnostic: string): DsnRecipient {
  const orcpt = rcptDsn?.get(recipient)?.orcpt;
  return { recipient, action, status, diagnostic, ...(orcpt ? { originalRecipient: orcpt } : {}) };
}

/**
 * The RFC 3461 parameters that travel to the next hop with `recipients`, so that it reports (or
 * stays silent) as the client asked; undefined for the usual message that has none. Graph ignores them.
 */
function nextHopDsn(entry: QueueEntry, recipients: string[], rcptDsn: Map<string, QueueRecipient> | undefined): Envelope['dsn'] {
  if (!entry.dsn && !rcptDsn) return undefined;
  const out: NonNullable<Envelope['dsn']> = { ...entry.dsn };
  for (const r of recipients) {
    const info = rcptDsn?.get(r);
    if (info?.notify) (out.notify ??= new Map()).set(r, info.notify);
    if (info?.orcpt) (out.orcpt ??= new Map()).set(r, info.orcpt);
  }
  return out;
}
