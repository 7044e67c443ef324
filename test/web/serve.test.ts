/**
 * `relay365 serve` (the real CLI in a child process) mounts the admin listener: its URL lands in
 * relay.json, the login works, SIGHUP takes a new admin password without a restart, SIGTERM stops
 * everything.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hashPassword } from '../../src/relay/index.js';
import { tempDir } from '../helpers/cli.js';
import { startServe } from '../helpers/serve.js';

async function waitFor<T>(fn: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function tryLogin(base: string, password: string): Promise<number> {
  const page = await fetch(`${base}/login`);
  const token = /name="_csrf" value="([^"]+)"/.exec(await page.text())![1]!;
  const cookie = page.headers.getSetCookie().find((c) => c.startsWith('relay365_login='))!.split(';')[0]!;
  const res = await fetch(`${base}/login`, { method: 'POST', redirect: 'manual', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ _csrf: token, user: 'admin', password }).toString() });
  return res.status;
}

test('serve runs the admin page next to the relay; SIGHUP reloads the admin login; SIGTERM stops', async (t) => {
  const state = tempDir('relay365-webserve-');
  const configFile = join(state, 'relay365.yaml');
  const config = (password: string) => `relay:\n  listen: [{ address: 127.0.0.1, port: 0 }]\nweb:\n  port: 0\n  admin_password_hash: "${hashPassword(password)}"\n`;
  writeFileSync(configFile, config('first password'));
  const relay = await startServe({ state, configFile, admin: true });
  t.after(() => relay.stop());
  const { info } = relay;
  assert.match(info.web!, /^http:\/\/127\.0\.0\.1:\d+$/);
  // serve prints its start-up line just after it has written relay.json.
  await waitFor(() => (/admin page, metrics and health on http:\/\/127\.0\.0\.1:\d+/.test(relay.stderr()) ? true : undefined), 10_000, 'the start-up line on stderr');
  assert.equal((await fetch(`${info.web}/healthz`)).status, 200);
  assert.equal(await tryLogin(info.web!, 'first password'), 303);

  // A new password in the file + SIGHUP: the old one stops working, the new one works.
  writeFileSync(configFile, config('second password'));
  relay.child.kill('SIGHUP');
  // Failed logins count towards the throttle, so wait for the reload instead of retrying.
  await waitFor(() => (relay.stderr().includes('configuration reloaded') ? true : undefined), 10_000, 'the reload log line');
  assert.equal(await tryLogin(info.web!, 'second password'), 303);
  assert.equal(await tryLogin(info.web!, 'first password'), 401);

  assert.deepEqual(await relay.stop(), { code: 0, signal: null }, relay.stderr());
  await assert.rejects(fetch(`${info.web}/healthz`), 'the admin listener is closed');
});
