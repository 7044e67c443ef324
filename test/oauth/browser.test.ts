import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { chromium } from 'playwright-core';
import { sandbox } from '../helpers/sandbox.js';
import { tempDir, cliEntry, repoRoot, childEnv } from '../helpers/cli.js';

const CHROMIUM = '/usr/bin/chromium';

test('browser flow: a real headless Chromium signs in on the sandbox page and the CLI stores the account', { skip: !existsSync(CHROMIUM) && 'Debian chromium is not installed (.ci/run installs it)' }, async () => {
  const sb = await sandbox();
  const state = tempDir();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  try {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', cliEntry, '--state', state, 'account', 'add', 'bob@contoso.onmicrosoft.com', '--tenant', 'contoso.onmicrosoft.com', '--client-id', '11111111-0000-4000-8000-000000000001', '--flow', 'browser', '--scopes', 'smtp,imap', '--authority-host', sb.endpoints.authorityHost, '--ca-file', sb.caFile, '--json', '--no-browser'],
      { cwd: repoRoot, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (d) => {
        stdout += d;
        const m = /\{"authorize_url":"([^"]+)"\}/.exec(stdout);
        if (m) resolve(JSON.parse(`"${m[1]}"`));
      });
      child.on('close', () => reject(new Error(`CLI exited early: ${stderr}`)));
    });
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    await page.goto(url);
    await page.fill('#user', 'bob@contoso.onmicrosoft.com');
    await page.fill('#password', 'wrong');
    await page.click('#submit');
    await page.waitForSelector('#error');
    await page.fill('#password', 'bob-Passw0rd!');
    await page.click('#submit');
    await page.waitForSelector('#accept');
    mkdirSync(join(repoRoot, 'test-artifacts', 'oauth'), { recursive: true });
    await page.screenshot({ path: join(repoRoot, 'test-artifacts', 'oauth', 'consent.png') });
    await page.click('#accept');
    await page.waitForSelector('text=Sign-in complete');
    const code = await new Promise<number | null>((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.on('close', resolve)));
    assert.equal(code, 0, stderr);
    const added = JSON.parse(stdout.trim().split('\n').at(-1)!);
    assert.equal(added.added, 'bob@contoso.onmicrosoft.com');
    assert.equal(added.refresh_token, 'stored');
    const html = await page.content();
    assert.ok(!/eyJ|bob-Passw0rd/.test(html), 'no token or password in the page');
  } finally {
    await browser.close();
    await sb.stop();
  }
});
