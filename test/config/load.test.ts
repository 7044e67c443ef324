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

test('routes named by rules and default_route must exist: a typo is a config error with its line, not days of deferred mail', () => {
  const routes = 'relay:\n  routes:\n    m365: { type: smtp, account: relay@contoso.test }\n';
  const bad = [
    [`${routes}  rules:\n    - { sender: "@printers.test", route: m356 }\n`, /^r\.yaml:5: relay\.rules\.0\.route: no route named "m356" \(relay\.routes has "m365", "by-sender"\)/, 'relay.rules.0.route'],
    [`${routes}  default_route: m356\n`, /^r\.yaml:4: relay\.default_route: no route named "m356"/, 'relay.default_route'],
  ] as const;
  for (const [text, message, keyPath] of bad) {
    assert.throws(() => parseConfigText(text, 'r.yaml'), (err: unknown) => err instanceof ConfigError && message.test(err.message) && err.keyPath === keyPath, text);
  }
  const ok = parseConfigText(`${routes}  rules:\n    - { sender: "@printers.test", route: m365 }\n    - { user: scanner, route: by-sender }\n  default_route: m365\n`, 'ok.yaml');
  assert.equal(ok.config.relay.default_route, 'm365');
});

test('a TLS listener without its certificate or key is a config error naming the key, not ENOENT at start-up', () => {
  assert.throws(
    () => parseConfigText('relay:\n  listen:\n    - { address: 0.0.0.0, port: 587, tls: starttls, key_file: /etc/relay365/key.pem }\n', 't.yaml'),
    (err: unknown) => err instanceof ConfigError && /^t\.yaml:3: relay\.listen\.0\.cert_file: required with tls: starttls/.test(err.message),
  );
  assert.doesNotThrow(() => parseConfigText('relay:\n  listen:\n    - { port: 2525 }\n', 't.yaml'));
});

test('a recipient_domain written like a pattern, and a reject message over several lines, are config errors', () => {
  for (const [text, message] of [
    ['relay:\n  rules:\n    - { recipient_domain: "@fabrikam.test", route: by-sender }\n', /^d\.yaml:3: relay\.rules\.0\.recipient_domain: a domain name such as example\.com \(no @, no trailing dot\)/],
    ['relay:\n  rules:\n    - { recipient_domain: "fabrikam.test.", route: by-sender }\n', /relay\.rules\.0\.recipient_domain: a domain name/],
    ['relay:\n  routes:\n    no: { type: reject, message: "first line\\nsecond line" }\n', /^d\.yaml:3: relay\.routes\.no\.message: one line only/],
  ] as const) {
    assert.throws(() => parseConfigText(text, 'd.yaml'), (err: unknown) => err instanceof ConfigError && message.test(err.message), text);
  }
  const ok = parseConfigText('relay:\n  routes:\n    no: { type: reject, message: "Not from here" }\n  rules:\n    - { recipient_domain: Fabrikam.test, route: no }\n', 'd.yaml');
  assert.equal(ok.config.relay.rules[0]!.recipient_domain, 'Fabrikam.test');
});
