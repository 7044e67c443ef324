import type { Command } from 'commander';
import { Relay365Error, QueueError, UsageError } from '../../core/errors.js';
import { openQueue, pruneFinishedBefore, type Queue, type QueueState } from '../../queue/index.js';
import type { CliContext } from '../context.js';

/**
 * `relay365 queue …` — like postqueue/postsuper, on the relay's queue; safe while relays run (SQLite
 * WAL, or row locks on the shared PostgreSQL queue).
 */
export function register(program: Command, ctx: CliContext): void {
  const open = (): Promise<Queue> => {
    const c = ctx.cfg;
    return openQueue({ backend: c.queue.backend, dir: c.queue.dir, postgres_url: c.queue.postgres_url, max_message_size: c.relay.max_message_size, max_lifetime_seconds: c.delivery.max_lifetime_seconds }, { stateDir: ctx.stateDir() });
  };
  const withQueue = async <T>(fn: (q: Queue) => Promise<T>): Promise<T> => {
    const q = await open();
    try {
      return await fn(q);
    } finally {
      await q.close();
    }
  };
  const queue = program.command('queue').description('Inspect and manage the relay queue');
  queue
    .command('list')
    .description('List queue entries (newest first)')
    .option('--state <state>', 'incoming|active|deferred|hold|done|bounced')
    .option('--search <text>', 'match id, sender, recipient or Message-ID')
    .option('--limit <n>', 'maximum entries', '100')
    .option('--json', 'JSON output')
    .action((opts: { state?: QueueState; search?: string; limit: string; json?: boolean }) =>
      withQueue(async (q) => {
        const list = await q.list({ state: opts.state, search: opts.search, limit: Number(opts.limit) });
        if (opts.json) return ctx.printJson({ counts: await q.counts(), entries: list });
        const c = await q.counts();
        ctx.print(Object.entries(c).map(([k, v]) => `${k} ${v}`).join('  '));
        for (const e of list) ctx.print(`${e.id}  ${e.state.padEnd(8)} ${String(e.size).padStart(8)}  ${e.createdAt}  <${e.sender}> → ${e.recipients.map((r) => r.address).join(', ')}${e.lastError ? `\n    ${e.lastError}` : ''}`);
      }),
    );
  queue
    .command('show')
    .argument('<id>')
    .description('Show an entry with every delivery attempt')
    .option('--json', 'JSON output')
    .action((id: string, opts: { json?: boolean }) =>
      withQueue(async (q) => {
        const e = await q.get(id);
        if (!e) throw new QueueError('QUEUE_NOT_FOUND', `No queue entry ${id}.`);
        if (opts.json) return ctx.printJson(e);
        // A finished entry's nextAttemptAt is when it finished (pruning counts from there).
        const when = e.state === 'done' || e.state === 'bounced' ? `finished ${e.nextAttemptAt}` : e.state === 'hold' ? 'on hold' : `next ${e.nextAttemptAt}`;
        ctx.print(`${e.id} ${e.state} <${e.sender}> ${e.size} bytes, ${e.attempts} attempt(s), ${when}`);
        for (const r of e.recipients) ctx.print(`  ${r.address} ${r.state}${r.lastReply ? `: ${r.lastReply}` : ''}`);
        for (const a of e.history ?? []) ctx.print(`  ${a.at} via ${a.route} (${a.durationMs} ms) ${a.outcome}: ${a.reply}`);
      }),
    );
  const action = (name: string, description: string, fn: (q: Queue, id: string) => Promise<boolean | number>) =>
    queue
      .command(name)
      .argument('[id]')
      .option('--all', 'every deferred entry (retry only)')
      .option('--json', 'JSON output')
      .description(description)
      .action((id: string | undefined, opts: { all?: boolean; json?: boolean }) =>
        withQueue(async (q) => {
          if (!id && !(opts.all && name === 'retry')) throw new UsageError(`relay365 queue ${name} needs an id${name === 'retry' ? ' or --all' : ''}`);
          const n = Number(await fn(q, opts.all ? 'all' : id!));
          if (n === 0 && id) throw new Relay365Error('QUEUE_NOT_FOUND', `No queue entry ${id} in a state that allows ${name}.`);
          if (opts.json) ctx.printJson({ [name]: n });
          else ctx.print(`${name}: ${n} entr${n === 1 ? 'y' : 'ies'}`);
        }),
      );
  action('retry', 'Make deferred (or held) entries due now', (q, id) => q.retry(id));
  action('hold', 'Put an entry on hold', (q, id) => q.hold(id));
  action('release', 'Release a held entry', (q, id) => q.release(id));
  action('delete', 'Delete an entry', (q, id) => q.delete(id));
  queue
    .command('flush')
    .description('Retry every deferred entry now (like postqueue -f)')
    .action(() => withQueue(async (q) => ctx.print(`flush: ${await q.retry('all')} entries due now`)));
  queue
    .command('prune')
    .description('Remove done and bounced entries that finished more than queue.keep_finished_days ago (the relay does so every 10 minutes)')
    .option('--older-than-days <n>', 'age in days instead of queue.keep_finished_days (0: every finished entry)')
    .option('--json', 'JSON output')
    .action((opts: { olderThanDays?: string; json?: boolean }) => {
      if (opts.olderThanDays !== undefined && !/^\d+(\.\d+)?$/.test(opts.olderThanDays)) throw new UsageError(`--older-than-days must be a number of days (0 or more): ${opts.olderThanDays}`);
      const days = opts.olderThanDays === undefined ? ctx.cfg.queue.keep_finished_days : Number(opts.olderThanDays);
      return withQueue(async (q) => {
        const removed = await pruneFinishedBefore(q, new Date(Date.now() - days * 86_400_000));
        if (opts.json) return ctx.printJson({ removed });
        ctx.print(`prune: ${removed} finished entr${removed === 1 ? 'y' : 'ies'} removed`);
      });
    });
}
