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
