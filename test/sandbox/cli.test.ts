import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, cliEntry, repoRoot, childEnv } from '../helpers/cli.js';

test('relay365 sandbox starts with no configuration, prints endpoints, users and apps, writes its state file, stops on SIGTERM', async () => {
  const state = tempDir();
  const started = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', cliEntry, '--state', state, 'sandbox'], { cwd: repoRoot, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('Press Ctrl-C to stop.')) resolve();
    });
    child.on('close', () => reject(new Error(`sandbox exited: ${out}`)));
  });
  const elapsed = Date.now() - started;
  console.log(`sandbox ready after ${elapsed} ms (including tsx start-up)`);
  for (const line of [/identity platform {2}https:\/\/127\.0\.0\.1:\d+\/\{tenant\}\/oauth2\/v2\.0/, /SMTP \(STARTTLS\) {4}127\.0\.0\.1:\d+/, /IMAP \(TLS\/STARTTLS\)/, /POP3 \(TLS\/STLS\)/, /Graph {14}https:/, /user alice@contoso\.onmicrosoft\.com {2}password alice-Passw0rd!/, /app {2}relay365-daemon {2}client_id 11111111-0000-4000-8000-000000000003 {2}secret sandbox-daemon-secret/]) {
    assert.match(out, line);
  }
  const stateFile = JSON.parse(readFileSync(join(state, 'sandbox', 'sandbox.json'), 'utf8'));
  assert.ok(stateFile.endpoints.smtp.port > 0);
  assert.equal(stateFile.tenantId, '7c8f0d2e-1a2b-4c3d-8e9f-0a1b2c3d4e5f');
  // No pause before the signal: the CLI handles SIGTERM from before it writes sandbox.json.
  child.kill('SIGTERM');
  const code = await new Promise((r) => child.on('close', r));
  assert.equal(code, 0);
});
