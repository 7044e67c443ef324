import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sandbox } from '../helpers/sandbox.js';
import { tempDir, repoRoot } from '../helpers/cli.js';
import { addAccount } from '../helpers/accounts.js';
import { relayYaml } from '../helpers/relay.js';
import { startServe } from '../helpers/serve.js';

const ALICE = 'alice@contoso.onmicrosoft.com';
const BOB = 'bob@contoso.onmicrosoft.com';

/** Sends `count` messages with smtplib, one connection each; resolves with the ids that got 250. */
function sendBatch(port: number, count: number, prefix: string): { done: Promise<string[]> } {
  const child = spawn('python3', [join(repoRoot, 'test', 'helpers', 'smtp-client.py'), String(port), ALICE, BOB, String(count), prefix], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  return {
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
    // life ended by SIGKILL at a random moment while both clients are sending.
    for (let round = 0; round < 5; round++) {
      const relay = await startServe({ state, configFile, logLevel: 'warn' });
      const batches = [sendBatch(relay.port, 100, `crash${round}a`), sendBatch(relay.port, 100, `crash${round}b`)];
      await new Promise((r) => setTimeout(r, 500 + Math.random() * 2000));
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
    } finally {
      await relay.stop();
    }
  } finally {
    await sb.stop();
  }
});
