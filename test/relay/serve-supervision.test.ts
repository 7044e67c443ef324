/**
 * `relay365 serve` under a supervisor (systemd, Docker), as a child process: when the inbound SMTP
 * thread dies after start-up the relay exits 70 (EX_SOFTWARE) and says why, so that it is
 * restarted; a SIGTERM that arrives while serve is still starting stops it cleanly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/cli.js';
import { spawnServe, startServe, type ServeExit, type ServeProcess } from '../helpers/serve.js';

/** No accounts, no upstream: only the listeners, all on free loopback ports. */
function configIn(state: string): string {
  const file = join(state, 'relay365.yaml');
  writeFileSync(file, 'relay:\n  listen: [{ address: 127.0.0.1, port: 0 }]\nweb:\n  address: 127.0.0.1\n  port: 0\n');
  return file;
}

/** How the process ended, or a failure naming what it printed if that takes longer than `ms`. */
async function endsWithin(serve: ServeProcess, ms: number): Promise<ServeExit> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still running ${ms} ms after the signal: ${serve.stderr()}`)), ms);
  });
  try {
    return await Promise.race([serve.exited, late]);
  } finally {
    clearTimeout(timer);
  }
}

function logRecords(stderr: string): Array<Record<string, unknown>> {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Resolves as soon as `text` appears on the process's stderr. */
function logged(serve: ServeProcess, text: string): Promise<void> {
  return new Promise((resolve) => {
    const look = () => {
      if (!serve.stderr().includes(text)) return;
      serve.child.stderr!.off('data', look);
      resolve();
    };
    serve.child.stderr!.on('data', look);
  });
}

function greeting(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('data', (d) => {
      s.destroy();
      resolve(d.toString('latin1'));
    });
    s.once('error', reject);
  });
}

test('the inbound thread dying after start-up ends serve with exit code 70 and a fatal log line saying why', async (t) => {
  const state = tempDir('relay365-supervise-');
  // The thread throws when it is told to reload (a test-only trigger in src/relay/inbound-thread.ts).
  const relay = await startServe({ state, configFile: configIn(state), admin: true, env: { RELAY365_TEST_INBOUND_THREAD_DIES_ON_RELOAD: '1' } });
  t.after(() => relay.stop('SIGKILL'));
  assert.match(await greeting(relay.port), /^220 /, 'the thread was up and serving SMTP');

  relay.child.kill('SIGHUP');
  assert.deepEqual(await endsWithin(relay, 15_000), { code: 70, signal: null }, relay.stderr());
  const fatal = logRecords(relay.stderr()).filter((r) => r.level === 'fatal');
  assert.equal(fatal.length, 1, relay.stderr());
  assert.match(String(fatal[0]!.msg), /inbound SMTP thread failed; relay365 stops so that its supervisor restarts it/);
  assert.match(String((fatal[0]!.err as { message?: string } | undefined)?.message), /the inbound thread died on reload/, 'the cause is logged');
  assert.ok(!logRecords(relay.stderr()).some((r) => r.msg === 'relay stopped'), 'no graceful stop: the supervisor restarts it');
});

/** Whether the process has a handler for `signo` (SigCgt in /proc: Linux). */
function catches(pid: number, signo: number): boolean {
  try {
    const mask = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return mask !== undefined && (BigInt(`0x${mask}`) >> BigInt(signo - 1)) % 2n === 1n;
  } catch {
    return false;
  }
}

test('SIGHUP and SIGTERM while the modules still load are held for serve: no death by SIGHUP, a clean exit 0', async (t) => {
  const state = tempDir('relay365-heldsignals-');
  const relay = spawnServe({ state, configFile: configIn(state) });
  t.after(() => relay.stop('SIGKILL'));
  // The entry point holds SIGHUP first of all (Node's default for it is to die), long before the
  // module graph is loaded and serve installs its own handlers.
  while (!catches(relay.pid, 1)) {
    assert.equal(relay.child.exitCode, null, relay.stderr());
    await new Promise((r) => setTimeout(r, 5));
  }
  relay.child.kill('SIGHUP');
  relay.child.kill('SIGTERM');
  const exit = await endsWithin(relay, 10_000);
  assert.deepEqual(exit, { code: 0, signal: null }, relay.stderr());
  assert.deepEqual(logRecords(relay.stderr()).filter((r) => r.level === 'error' || r.level === 'fatal'), [], 'no error logged');
  // Held signals reach serve before it starts anything (the window is the whole module load).
  assert.match(relay.stderr(), /stop requested while starting; nothing was started/);
  assert.ok(!existsSync(join(state, 'relay.json')), 'no listener was bound');
});

test('SIGTERM while serve is starting: it exits within seconds, without a crash trace', async (t) => {
  // Before the entry point holds signals (Node and tsx still loading), SIGTERM has its default
  // action, which supervisors count as a clean stop; from then on it is serve's graceful stop.
  const moments: Array<{ name: string; signalWhen(serve: ServeProcess): Promise<unknown>; expected: ServeExit[] }> = [
    { name: 'at once', signalWhen: async () => {}, expected: [{ code: null, signal: 'SIGTERM' }, { code: 0, signal: null }] },
    { name: 'after 300 ms', signalWhen: () => new Promise((r) => setTimeout(r, 300)), expected: [{ code: null, signal: 'SIGTERM' }, { code: 0, signal: null }] },
    { name: 'after 1 s', signalWhen: () => new Promise((r) => setTimeout(r, 1000)), expected: [{ code: null, signal: 'SIGTERM' }, { code: 0, signal: null }] },
    // From here on serve's handlers are installed: only its graceful stop is right.
    { name: 'as the inbound thread starts listening (relay.json and admin page still to come)', signalWhen: (serve) => logged(serve, 'listening for SMTP'), expected: [{ code: 0, signal: null }] },
    { name: 'once relay.json names the SMTP listener', signalWhen: (serve) => serve.ready, expected: [{ code: 0, signal: null }] },
  ];
  for (const moment of moments) {
    await t.test(moment.name, async (t) => {
      const state = tempDir('relay365-earlystop-');
      const relay = spawnServe({ state, configFile: configIn(state) });
      t.after(() => relay.stop('SIGKILL'));
      await moment.signalWhen(relay);
      relay.child.kill('SIGTERM');
      const exit = await endsWithin(relay, 10_000);
      t.diagnostic(`${JSON.stringify(exit)}; ${relay.stderr().split('\n').filter(Boolean).length} line(s) on stderr`);
      assert.ok(moment.expected.some((e) => e.code === exit.code && e.signal === exit.signal), `ended with ${JSON.stringify(exit)}: ${relay.stderr()}`);
      assert.doesNotMatch(relay.stderr(), /^\s+at /m, 'no stack trace');
      assert.deepEqual(logRecords(relay.stderr()).filter((r) => r.level === 'error' || r.level === 'fatal'), [], 'no error logged');
    });
  }
});
