/**
 * The generated references stay in step with the code: docs/configuration.md with the schema,
 * docs/cli.md with the commands' --help. Regenerate with the scripts named in the messages.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { CONFIG_DOC, renderConfigDoc } from '../../scripts/gen-config-doc.js';
import { CLI_DOC, renderCliDoc } from '../../scripts/gen-cli-doc.js';
import { defaultConfig, parseConfigText } from '../../src/config/index.js';
import { buildProgram } from '../../src/cli/main.js';
import { hashPassword } from '../../src/relay/index.js';
import { repoRoot } from '../helpers/cli.js';

test('docs/configuration.md is generated from the current schema (run `npx tsx scripts/gen-config-doc.ts`)', () => {
  assert.equal(readFileSync(CONFIG_DOC, 'utf8'), renderConfigDoc(), 'docs/configuration.md is stale: run `npx tsx scripts/gen-config-doc.ts`');
});

test('the configuration reference names every key that `config defaults` prints', () => {
  const doc = renderConfigDoc();
  const paths: string[] = [];
  const walk = (value: unknown, path: string) => {
    if (value && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length) {
      for (const [k, v] of Object.entries(value)) walk(v, path ? `${path}.${k}` : k);
    } else paths.push(path);
  };
  walk(defaultConfig(), '');
  assert.ok(paths.length > 20);
  for (const p of paths) assert.ok(doc.includes(`| \`${p}\` |`), `${p} is missing from the configuration reference`);
  assert.match(doc, /\| `web\.admin_password_hash` \| string \| \*\(unset\)\* \|/);
  assert.match(doc, /`relay\.routes` entries with `type: smtp`/);
});

test('docs/cli.md is generated from the current commands (run `npx tsx scripts/gen-cli-doc.ts`)', () => {
  assert.equal(readFileSync(CLI_DOC, 'utf8'), renderCliDoc(), 'docs/cli.md is stale: run `npx tsx scripts/gen-cli-doc.ts`');
});

test('the CLI reference has a section for every command', () => {
  const doc = renderCliDoc();
  const { program } = buildProgram();
  const names: string[] = [];
  const walk = (c: typeof program, prefix: string) => {
    for (const sub of c.commands) {
      names.push(`${prefix} ${sub.name()}`);
      walk(sub, `${prefix} ${sub.name()}`);
    }
  };
  walk(program, 'relay365');
  assert.ok(names.includes('relay365 serve'));
  for (const n of names) assert.ok(doc.includes(`\n## ${n}\n`), `${n} has no section in docs/cli.md`);
});

test('deploy/: the container configuration is valid; the systemd unit passes systemd-analyze verify', (t) => {
  const docker = parseConfigText(readFileSync(`${repoRoot}/deploy/docker.yaml`, 'utf8'), 'deploy/docker.yaml').config;
  assert.equal(docker.relay.listen[0]!.address, '0.0.0.0');
  assert.deepEqual(docker.relay.allow_networks, ['127.0.0.0/8', '::1/128'], 'the image allows no network by default');
  const dockerfile = readFileSync(`${repoRoot}/deploy/Dockerfile`, 'utf8');
  assert.match(dockerfile, /^USER node$/m, 'the container does not run as root');
  assert.match(dockerfile, /HEALTHCHECK[\s\S]*\/healthz/);
  const unit = readFileSync(`${repoRoot}/deploy/relay365.service`, 'utf8');
  for (const line of ['ProtectSystem=strict', 'NoNewPrivileges=yes', 'StateDirectory=relay365', 'User=relay365', 'CapabilityBoundingSet=']) assert.match(unit, new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`, 'm'));
  if (!existsSync('/usr/bin/systemd-analyze')) return t.skip('systemd-analyze is not installed');
  // verify prints problems on stderr and still exits 0 for most of them: nothing printed is the pass.
  const r = spawnSync('/usr/bin/systemd-analyze', ['verify', `${repoRoot}/deploy/relay365.service`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(`${r.stdout}${r.stderr}`.trim(), '');
});

test('every relay365 configuration example in the README and the guides is valid', () => {
  const hash = hashPassword('example');
  const files = ['README.md', 'README.ja.md', 'docs/quickstart-printer.md', 'docs/quickstart-sendmail.md', 'docs/quickstart-postfix.md', 'docs/admin.md', 'docs/deploy.md'];
  let checked = 0;
  for (const f of files) {
    const text = readFileSync(`${repoRoot}/${f}`, 'utf8');
    for (const m of text.matchAll(/```yaml\n([\s\S]*?)```/g)) {
      const block = m[1]!;
      if (!/^(relay|web|delivery|queue|log):/m.test(block)) continue;
      // Examples abbreviate hashes as "scrypt$…"; the schema wants a real one.
      const yaml = block.replace(/"scrypt\$[^"]*"/g, JSON.stringify(hash));
      assert.doesNotThrow(() => parseConfigText(yaml, f), `${f}: example does not parse:\n${block}`);
      checked++;
    }
  }
  assert.ok(checked >= 7, `only ${checked} examples found`);
});
