import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText, defaultConfig } from '../../src/config/index.js';
import { ConfigError } from '../../src/core/errors.js';

test('embedded defaults parse', () => {
  const cfg = defaultConfig();
  assert.equal(cfg.log.level, 'info');
});

test('unknown keys are rejected with file, line and key path', () => {
  const text = 'log:\n  level: debug\n  colour: red\n';
  assert.throws(() => parseConfigText(text, 'relay.yaml'), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /^relay\.yaml:3: log\.colour: unknown key/);
    assert.equal(err.line, 3);
    assert.equal(err.keyPath, 'log.colour');
    return true;
  });
});

test('bad values name the key and its line', () => {
  assert.throws(() => parseConfigText('\nlog:\n  level: loud\n', 'x.yaml'), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /^x\.yaml:3: log\.level: /);
    return true;
  });
});

test('YAML syntax errors carry a line', () => {
  assert.throws(() => parseConfigText('log:\n  level: [debug\n', 'y.yaml'), /y\.yaml:\d+: YAML syntax error/);
});

test('relay.allow_networks and rules[].client must be addresses or networks, named with their line', () => {
  const bad = [
    ['relay:\n  allow_networks: [localhost]\n', /^n\.yaml:2: relay\.allow_networks\.0: not an IP address or network/],
    ['relay:\n  allow_networks:\n    - 10.0.0.0/8\n    - 10.0.0.0/33\n', /^n\.yaml:4: relay\.allow_networks\.1: not an IP address or network/],
    ['relay:\n  allow_networks: ["::1/129"]\n', /relay\.allow_networks\.0: not an IP address/],
    ['relay:\n  allow_networks: ["10.0.0.0/8/9"]\n', /relay\.allow_networks\.0: not an IP address/],
    ['relay:\n  rules:\n    - { client: printer.local, route: by-sender }\n', /relay\.rules\.0\.client: not an IP address or network/],
  ] as const;
  for (const [text, message] of bad) assert.throws(() => parseConfigText(text, 'n.yaml'), (err: unknown) => err instanceof ConfigError && message.test(err.message), text);
  const ok = parseConfigText('relay:\n  allow_networks: [192.168.1.0/24, 10.1.2.3, "2001:db8::/32", "::1"]\n  rules:\n    - { client: 172.16.0.0/12, route: by-sender }\n', 'ok.yaml');
  assert.deepEqual(ok.config.relay.allow_networks, ['192.168.1.0/24', '10.1.2.3', '2001:db8::/32', '::1']);
});

test('queue.keep_finished_days: 7 by default, 0 allowed, a negative or non-number value names the key, the file and the line', () => {
  assert.equal(defaultConfig().queue.keep_finished_days, 7);
  assert.equal(parseConfigText('queue:\n  keep_finished_days: 0\n', 'ok.yaml').config.queue.keep_finished_days, 0);
  const bad = [
    ['-1', /^q\.yaml:3: queue\.keep_finished_days: Too small: expected number to be >=0/],
    ['seven', /^q\.yaml:3: queue\.keep_finished_days: Invalid input: expected number/],
  ] as const;
  for (const [value, message] of bad) {
    assert.throws(() => parseConfigText(`queue:\n  backend: sqlite\n  keep_finished_days: ${value}\n`, 'q.yaml'), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, message);
      assert.equal(err.keyPath, 'queue.keep_finished_days');
      assert.equal(err.file, 'q.yaml');
      return true;
    }, value);
  }
});
