/**
 * `relay365 queue …` on a real state directory: the CLI in a child process, the queue filled
 * beforehand and read back afterwards through the SqliteQueue the relay uses.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { runCli, tempDir } from '../helpers/cli.js';
import { SqliteQueue, type QueueEntry, type QueueState } from '../../src/queue/index.js';

/** A state directory whose queue holds `finished` delivered entries and one still incoming. */
async function stateWithQueue(finished: number): Promise<{ state: string; incoming: string }> {
  const state = tempDir();
  const q = new SqliteQueue({ dir: join(state, 'queue') });
  try {
    const enqueue = (n: number) => q.enqueue({ sender: 'alice@contoso.test', recipients: ['bob@fabrikam.test'] }, Readable.from([Buffer.from(`Subject: ${n}\r\n\r\nx\r\n`)]));
    for (let i = 0; i < finished; i++) await q.settle((await enqueue(i)).id, { delivered: ['bob@fabrikam.test'], failed: [], deferred: [] });
    return { state, incoming: (await enqueue(finished)).id };
  } finally {
    await q.close();
  }
}

test('queue prune --json removes finished entries older than --older-than-days, or than queue.keep_finished_days', async () => {
  const { state, incoming } = await stateWithQueue(3);
  const kept = await runCli(['--state', state, 'queue', 'prune', '--json']);
  assert.equal(kept.code, 0, kept.stderr);
  assert.deepEqual(JSON.parse(kept.stdout), { removed: 0 }, 'finished just now: within the default 7 days');

  const pruned = await runCli(['--state', state, 'queue', 'prune', '--older-than-days', '0', '--json']);
  assert.equal(pruned.code, 0, pruned.stderr);
  assert.deepEqual(JSON.parse(pruned.stdout), { removed: 3 });
  const list = await runCli(['--state', state, 'queue', 'list', '--json']);
  assert.deepEqual(JSON.parse(list.stdout).entries.map((e: { id: string }) => e.id), [incoming], 'what is queued stays');

  const { state: state2 } = await stateWithQueue(2);
  const config = join(state2, 'relay365.yaml');
  writeFileSync(config, 'queue:\n  keep_finished_days: 0\n');
  const byConfig = await runCli(['--state', state2, '--config', config, 'queue', 'prune']);
  assert.equal(byConfig.code, 0, byConfig.stderr);
  assert.equal(byConfig.stdout, 'prune: 2 finished entries removed\n');
});

test('queue prune --older-than-days takes only a number of days, 0 or more (exit 2)', async () => {
  const { state } = await stateWithQueue(1);
  for (const days of ['-1', 'week', '']) {
    const r = await runCli(['--state', state, 'queue', 'prune', '--older-than-days', days]);
    assert.equal(r.code, 2, `${days}: ${r.stderr}`);
    assert.match(r.stderr, /--older-than-days must be a number of days \(0 or more\)/);
  }
  assert.deepEqual(JSON.parse((await runCli(['--state', state, 'queue', 'prune', '--older-than-days', '0', '--json'])).stdout), { removed: 1 }, 'the refused calls removed nothing');
});

test('queue show: a finished entry says when it finished, a queued one when it is next tried, with recipients and attempts', async () => {
  const state = tempDir();
  const q = new SqliteQueue({ dir: join(state, 'queue') });
  let done: string, incoming: string;
  try {
    const enqueue = () => q.enqueue({ sender: 'alice@contoso.test', recipients: ['bob@fabrikam.test'] }, Readable.from([Buffer.from('Subject: s\r\n\r\nx\r\n')]));
    done = (await enqueue()).id;
    await q.settle(done, { delivered: ['bob@fabrikam.test'], failed: [], deferred: [], attempts: [{ at: new Date().toISOString(), route: 'alice', recipients: ['bob@fabrikam.test'], reply: '250 2.0.0 OK', durationMs: 12, outcome: 'delivered' }] });
    incoming = (await enqueue()).id;
  } finally {
    await q.close();
  }
  const shown = await runCli(['--state', state, 'queue', 'show', done]);
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, new RegExp(`^${done} done <alice@contoso\\.test> \\d+ bytes, 1 attempt\\(s\\), finished \\d{4}-`));
  assert.match(shown.stdout, /^ {2}bob@fabrikam\.test delivered$/m);
  assert.match(shown.stdout, /via alice \(12 ms\) delivered: 250 2\.0\.0 OK$/m);
  assert.match((await runCli(['--state', state, 'queue', 'show', incoming])).stdout, new RegExp(`^${incoming} incoming .*, next \\d{4}-`));
  const missing = await runCli(['--state', state, 'queue', 'show', 'NOSUCHID']);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /No queue entry NOSUCHID/);
});

type Seeded = Exclude<QueueState, 'bounced'>;

/**
 * A state directory whose queue holds one entry per state listed (in that order, so the last is
 * the newest): `deferred` is due in an hour, `active` leased to a relay for an hour.
 */
async function stateWithEntries(states: Seeded[]): Promise<{ state: string; ids: string[] }> {
  const state = tempDir();
  const q = new SqliteQueue({ dir: join(state, 'queue') });
  const ids: string[] = [];
  try {
    for (const [n, s] of states.entries()) {
      const body = Readable.from([Buffer.from(`Subject: ${s} ${n}\r\n\r\nx\r\n`)]);
      const meta = { sender: 'alice@contoso.test', recipients: [`bob${n}@fabrikam.test`], ...(s === 'active' ? { leaseTo: { owner: 'relay-1', leaseMs: 3_600_000 } } : {}) };
      const { id } = await q.enqueue(meta, body);
      if (s === 'deferred') await q.settle(id, { delivered: [], failed: [], deferred: [{ recipient: `bob${n}@fabrikam.test`, reply: '451 4.3.0 Try later' }], nextAttemptAt: new Date(Date.now() + 3_600_000) });
      if (s === 'done') await q.settle(id, { delivered: [`bob${n}@fabrikam.test`], failed: [], deferred: [] });
      if (s === 'hold') assert.ok(await q.hold(id));
      ids.push(id);
    }
  } finally {
    await q.close();
  }
  return { state, ids };
}

/** The entries as the queue has them now (undefined: deleted). */
async function readBack(state: string, ids: string[]): Promise<Array<QueueEntry | undefined>> {
  const q = new SqliteQueue({ dir: join(state, 'queue') });
  try {
    return await Promise.all(ids.map((id) => q.get(id)));
  } finally {
    await q.close();
  }
}

const statesOf = async (state: string, ids: string[]) => (await readBack(state, ids)).map((e) => e?.state ?? 'gone');
const isDueNow = (e: QueueEntry | undefined) => e !== undefined && Date.parse(e.nextAttemptAt) <= Date.now();

/** The error main() writes to stderr for a command run with --json. */
function jsonError(stderr: string): { error: string; message: string; details?: Record<string, unknown> } {
  return JSON.parse(stderr);
}

test('queue list shows counts and entries, newest first; --json as {counts, entries}; --limit takes a whole number above 0; --in filters by state', async () => {
  const { state, ids } = await stateWithEntries(['incoming', 'deferred', 'hold']);
  const [incoming, deferred, held] = ids;
  const human = await runCli(['--state', state, 'queue', 'list']);
  assert.equal(human.code, 0, human.stderr);
  const lines = human.stdout.trimEnd().split('\n');
  assert.equal(lines[0], 'incoming 1  active 0  deferred 1  hold 1  done 0  bounced 0');
  assert.match(human.stdout, new RegExp(`^${held} {2}hold .* <alice@contoso\\.test> → bob2@fabrikam\\.test$`, 'm'));
  assert.match(human.stdout, new RegExp(`^${deferred} {2}deferred .*\\n {4}451 4\\.3\\.0 Try later$`, 'm'), 'the last error under its entry');

  const json = await runCli(['--state', state, 'queue', 'list', '--json']);
  assert.equal(json.code, 0, json.stderr);
  const listed = JSON.parse(json.stdout) as { counts: Record<string, number>; entries: QueueEntry[] };
  assert.deepEqual(listed.counts, { incoming: 1, active: 0, deferred: 1, hold: 1, done: 0, bounced: 0 });
  assert.deepEqual(listed.entries.map((e) => [e.id, e.state]), [[held, 'hold'], [deferred, 'deferred'], [incoming, 'incoming']]);

  const newest = JSON.parse((await runCli(['--state', state, 'queue', 'list', '--limit', '1', '--json'])).stdout) as { entries: QueueEntry[] };
  assert.deepEqual(newest.entries.map((e) => e.id), [held]);
  const none = await runCli(['--state', state, 'queue', 'list', '--limit', '0']);
  assert.equal(none.code, 2, none.stderr);
  assert.match(none.stderr, /--limit must be a whole number above 0: 0/);

  const deferredOnly = JSON.parse((await runCli(['--state', state, 'queue', 'list', '--in', 'deferred', '--json'])).stdout) as { entries: QueueEntry[] };
  assert.deepEqual(deferredOnly.entries.map((e) => e.id), [deferred]);
  const typo = await runCli(['--state', state, 'queue', 'list', '--in', 'defered']);
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /--in must be one of incoming\|active\|deferred\|hold\|done\|bounced: defered/);
});

test('queue retry ID makes a deferred or held entry due now; an unknown id or one in another state exits 1 and says why', async () => {
  const { state, ids } = await stateWithEntries(['deferred', 'hold', 'done']);
  const [deferred, held, done] = ids;
  const human = await runCli(['--state', state, 'queue', 'retry', deferred]);
  assert.equal(human.code, 0, human.stderr);
  assert.equal(human.stdout, 'retry: 1 entry due now\n');
  const json = await runCli(['--state', state, 'queue', 'retry', held, '--json']);
  assert.equal(json.code, 0, json.stderr);
  assert.deepEqual(JSON.parse(json.stdout), { retried: 1 });
  const [afterDeferred, afterHeld] = await readBack(state, [deferred, held]);
  assert.equal(afterDeferred?.state, 'deferred');
  assert.ok(isDueNow(afterDeferred), `due now, not in an hour: ${afterDeferred?.nextAttemptAt}`);
  assert.equal(afterHeld?.state, 'deferred', 'released by the retry');
  assert.ok(isDueNow(afterHeld));

  const unknown = await runCli(['--state', state, 'queue', 'retry', 'NOSUCHID']);
  assert.equal(unknown.code, 1);
  assert.equal(unknown.stdout, '');
  assert.match(unknown.stderr, /^relay365: No queue entry NOSUCHID\.\nhint: List entries with `relay365 queue list`\.\n$/);
  const finished = await runCli(['--state', state, 'queue', 'retry', done, '--json']);
  assert.equal(finished.code, 1);
  assert.equal(finished.stdout, '');
  assert.deepEqual(jsonError(finished.stderr), { error: 'QUEUE_NOT_FOUND', message: `Queue entry ${done} is done: only deferred or held entries can be retried.`, temporary: false, details: { id: done, state: 'done' } });
});

test('queue retry --all and queue flush make every deferred entry due now and leave held ones held', async () => {
  const { state, ids } = await stateWithEntries(['deferred', 'deferred', 'hold', 'incoming']);
  const all = await runCli(['--state', state, 'queue', 'retry', '--all', '--json']);
  assert.equal(all.code, 0, all.stderr);
  assert.deepEqual(JSON.parse(all.stdout), { retried: 2 });
  const after = await readBack(state, ids);
  assert.deepEqual(after.map((e) => e?.state), ['deferred', 'deferred', 'hold', 'incoming']);
  assert.ok(isDueNow(after[0]) && isDueNow(after[1]));

  const flushJson = await runCli(['--state', state, 'queue', 'flush', '--json']);
  assert.equal(flushJson.code, 0, flushJson.stderr);
  assert.deepEqual(JSON.parse(flushJson.stdout), { retried: 2 });
  const flushed = await runCli(['--state', state, 'queue', 'flush']);
  assert.equal(flushed.code, 0, flushed.stderr);
  assert.equal(flushed.stdout, 'flush: 2 entries due now\n');
  assert.deepEqual(await statesOf(state, ids), ['deferred', 'deferred', 'hold', 'incoming']);
});

test('queue hold ID holds an incoming or deferred entry; an entry being delivered is refused (exit 1, JSON error with its state)', async () => {
  const { state, ids } = await stateWithEntries(['incoming', 'deferred', 'active']);
  const [incoming, deferred, active] = ids;
  const human = await runCli(['--state', state, 'queue', 'hold', incoming]);
  assert.equal(human.code, 0, human.stderr);
  assert.equal(human.stdout, 'hold: 1 entry put on hold\n');
  const json = await runCli(['--state', state, 'queue', 'hold', deferred, '--json']);
  assert.equal(json.code, 0, json.stderr);
  assert.deepEqual(JSON.parse(json.stdout), { held: 1 });

  const delivering = await runCli(['--state', state, 'queue', 'hold', active, '--json']);
  assert.equal(delivering.code, 1);
  assert.equal(delivering.stdout, '');
  const error = jsonError(delivering.stderr);
  assert.equal(error.error, 'QUEUE_NOT_FOUND');
  assert.equal(error.message, `Queue entry ${active} is active: only incoming or deferred entries can be put on hold.`);
  assert.deepEqual(error.details, { id: active, state: 'active' });
  const unknown = await runCli(['--state', state, 'queue', 'hold', 'NOSUCHID', '--json']);
  assert.equal(unknown.code, 1);
  assert.deepEqual(jsonError(unknown.stderr).details, { id: 'NOSUCHID' });
  assert.deepEqual(await statesOf(state, ids), ['hold', 'hold', 'active']);
});

test('queue hold --all holds every incoming and deferred entry, past one page of the queue, and nothing else', async () => {
  const { state, ids } = await stateWithEntries(['deferred', 'active', 'done', 'hold', 'deferred']);
  // More incoming entries than the command reads in one page (500).
  const q = new SqliteQueue({ dir: join(state, 'queue') });
  let incoming: string[];
  try {
    incoming = (await Promise.all(Array.from({ length: 510 }, (_, n) => q.enqueue({ sender: 'alice@contoso.test', recipients: ['bob@fabrikam.test'] }, Readable.from([Buffer.from(`Subject: ${n}\r\n\r\nx\r\n`)]))))).map((e) => e.id);
  } finally {
    await q.close();
  }
  const r = await runCli(['--state', state, 'queue', 'hold', '--all', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { held: 512 });
  assert.deepEqual(await statesOf(state, ids), ['hold', 'active', 'done', 'hold', 'hold']);
  assert.ok((await statesOf(state, incoming)).every((s) => s === 'hold'));

  const again = await runCli(['--state', state, 'queue', 'hold', '--all']);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stdout, 'hold: 0 entries put on hold\n');
});

test('queue release ID and release --all make held entries deferred and due now', async () => {
  const { state, ids } = await stateWithEntries(['hold', 'hold', 'hold', 'deferred']);
  const [first, second, third, deferred] = ids;
  const one = await runCli(['--state', state, 'queue', 'release', first, '--json']);
  assert.equal(one.code, 0, one.stderr);
  assert.deepEqual(JSON.parse(one.stdout), { released: 1 });
  assert.deepEqual(await statesOf(state, ids), ['deferred', 'hold', 'hold', 'deferred']);

  const notHeld = await runCli(['--state', state, 'queue', 'release', deferred]);
  assert.equal(notHeld.code, 1);
  assert.equal(notHeld.stderr, `relay365: Queue entry ${deferred} is deferred: only held entries can be released.\n`);

  const all = await runCli(['--state', state, 'queue', 'release', '--all']);
  assert.equal(all.code, 0, all.stderr);
  assert.equal(all.stdout, 'release: 2 entries released, due now\n');
  const after = await readBack(state, ids);
  assert.deepEqual(after.map((e) => e?.state), ['deferred', 'deferred', 'deferred', 'deferred']);
  assert.ok([first, second, third].every((_, i) => isDueNow(after[i])));
  assert.ok(!isDueNow(after[3]), 'the deferred entry keeps its time');
});

test('queue delete ID deletes any entry but one being delivered; unknown ids exit 1', async () => {
  const { state, ids } = await stateWithEntries(['incoming', 'done', 'active']);
  const [incoming, done, active] = ids;
  const human = await runCli(['--state', state, 'queue', 'delete', incoming]);
  assert.equal(human.code, 0, human.stderr);
  assert.equal(human.stdout, 'delete: 1 entry deleted\n');
  const json = await runCli(['--state', state, 'queue', 'delete', done, '--json']);
  assert.equal(json.code, 0, json.stderr);
  assert.deepEqual(JSON.parse(json.stdout), { deleted: 1 });

  const delivering = await runCli(['--state', state, 'queue', 'delete', active]);
  assert.equal(delivering.code, 1);
  assert.equal(delivering.stderr, `relay365: Queue entry ${active} is active: it is being delivered right now; try again once this attempt ends.\n`);
  const unknown = await runCli(['--state', state, 'queue', 'delete', 'NOSUCHID', '--json']);
  assert.equal(unknown.code, 1);
  assert.equal(jsonError(unknown.stderr).message, 'No queue entry NOSUCHID.');
  assert.deepEqual(await statesOf(state, ids), ['gone', 'gone', 'active']);
});

test('queue delete --all deletes only the state named by --in, and refuses without one (exit 2, nothing deleted)', async () => {
  const { state, ids } = await stateWithEntries(['deferred', 'hold', 'deferred', 'incoming', 'active', 'done']);
  for (const args of [['--all'], ['--all', '--in', 'done'], ['--all', '--in', 'active']]) {
    const r = await runCli(['--state', state, 'queue', 'delete', ...args, '--json']);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(jsonError(r.stderr).message, /^relay365 queue delete --all needs --in incoming\|deferred\|hold to say which entries to delete/);
  }
  const withId = await runCli(['--state', state, 'queue', 'delete', ids[0], '--in', 'deferred']);
  assert.equal(withId.code, 2, withId.stderr);
  assert.match(withId.stderr, /--in goes with --all/);
  assert.deepEqual(await statesOf(state, ids), ['deferred', 'hold', 'deferred', 'incoming', 'active', 'done'], 'the refused calls deleted nothing');

  const deferred = await runCli(['--state', state, 'queue', 'delete', '--all', '--in', 'deferred', '--json']);
  assert.equal(deferred.code, 0, deferred.stderr);
  assert.deepEqual(JSON.parse(deferred.stdout), { deleted: 2 });
  const held = await runCli(['--state', state, 'queue', 'delete', '--all', '--in', 'hold']);
  assert.equal(held.code, 0, held.stderr);
  assert.equal(held.stdout, 'delete: 1 entry deleted\n');
  assert.deepEqual(await statesOf(state, ids), ['gone', 'gone', 'gone', 'incoming', 'active', 'done']);
});

test('queue retry, hold, release and delete take an id or --all, exactly one (exit 2)', async () => {
  const { state, ids } = await stateWithEntries(['deferred']);
  for (const command of ['retry', 'hold', 'release', 'delete']) {
    const neither = await runCli(['--state', state, 'queue', command, '--json']);
    assert.equal(neither.code, 2, `${command}: ${neither.stderr}`);
    assert.deepEqual(jsonError(neither.stderr).message, `relay365 queue ${command} needs an id or --all`);
  }
  const both = await runCli(['--state', state, 'queue', 'hold', ids[0], '--all']);
  assert.equal(both.code, 2, both.stderr);
  assert.match(both.stderr, /^relay365: relay365 queue hold takes an id or --all, not both$/m);
  assert.deepEqual(await statesOf(state, ids), ['deferred']);
});
