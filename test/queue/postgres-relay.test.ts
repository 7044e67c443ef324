/**
 * Two relay instances on one PostgreSQL queue, against the Microsoft 365 sandbox: mail accepted by
 * either is delivered exactly once, and when one instance is killed (SIGKILL, a real child process
 * running `relay365 serve`) the other leaves its leased work alone until the lease expires and then
 * delivers it. Instance A is that child process, instance B runs in this process (its events show
 * which entries it settled); each has its own state directory (token store), as on two hosts.
 */
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { sandbox } from '../helpers/sandbox.js';
import { tempDir, repoRoot, runCli } from '../helpers/cli.js';
import { addAccount } from '../helpers/accounts.js';
import { relayYaml } from '../helpers/relay.js';
import { startServe, type StartedServe } from '../helpers/serve.js';
import { RelayService } from '../../src/relay/index.js';
import { parseConfigText } from '../../src/config/index.js';
import { createLogger } from '../../src/core/log.js';
import type { QueueEntry } from '../../src/queue/index.js';
import type { Sandbox } from '../../src/sandbox/index.js';

const run = promisify(execFile);
const ALICE = 'alice@contoso.onmicrosoft.com';
const BOB = 'bob@contoso.onmicrosoft.com';
const PG_URL = process.env.RELAY365_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const SCHEMA = `relay365_t_${randomBytes(6).toString('hex')}`;

let unreachable: string | undefined;
let db: pg.Client | undefined;
let sb: Sandbox;
let stateA: string;
let stateB: string;
let configA: string;
let relayA: StartedServe | undefined;
let relayB: RelayService | undefined;
const settledByB = new Set<string>();

/** The test relay's YAML with the shared queue; Exchange's 3 connections per mailbox, split between the two instances as docs/queue.md says. */
function yaml(connections: number): string {
  return relayYaml(sb, { delivery: `  messages_per_minute_per_account: 100000\n  connections_per_account: ${connections}` }).replace('web:\n  port: 0', `queue:\n  backend: postgres\n  postgres_url: "${PG_URL}?schema=${SCHEMA}"\nweb:\n  enabled: false`);
}

async function sendPy(port: number, count: number, prefix: string): Promise<Array<{ id: string; code: number }>> {
  const { stdout } = await run('python3', [join(repoRoot, 'test', 'helpers', 'smtp-client.py'), String(port), ALICE, BOB, String(count), prefix], { timeout: 120_000 });
  return stdout.trim().split('\n').map((l) => {
    const [id, code] = l.split(' ');
    return { id: id!, code: Number(code) };
  });
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const outboundCount = (prefix: string) => {
  const n = new Map<string, number>();
  for (const m of sb.mail.outbound()) if (m.messageId?.startsWith(prefix)) n.set(m.messageId, (n.get(m.messageId) ?? 0) + 1);
  return n;
};

async function sql<R extends pg.QueryResultRow>(text: string, params: unknown[] = []): Promise<R[]> {
  return (await db!.query<R>(text.replaceAll('$S', `"${SCHEMA}"`), params)).rows;
}

function skipWithoutPostgres(t: TestContext): boolean {
  if (!unreachable) return false;
  t.skip(`PostgreSQL is not reachable at ${PG_URL} (${unreachable}); set RELAY365_TEST_POSTGRES_URL to run this test`);
  return true;
}

before(async () => {
  const probe = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 });
  try {
    await probe.connect();
    db = probe;
  } catch (err) {
    unreachable = (err as Error).message || String(err);
    await probe.end().catch(() => {});
    return;
  }
  sb = await sandbox({ limits: { messagesPerMinute: 1_000_000 } });
  stateA = tempDir();
  stateB = tempDir();
  await Promise.all([addAccount(sb, stateA, ALICE, { password: 'alice-Passw0rd!' }), addAccount(sb, stateB, ALICE, { password: 'alice-Passw0rd!' })]);
  configA = join(stateA, 'relay.yaml');
  writeFileSync(configA, yaml(1));
  // B first: it creates the schema, so A's start does not race it (both would be fine: migrations take an advisory lock).
  relayB = await RelayService.start({ config: parseConfigText(yaml(2), 'b.yaml').config, stateDir: stateB, log: createLogger({ level: 'silent' }) });
  relayB.events.on('settled', (e: QueueEntry) => settledByB.add(e.id));
  relayA = await startServe({ state: stateA, configFile: configA, logLevel: 'warn' });
});

after(async () => {
  await relayA?.stop();
  await relayB?.stop();
  await sb?.stop();
  if (db) {
    await db.query(`DROP SCHEMA IF EXISTS "${SCHEMA}" CASCADE`);
    await db.end();
  }
});

test('100 messages offered to two instances sharing the queue are each delivered exactly once', async (t) => {
  if (skipWithoutPostgres(t)) return;
  const portA = relayA!.port;
  const sent = (await Promise.all([sendPy(portA, 50, 'pg-a'), sendPy(relayB!.smtpPort, 50, 'pg-b')])).flat();
  assert.equal(sent.length, 100);
  assert.deepEqual(sent.filter((s) => s.code !== 250), [], 'every message accepted');
  const entries = await until('100 entries done', async () => {
    const rows = await sql<{ id: string; message_id: string; state: string; attempts: number }>("SELECT id, message_id, state, attempts FROM $S.entries WHERE message_id LIKE 'pg-%'");
    return rows.length === 100 && rows.every((r) => r.state === 'done') && rows;
  });
  const counts = outboundCount('pg-');
  assert.equal(counts.size, 100, 'every Message-ID reached Microsoft 365');
  assert.deepEqual([...counts].filter(([, n]) => n !== 1), [], 'none twice');
  assert.deepEqual(entries.filter((e) => e.attempts !== 1), [], 'one attempt each');
  assert.deepEqual(await sql("SELECT entry_id FROM $S.attempts GROUP BY entry_id HAVING count(*) > 1"), [], 'one attempt recorded each');
  assert.equal((await sql<{ n: string }>('SELECT count(*) AS n FROM $S.body_chunks'))[0]!.n, '0', 'bodies of delivered mail are gone');
  const byB = entries.filter((e) => settledByB.has(e.id)).length;
  t.diagnostic(`instance B settled ${byB}, instance A ${100 - byB}`);
  assert.ok(byB > 0 && byB < 100, `both instances delivered (B: ${byB} of 100)`);
  // The admin's view of the shared queue from any host: the CLI with the same configuration.
  const cli = await runCli(['--state', stateA, '--config', configA, 'queue', 'list', '--search', 'pg-a-7@', '--json']);
  assert.equal(cli.code, 0, cli.stderr);
  const listed = JSON.parse(cli.stdout) as { counts: Record<string, number>; entries: Array<{ messageId: string; state: string }> };
  assert.ok(listed.counts.done >= 100);
  assert.deepEqual(listed.entries.map((e) => [e.messageId, e.state]), [['pg-a-7@relay365.test', 'done']]);
});

test('an instance killed mid-flow: its leases are left alone until they expire, then the other delivers them', async (t) => {
  if (skipWithoutPostgres(t)) return;
  const portA = relayA!.port;
  const ownerA = `${hostname()}:${relayA!.pid}`;
  // Every upstream MAIL FROM takes 1.5 s, so both instances are holding leases when A is killed.
  sb.faults.add({ stage: 'smtp.mail', action: { kind: 'delay', ms: 1500 }, count: -1 });
  const sending = sendPy(portA, 20, 'kill');
  await until('instance A to hold leases', async () => Number((await sql<{ n: string }>("SELECT count(*) AS n FROM $S.entries WHERE state = 'active' AND lease_owner = $1", [ownerA]))[0]!.n) > 0, 30_000);
  await new Promise((r) => setTimeout(r, 300));
  await relayA!.stop('SIGKILL');
  sb.faults.clear();
  const accepted = (await sending).filter((s) => s.code === 250).map((s) => s.id);
  const heldByA = await sql<{ id: string; message_id: string; lease_until: Date }>("SELECT id, message_id, lease_until FROM $S.entries WHERE state = 'active' AND lease_owner = $1", [ownerA]);
  t.diagnostic(`${accepted.length} of 20 accepted by A before the kill; A held ${heldByA.length} lease(s)`);
  assert.ok(heldByA.length > 0);
  assert.ok(heldByA.every((e) => e.lease_until.getTime() > Date.now() + 5 * 60_000), 'leases of the 10-minute kind');

  // B delivers everything else, and keeps its hands off A's unexpired leases.
  const held = new Set(heldByA.map((e) => e.message_id));
  await until('B to deliver the unleased messages', async () => {
    const seen = outboundCount('kill');
    return accepted.every((id) => held.has(id) || seen.has(id));
  });
  await new Promise((r) => setTimeout(r, 1500));
  const still = await sql<{ id: string }>("SELECT id FROM $S.entries WHERE state = 'active' AND lease_owner = $1", [ownerA]);
  assert.deepEqual(still.map((r) => r.id).sort(), heldByA.map((e) => e.id).sort(), 'a live-looking lease is not stolen');

  // The lease is hard-coded to 10 minutes in DeliveryEngine: let those minutes pass in the database.
  await sql("UPDATE $S.entries SET lease_until = now() - interval '1 second' WHERE state = 'active' AND lease_owner = $1", [ownerA]);
  await until('B to take over and deliver A\'s leased messages', async () => {
    const rows = await sql<{ state: string }>("SELECT state FROM $S.entries WHERE message_id LIKE 'kill-%'");
    return rows.length > 0 && rows.every((r) => r.state === 'done');
  });
  const seen = outboundCount('kill');
  assert.deepEqual(accepted.filter((id) => !seen.has(id)), [], 'every message that got a 250 was delivered');
  const twice = [...seen].filter(([, n]) => n > 1).map(([id]) => id);
  t.diagnostic(`delivered twice: ${twice.length} (only possible for what A was sending when it died)`);
  assert.deepEqual(twice.filter((id) => !held.has(id)), [], 'no duplicates outside the messages A had in flight');
  assert.ok(heldByA.every((e) => settledByB.has(e.id)), 'B settled every entry A had leased');
});
