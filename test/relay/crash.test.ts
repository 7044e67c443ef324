import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sandbox } from '../helpers/sandbox.js';
import { tempDir, repoRoot } from '../helpers/cli.js';
import { addAccount } from '../helpers/accounts.js';
import { relayYaml } from '../helpers/relay.js';
import { startServe } from '../helpers/serve.js';

const ALICE = 'alice@contoso.onmicrosoft.com';
const BOB = 'bob@contoso.onmicrosoft.com';

/** Sends `count` messages with smtplib, one connection each; `replies` counts the answers so far. */
function sendBatch(port: number, count: number, prefix: string, large?: string): { done: Promise<string[]>; replies: () => number; closed: () => boolean } {
  const env = large ? { ...process.env, SMTP_CLIENT_LARGE: large } : process.env;
  const child = spawn('python3', [join(repoRoot, 'test', 'helpers', 'smtp-client.py'), String(port), ALICE, BOB, String(count), prefix], { stdio: ['ignore', 'pipe', 'ignore'], env });
  let out = '';
  let closed = false;
  child.stdout.on('data', (d) => (out += d));
  child.on('close', () => (closed = true));
  return {
    replies: () => out.split('\n').length - 1,
    closed: () => closed,
    done: new Promise((resolve) => child.on('close', () => resolve(out.trim().split('\n').filter((l) => l.endsWith(' 250')).map((l) => l.split(' ')[0]!)))),
  };
}

test('kill -9 at random moments while messages flow: every message that got a 250 is delivered', async (t) => {
  // Exchange's 30 messages/minute pacing would make this test take many minutes; it is covered elsewhere.
  const sb = await sandbox({ limits: { messagesPerMinute: 1_000_000 } });
  const state = tempDir();
  try {
    await addAccount(sb, state, ALICE, { password: 'alice-Passw0rd!' });
    const configFile = join(state, 'relay.yaml');
    writeFileSync(configFile, relayYaml(sb, { delivery: '  messages_per_minute_per_account: 100000' }));
    const accepted: string[] = [];
    // 1,000 messages offered in all: 5 lives of the relay, 2 clients × 100 messages each, every
    // life ended by SIGKILL at a random moment while both clients are sending. Every fifth message
    // of the second client is 300 KB, stored as a body file (the path a kill can leave orphaned).
    for (let round = 0; round < 5; round++) {
      const relay = await startServe({ state, configFile, logLevel: 'warn' });
      const batches = [sendBatch(relay.port, 100, `crash${round}a`), sendBatch(relay.port, 100, `crash${round}b`, '5:300000')];
      // Killed mid-flow: once the clients have had between a tenth and nine tenths of their replies.
      const killAt = Math.round(200 * (0.1 + 0.8 * Math.random()));
      while (batches.reduce((n, b) => n + b.replies(), 0) < killAt && !batches.every((b) => b.closed())) await new Promise((r) => setTimeout(r, 5));
      const killed = relay.stop('SIGKILL');
      for (const b of batches) accepted.push(...(await b.done));
      await killed;
    }
    t.diagnostic(`${accepted.length} of 1000 offered messages got a 250 before the kills`);
    assert.ok(accepted.length > 100, `enough messages were accepted before the kills (${accepted.length})`);
    const relay = await startServe({ state, configFile, logLevel: 'warn' });
    try {
      const deadline = Date.now() + 90_000;
      let missing: string[] = accepted;
      while (Date.now() < deadline) {
        const seen = new Set(sb.mail.outbound().map((r) => r.messageId));
        missing = accepted.filter((id) => !seen.has(id));
        if (missing.length === 0) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.deepEqual(missing, [], `${missing.length} of ${accepted.length} accepted messages were lost`);
      const large = accepted.filter((id) => /^crash\db-\d*[05]@/.test(id));
      t.diagnostic(`${large.length} of them were large (body files)`);
      assert.ok(large.length > 0, 'some large messages were accepted');
      // Delivered bodies are removed, and orphans of the kills were removed at start-up.
      const bodies = join(state, 'queue', 'bodies');
      const end = Date.now() + 10_000;
      while (readdirSync(bodies).length && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(readdirSync(bodies), [], 'no body file is left behind');
    } finally {
      await relay.stop();
    }
  } finally {
    await sb.stop();
  }
});
