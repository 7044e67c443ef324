import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, tempDir } from '../helpers/cli.js';

test('--version prints the package version', async () => {
  const r = await runCli(['--version']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^\d+\.\d+\.\d+/);
});

test('config defaults prints every section', async () => {
  const r = await runCli(['config', 'defaults', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const parsed = JSON.parse(r.stdout);
  assert.equal(parsed.log.level, 'info');
});

test('config check exits 2 and names file:line for an unknown key', async () => {
  const dir = tempDir();
  const file = join(dir, 'bad.yaml');
  writeFileSync(file, 'log:\n  levle: debug\n');
  const r = await runCli(['config', 'check', file]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /bad\.yaml:2: log\.levle: unknown key/);
});

test('unknown command is a usage error (exit 2)', async () => {
  const r = await runCli(['no-such-command']);
  assert.equal(r.code, 2);
});
