import type { Command } from 'commander';
import { QueueError, UsageError } from '../../core/errors.js';
import { openQueue, pruneFinishedBefore, type Queue, type QueueState } from '../../queue/index.js';
import type { CliContext } from '../context.js';

const QUEUE_STATES: QueueState[] = ['incoming', 'active', 'deferred', 'hold', 'done', 'bounced'];
/** What `delete --all --in` may empty: queued mail. Finished entries are prune's. */
const DELETABLE_ALL: QueueState[] = ['incoming', 'deferred', 'hold'];
/** Entries per list() page when a command acts on every entry in a state. */
const BULK_PAGE = 500;

interface TargetOptions {
  all?: boolean;
  json?: boolean;
}

/** Whether the command acts on every entry (--all) or on the one id given; exactly one of them. */
function targetsAll(command: string, id: string | undefined, opts: TargetOptions): boolean {
  if (id !== undefined && opts.all) throw new UsageError(`relay365 queue ${command} takes an id or --all, not both`);
  if (id === undefined && !opts.all) throw new UsageError(`relay365 queue ${command} needs an id or --all`);
  return opts.all === true;
}

/** Why an action on `id` changed nothing: no such entry, or one in a state the action does not apply to. */
async function refuse(q: Queue, id: string, rule: string): Promise<never> {
  const entry = await q.get(id);
  if (!entry) throw notFound(id);
  throw new QueueError('QUEUE_NOT_FOUND', `Queue entry ${id} is ${entry.state}: ${rule}.`, { details: { id, state: entry.state } });
}

function notFound(id: string): QueueError {
  return new QueueError('QUEUE_NOT_FOUND', `No queue entry ${id}.`, { hint: 'List entries with `relay365 queue list`.', details: { id } });
}

/**
 * Calls `act` on every entry in `state`; returns how many it changed. `act` moves an entry out of
 * `state` (or finds a relay already did), so each page is read from the top again; a short page, or
 * one that changed nothing, is the last.
 */
async function forEachInState(q: Queue, state: QueueState, act: (id: string) => Promise<boolean>): Promise<number> {
  let changed = 0;
  for (;;) {
    const page = await q.list({ state, limit: BULK_PAGE });
    let changedInPage = 0;
    for (const entry of page) if (await act(entry.id)) changedInPage++;
    changed += changedInPage;
    if (page.length < BULK_PAGE || changedInPage === 0) return changed;
  }
}

/**
 * Deletes an entry unless a relay is delivering it. A queued entry is put on hold first, which
 * fails once a relay has claimed it and keeps relays from claiming it after: the message is never
 * deleted from under a delivery in progress.
 */
async function deleteUnlessDelivering(q: Queue, id: string): Promise<boolean> {
  const entry = await q.get(id);
  if (!entry || entry.state === 'active') return false;
  if ((entry.state === 'incoming' || entry.state === 'deferred') && !(await q.hold(id))) return false;
  return q.delete(id);
}

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
  /** `{ "held": 3 }` with --json, else `hold: 3 entries put on hold`. */
  const report = (opts: { json?: boolean }, key: string, count: number, command: string, outcome: string): void => {
    if (opts.json) ctx.printJson({ [key]: count });
    else ctx.print(`${command}: ${count} entr${count === 1 ? 'y' : 'ies'} ${outcome}`);
  };
  const queue = program.command('queue').description('Inspect and manage the relay queue');
  queue
    .command('list')
    .description('List queue entries (newest first)')
    .option('--in <state>', `only entries in this state: ${QUEUE_STATES.join('|')}`)
    .option('--search <text>', 'match id, sender, recipient or Message-ID')
    .option('--limit <n>', 'maximum entries', '100')
    .option('--json', 'JSON output: {"counts": {<state>: <count>}, "entries": [...]}')
    .action((opts: { in?: QueueState; search?: string; limit: string; json?: boolean }) => {
      // A mistyped state or limit would otherwise list nothing, as if the queue were empty.
      if (opts.in !== undefined && !QUEUE_STATES.includes(opts.in)) throw new UsageError(`--in must be one of ${QUEUE_STATES.join('|')}: ${opts.in}`);
      if (!/^[1-9]\d*$/.test(opts.limit)) throw new UsageError(`--limit must be a whole number above 0: ${opts.limit}`);
      return withQueue(async (q) => {
        const list = await q.list({ state: opts.in, search: opts.search, limit: Number(opts.limit) });
        if (opts.json) return ctx.printJson({ counts: await q.counts(), entries: list });
        const c = await q.counts();
        ctx.print(Object.entries(c).map(([k, v]) => `${k} ${v}`).join('  '));
        for (const e of list) ctx.print(`${e.id}  ${e.state.padEnd(8)} ${String(e.size).padStart(8)}  ${e.createdAt}  <${e.sender}> → ${e.recipients.map((r) => r.address).join(', ')}${e.lastError ? `\n    ${e.lastError}` : ''}`);
      });
    });
  queue
    .command('show')
    .argument('<id>')
    .description('Show an entry with every delivery attempt')
    .option('--json', 'JSON output')
    .action((id: string, opts: { json?: boolean }) =>
      withQueue(async (q) => {
        const e = await q.get(id);
        if (!e) throw notFound(id);
        if (opts.json) return ctx.printJson(e);
        // A finished entry's nextAttemptAt is when it finished (pruning counts from there).
        const when = e.state === 'done' || e.state === 'bounced' ? `finished ${e.nextAttemptAt}` : e.state === 'hold' ? 'on hold' : `next ${e.nextAttemptAt}`;
        ctx.print(`${e.id} ${e.state} <${e.sender}> ${e.size} bytes, ${e.attempts} attempt(s), ${when}`);
        for (const r of e.recipients) ctx.print(`  ${r.address} ${r.state}${r.lastReply ? `: ${r.lastReply}` : ''}`);
        for (const a of e.history ?? []) ctx.print(`  ${a.at} via ${a.route} (${a.durationMs} ms) ${a.outcome}: ${a.reply}`);
      }),
    );
  queue
    .command('retry')
    .argument('[id]')
    .summary('Make deferred (or held) entries due now')
    .description(
      [
        'Make deferred (or held) entries due now',
        '',
        'retry ID: that deferred or held entry (like postqueue -i ID).',
        'retry --all: every deferred entry (like postqueue -f); held ones stay held, see release --all.',
      ].join('\n'),
    )
    .option('--all', 'every deferred entry')
    .option('--json', 'JSON output: {"retried": <count>}')
    .action((id: string | undefined, opts: TargetOptions) =>
      withQueue(async (q) => {
        const all = targetsAll('retry', id, opts);
        const retried = all ? await q.retry('all') : (await q.retry(id!)) || (await refuse(q, id!, 'only deferred or held entries can be retried'));
        report(opts, 'retried', retried, 'retry', 'due now');
      }),
    );
  queue
    .command('hold')
    .argument('[id]')
    .summary('Put entries on hold: no delivery until released')
    .description(
      [
        'Put entries on hold: no delivery until released',
        '',
        'hold ID: that incoming or deferred entry (like postsuper -h ID).',
        'hold --all: every incoming and deferred entry (like postsuper -h ALL); an entry being delivered this moment finishes its attempt first.',
      ].join('\n'),
    )
    .option('--all', 'every incoming and deferred entry')
    .option('--json', 'JSON output: {"held": <count>}')
    .action((id: string | undefined, opts: TargetOptions) =>
      withQueue(async (q) => {
        const all = targetsAll('hold', id, opts);
        const held = all
          ? (await forEachInState(q, 'incoming', (e) => q.hold(e))) + (await forEachInState(q, 'deferred', (e) => q.hold(e)))
          : Number(await q.hold(id!)) || (await refuse(q, id!, 'only incoming or deferred entries can be put on hold'));
        report(opts, 'held', held, 'hold', 'put on hold');
      }),
    );
  queue
    .command('release')
    .argument('[id]')
    .summary('Release held entries: deferred, due now')
    .description(
      [
        'Release held entries: deferred, due now',
        '',
        'release ID: that held entry (like postsuper -H ID).',
        'release --all: every held entry (like postsuper -H ALL).',
      ].join('\n'),
    )
    .option('--all', 'every held entry')
    .option('--json', 'JSON output: {"released": <count>}')
    .action((id: string | undefined, opts: TargetOptions) =>
      withQueue(async (q) => {
        const all = targetsAll('release', id, opts);
        const released = all ? await forEachInState(q, 'hold', (e) => q.release(e)) : Number(await q.release(id!)) || (await refuse(q, id!, 'only held entries can be released'));
        report(opts, 'released', released, 'release', 'released, due now');
      }),
    );
  queue
    .command('delete')
    .argument('[id]')
    .summary('Delete entries and their messages')
    .description(
      [
        'Delete entries and their messages',
        '',
        'delete ID: that entry, unless it is being delivered this moment (like postsuper -d ID).',
        'delete --all --in STATE: every entry in STATE, incoming, deferred or hold (like postsuper -d ALL deferred); --in is required, as deleted mail cannot be brought back.',
        'Finished (done, bounced) entries go with `relay365 queue prune`.',
      ].join('\n'),
    )
    .option('--all', 'every entry in the state given by --in')
    // Not --state: commander gives that to the global --state <dir> wherever it stands.
    .option('--in <state>', `with --all: ${DELETABLE_ALL.join('|')}`)
    .option('--json', 'JSON output: {"deleted": <count>}')
    .action((id: string | undefined, opts: TargetOptions & { in?: string }) =>
      withQueue(async (q) => {
        const all = targetsAll('delete', id, opts);
        if (!all && opts.in !== undefined) throw new UsageError(`--in goes with --all: relay365 queue delete --all --in ${DELETABLE_ALL.join('|')}`);
        if (all && !DELETABLE_ALL.includes(opts.in as QueueState)) {
          throw new UsageError(`relay365 queue delete --all needs --in ${DELETABLE_ALL.join('|')} to say which entries to delete${opts.in === undefined ? '' : ` (not ${opts.in})`}; finished entries go with relay365 queue prune`);
        }
        const deleted = all
          ? await forEachInState(q, opts.in as QueueState, (e) => deleteUnlessDelivering(q, e))
          : Number(await deleteUnlessDelivering(q, id!)) || (await refuse(q, id!, 'it is being delivered right now; try again once this attempt ends'));
        report(opts, 'deleted', deleted, 'delete', 'deleted');
      }),
    );
  queue
    .command('flush')
    .description('Make every deferred entry due now (like postqueue -f; same as retry --all)')
    .option('--json', 'JSON output: {"retried": <count>}')
    .action((opts: { json?: boolean }) => withQueue(async (q) => report(opts, 'retried', await q.retry('all'), 'flush', 'due now')));
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
