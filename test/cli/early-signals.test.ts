/**
 * Signals held while the CLI loads (src/cli/early-signals.ts), in a child process of its own:
 * what serve claims, and what any other command gets back with Node's default action.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { childEnv, repoRoot } from '../helpers/cli.js';

const moduleUrl = pathToFileURL(join(repoRoot, 'src', 'cli', 'early-signals.ts')).href;

/** Runs `body` (ES module code with the module's exports in scope) in a child; how it ended. */
function runChild(body: string): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string }> {
  const script = `import { holdSignals, claimHeldSignals, releaseHeldSignals } from ${JSON.stringify(moduleUrl)};\n${body}`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: repoRoot, env: childEnv(), stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (d) => (stdout += d));
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout })));
}

// The child signals itself; a short wait lets Node run the JavaScript handlers.
const signalSelf = `
holdSignals();
process.kill(process.pid, 'SIGHUP');
process.kill(process.pid, 'SIGTERM');
await new Promise((r) => setTimeout(r, 200));
`;

test('signals that arrive while holding are kept, in order, for serve to claim, and the process lives on', async () => {
  const run = await runChild(`${signalSelf}console.log(JSON.stringify(claimHeldSignals()));
process.on('SIGHUP', () => console.log('serve handled SIGHUP'));
process.kill(process.pid, 'SIGHUP');
await new Promise((r) => setTimeout(r, 200));
console.log('still here');`);
  assert.deepEqual({ code: run.code, signal: run.signal }, { code: 0, signal: null });
  assert.deepEqual(run.stdout.trim().split('\n'), ['["SIGHUP","SIGTERM"]', 'serve handled SIGHUP', 'still here'], 'after the claim the signal goes to the new handler only');
});

test('for any other command the held signals meet their default action when released', async () => {
  const run = await runChild(`${signalSelf}console.log('loaded');
releaseHeldSignals();
await new Promise((r) => setTimeout(r, 2000));
console.log('not reached');`);
  assert.equal(run.signal, 'SIGHUP', `the first held signal ends the process: ${JSON.stringify(run)}`);
  assert.equal(run.stdout.trim(), 'loaded');
});
