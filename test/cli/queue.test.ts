/**
 * `relay365 queue prune` on a real state directory: the CLI in a child process, the queue filled
 * beforehand through the SqliteQueue the relay uses.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { runCli, tempDir } from '../helpers/cli.js';
import { SqliteQueue } from '../../src/queue/index.js';

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
