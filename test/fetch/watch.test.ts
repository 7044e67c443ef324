import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sandbox } from '../helpers/sandbox.js';
import { runCli, tempDir, childEnv, cliEntry, repoRoot } from '../helpers/cli.js';
import type { Sandbox } from '../../src/sandbox/index.js';

const D = 'contoso.onmicrosoft.com';
const INFO = `info@${D}`;

let sb: Sandbox;
let state: string;
before(async () => {
  sb = await sandbox();
  state = tempDir('relay365-watch-');
  const r = await runCli(['--state', state, 'account', 'add', INFO, '--tenant', D, '--authority-host', sb.endpoints.authorityHost, '--ca-file', sb.caFile, '--scopes', 'imap,pop', '--client-id', '11111111-0000-4000-8000-000000000003', '--client-secret-env', 'S'], { env: { S: 'sandbox-daemon-secret' } });
  assert.equal(r.code, 0, r.stderr);
});
after(() => sb.stop());

/** Message-IDs stored in the maildir. */
const stored = (dir: string) => (existsSync(join(dir, 'new')) ? readdirSync(join(dir, 'new')).map((f) => /^Message-ID: <([^>]+)>/im.exec(readFileSync(join(dir, 'new', f), 'latin1'))?.[1]) : []);

async function until(cond: () => boolean, what: string | (() => string), ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

for (const protocol of ['imap', 'pop3'] as const) {
  test(`fetch --watch over ${protocol === 'imap' ? 'IMAP IDLE' : 'POP3 polling'} delivers mail as it arrives and stops cleanly on SIGTERM`, async (t) => {
    const dir = tempDir('relay365-watch-maildir-');
    sb.mail.append(INFO, `Subject: ${protocol} before\r\nMessage-ID: <${protocol}-w1@x>\r\n\r\nbefore\r\n`);
    const port = protocol === 'imap' ? sb.endpoints.imap.port : sb.endpoints.pop3.port;
    const child = spawn(process.execPath, ['--import', 'tsx', cliEntry, '--state', state, 'fetch', INFO, '--protocol', protocol, '--host', '127.0.0.1', '--port', String(port), '--ca-file', sb.caFile, '--to', `maildir:${dir}`, '--delete', '--watch', '--interval', '1'], { cwd: repoRoot, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    t.after(() => child.kill('SIGKILL'));
    await until(() => stored(dir).includes(`${protocol}-w1@x`), () => `the first message (${output})`);
    sb.mail.append(INFO, `Subject: ${protocol} later\r\nMessage-ID: <${protocol}-w2@x>\r\n\r\nlater\r\n`);
    await until(() => stored(dir).includes(`${protocol}-w2@x`), () => `the message that arrived while watching (${output})`);
    await until(() => sb.mail.mailbox(INFO).messages.length === 0, 'the upstream deletion');
    child.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 15_000))]);
    assert.equal(code, 0, output);
  });
}
