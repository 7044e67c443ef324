/**
 * The router (src/relay/routing.ts): rules, first match wins → a named route.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Router, RoutingRules } from '../../src/relay/routing.js';
import { parseConfigText } from '../../src/config/index.js';

function router(yaml: string, accounts: Array<{ email: string; mailbox: string }>): Router {
  const { config } = parseConfigText(yaml, 'routing.yaml');
  return new Router(config.relay, config.delivery, async () => accounts);
}

test("rewrites and bounces go out as the account's mailbox, not its name (an application account's name is not an address Exchange takes)", async () => {
  const r = router(
    'relay:\n  routes:\n    app: { type: smtp, account: relay-app, rewrite_sender: true }\n    plain: { type: smtp, account: relay-app }\n    graph: { type: graph, account: relay-app, rewrite_sender: true }\n  rules:\n    - { sender: "@printers.test", route: app }\n    - { sender: "@graph.test", route: graph }\n  default_route: plain\n',
    [{ email: 'relay-app', mailbox: 'relay@contoso.test' }],
  );
  const rewriteTo = async (sender: string) => {
    const route = await r.route({ sender, recipient: 'bob@fabrikam.test' });
    assert.equal(route.kind, 'transport');
    return route.kind === 'transport' ? route.rewriteTo : undefined;
  };
  assert.equal(await rewriteTo('mfp@printers.test'), 'relay@contoso.test');
  assert.equal(await rewriteTo('mfp@graph.test'), 'relay@contoso.test');
  assert.equal(await rewriteTo('alice@contoso.test'), undefined, 'no rewrite on a route without rewrite_sender');
  assert.equal(await rewriteTo(''), 'relay@contoso.test', 'a bounce (null sender) goes out as the mailbox');
});

test('by-sender: the account whose address or mailbox is the sender; a bounce through the only account goes out as its mailbox', async () => {
  const accounts = [
    { email: 'alice@contoso.test', mailbox: 'alice@contoso.test' },
    { email: 'relay-app', mailbox: 'relay@contoso.test' },
  ];
  const r = router('relay: {}\n', accounts);
  const viaApp = await r.route({ sender: 'relay@contoso.test', recipient: 'bob@fabrikam.test' });
  assert.equal(viaApp.kind === 'transport' && viaApp.spec.type === 'smtp' ? viaApp.spec.account : undefined, 'relay-app');
  const none = await r.route({ sender: 'nobody@contoso.test', recipient: 'bob@fabrikam.test' });
  assert.deepEqual(none.kind === 'none' ? none.reason : undefined, 'no account for sender nobody@contoso.test');
  const single = router('relay: {}\n', [accounts[1]!]);
  const bounce = await single.route({ sender: '', recipient: 'mfp@printers.test' });
  assert.equal(bounce.kind === 'transport' ? bounce.rewriteTo : undefined, 'relay@contoso.test');
});

/** A router over `rules` (YAML flow mappings), each naming its own route; the default is "fallback". */
function ruleRouter(rules: string[]): Router {
  const names = new Set(rules.map((r) => /route: ([\w-]+)/.exec(r)![1]!));
  const routes = [...names, 'fallback'].map((n) => `    ${n}: { type: mx }\n`).join('');
  return router(`relay:\n  routes:\n${routes}  rules:\n${rules.map((r) => `    - ${r}\n`).join('')}  default_route: fallback\n`, []);
}

const SENDER = 'alice@contoso.test';
const RCPT = 'bob@fabrikam.test';

/** Route name for a message from `sender` to `recipient` (and optional user, client IP). */
function nameFor(r: Router, sender: string, extra: { recipient?: string; user?: string; clientIp?: string } = {}): string {
  return r.routeName({ sender, recipient: extra.recipient ?? RCPT, user: extra.user, clientIp: extra.clientIp });
}

test('sender rules: exact address, @domain and * patterns, all case-insensitive', () => {
  const exact = ruleRouter(['{ sender: Alice@Contoso.test, route: hit }']);
  assert.equal(nameFor(exact, 'alice@contoso.test'), 'hit');
  assert.equal(nameFor(exact, 'ALICE@CONTOSO.TEST'), 'hit', 'the local part too: Exchange treats it case-insensitively');
  assert.equal(nameFor(exact, 'alice2@contoso.test'), 'fallback');
  assert.equal(nameFor(exact, 'malice@contoso.test'), 'fallback');

  const domain = ruleRouter(['{ sender: "@Contoso.test", route: hit }']);
  assert.equal(nameFor(domain, 'anyone@contoso.test'), 'hit');
  assert.equal(nameFor(domain, 'anyone@CONTOSO.TEST'), 'hit');
  assert.equal(nameFor(domain, 'anyone@sub.contoso.test'), 'fallback', '@domain is that domain only, as in Postfix maps');
  assert.equal(nameFor(domain, 'anyone@evilcontoso.test'), 'fallback');
  assert.equal(nameFor(domain, 'anyone@contoso.test.evil.test'), 'fallback');

  const wildcard = ruleRouter(['{ sender: "*@*.Contoso.test", route: sub }', '{ sender: "scan*@contoso.test", route: scanners }']);
  assert.equal(nameFor(wildcard, 'x@eu.contoso.test'), 'sub');
  assert.equal(nameFor(wildcard, 'x@EU.CONTOSO.TEST'), 'sub');
  assert.equal(nameFor(wildcard, 'x@contoso.test'), 'fallback', '*. needs a subdomain');
  assert.equal(nameFor(wildcard, 'x@eu.contoso.test.evil.test'), 'fallback', 'anchored at the end');
  assert.equal(nameFor(wildcard, 'Scanner-3@contoso.test'), 'scanners');
  assert.equal(nameFor(wildcard, 'printer@contoso.test'), 'fallback', 'anchored at the start');
});

test('sender patterns: regex characters are literal, only * is a wildcard', () => {
  const r = ruleRouter(['{ sender: "a.b+c@x.test", route: dotted }', '{ sender: "(ops)|*@y.test", route: odd }']);
  assert.equal(nameFor(r, 'a.b+c@x.test'), 'dotted');
  assert.equal(nameFor(r, 'aXb+c@x.test'), 'fallback', '. is not any character');
  assert.equal(nameFor(r, 'a.bbc@x.test'), 'fallback', '+ is not a repetition');
  assert.equal(nameFor(r, '(ops)|me@y.test'), 'odd');
  assert.equal(nameFor(r, 'me@y.test'), 'fallback', '| is not an alternative');
});

test('the null sender <>: only "*" and "<>" sender rules match it', () => {
  const r = ruleRouter(['{ sender: "@contoso.test", route: domain }', '{ sender: "*@*", route: wildcard }', '{ sender: alice@contoso.test, route: exact }', '{ sender: "<>", route: bounces }']);
  assert.equal(nameFor(r, ''), 'bounces');
  assert.equal(nameFor(r, 'bob@elsewhere.test'), 'wildcard', '<> matches only the null sender');
  assert.equal(nameFor(ruleRouter(['{ sender: "*", route: any }']), ''), 'any', '"*" is any sender, bounces included');
  assert.equal(nameFor(ruleRouter(['{ sender: "<>", route: bounces }']), 'alice@contoso.test'), 'fallback');
});

test('recipient_domain rules: case-insensitive on both sides, that domain only', () => {
  const r = ruleRouter(['{ recipient_domain: Fabrikam.TEST, route: hit }']);
  assert.equal(nameFor(r, SENDER, { recipient: 'bob@fabrikam.test' }), 'hit');
  assert.equal(nameFor(r, SENDER, { recipient: 'Bob@FABRIKAM.Test' }), 'hit');
  assert.equal(nameFor(r, SENDER, { recipient: 'bob@eu.fabrikam.test' }), 'fallback');
  assert.equal(nameFor(r, SENDER, { recipient: 'bob@notfabrikam.test' }), 'fallback');
  assert.equal(nameFor(r, SENDER, { recipient: 'fabrikam.test@contoso.test' }), 'fallback', 'the domain, not the local part');
});

test('user rules: only the authenticated relay user of that name', () => {
  const r = ruleRouter(['{ user: scanner, route: hit }']);
  assert.equal(nameFor(r, SENDER, { user: 'scanner' }), 'hit');
  assert.equal(nameFor(r, SENDER, { user: 'scanner2' }), 'fallback');
  assert.equal(nameFor(r, SENDER), 'fallback', 'an unauthenticated client');
});

test('client rules: IPv4 and IPv6 addresses and networks, IPv4-mapped clients as their IPv4 address', () => {
  const r = ruleRouter(['{ client: 10.0.0.0/8, route: ten }', '{ client: 192.0.2.7, route: single }', '{ client: "2001:db8::/32", route: v6 }', '{ client: "::ffff:172.16.0.0/108", route: mapped }']);
  assert.equal(nameFor(r, SENDER, { clientIp: '10.1.2.3' }), 'ten');
  assert.equal(nameFor(r, SENDER, { clientIp: '::ffff:10.0.0.1' }), 'ten', 'an IPv4 client on a dual-stack listener');
  assert.equal(nameFor(r, SENDER, { clientIp: '11.0.0.1' }), 'fallback');
  assert.equal(nameFor(r, SENDER, { clientIp: '192.0.2.7' }), 'single');
  assert.equal(nameFor(r, SENDER, { clientIp: '::ffff:192.0.2.7' }), 'single');
  assert.equal(nameFor(r, SENDER, { clientIp: '192.0.2.8' }), 'fallback');
  assert.equal(nameFor(r, SENDER, { clientIp: '2001:db8:1::25' }), 'v6');
  assert.equal(nameFor(r, SENDER, { clientIp: '2001:DB8:0:0::1' }), 'v6');
  assert.equal(nameFor(r, SENDER, { clientIp: '2001:db9::1' }), 'fallback');
  assert.equal(nameFor(r, SENDER, { clientIp: '172.16.5.5' }), 'mapped', 'an IPv4-mapped network holds the plain IPv4 address');
  assert.equal(nameFor(r, SENDER, { clientIp: '::ffff:172.16.5.5' }), 'mapped');
  assert.equal(nameFor(r, SENDER), 'fallback', 'no client IP (a message from the CLI) matches no client rule');
});

test('a rule matches only when all its conditions do', () => {
  const r = ruleRouter(['{ sender: "@contoso.test", recipient_domain: fabrikam.test, user: scanner, client: 10.0.0.0/8, route: all }']);
  const all = { recipient: RCPT, user: 'scanner', clientIp: '10.0.0.5' };
  assert.equal(nameFor(r, SENDER, all), 'all');
  assert.equal(nameFor(r, 'alice@other.test', all), 'fallback', 'sender differs');
  assert.equal(nameFor(r, SENDER, { ...all, recipient: 'bob@other.test' }), 'fallback', 'recipient domain differs');
  assert.equal(nameFor(r, SENDER, { ...all, user: 'printer' }), 'fallback', 'user differs');
  assert.equal(nameFor(r, SENDER, { ...all, user: undefined }), 'fallback', 'not authenticated');
  assert.equal(nameFor(r, SENDER, { ...all, clientIp: '192.0.2.1' }), 'fallback', 'client differs');
});

test('the first matching rule wins; no match → default_route', () => {
  const r = ruleRouter(['{ sender: alice@contoso.test, route: first }', '{ sender: "@contoso.test", route: second }', '{ recipient_domain: fabrikam.test, route: third }', '{ sender: "*", route: catchall }']);
  assert.equal(nameFor(r, 'alice@contoso.test'), 'first', 'both the first and the second match');
  assert.equal(nameFor(r, 'bob@contoso.test'), 'second');
  assert.equal(nameFor(r, 'x@other.test'), 'third');
  assert.equal(nameFor(r, 'x@other.test', { recipient: 'y@other.test' }), 'catchall');
  assert.equal(nameFor(ruleRouter(['{ sender: "@contoso.test", route: only }']), 'x@other.test'), 'fallback');
  assert.equal(router('relay: {}\n', []).routeName({ sender: SENDER, recipient: RCPT }), 'by-sender', 'the default default_route');
});

test('reconfigure (SIGHUP) replaces the rules', () => {
  const r = ruleRouter(['{ sender: "@contoso.test", route: old }']);
  assert.equal(nameFor(r, SENDER), 'old');
  const { config } = parseConfigText('relay:\n  routes:\n    new: { type: mx }\n  rules:\n    - { recipient_domain: fabrikam.test, route: new }\n', 'reload.yaml');
  r.reconfigure(config.relay, config.delivery);
  assert.equal(nameFor(r, 'x@other.test'), 'new');
  assert.equal(nameFor(r, SENDER, { recipient: 'y@other.test' }), 'by-sender');
});

test('each route type becomes its transport spec; reject carries its message', async () => {
  const r = router(
    `relay:
  routes:
    o365: { type: smtp, account: alice@contoso.test, preset: office365, port: 587, security: starttls, mechanism: OAUTHBEARER }
    graph: { type: graph, account: alice@contoso.test, base_url: "https://graph.test", ca_file: /etc/graph-ca.pem }
    direct: { type: mx, resolvers: [192.0.2.53], port: 2525 }
    relayhost: { type: smarthost, host: mail.isp.test, port: 465, security: implicit, user: u, password: p, max_connections: 4 }
    blocked: { type: reject, message: No mail to competitors }
    refused: { type: reject }
  rules:
${['o365', 'graph', 'direct', 'relayhost', 'blocked', 'refused'].map((n) => `    - { recipient_domain: ${n}.test, route: ${n} }`).join('\n')}
delivery:
  ca_file: /etc/relay-ca.pem
  connections_per_account: 2
`,
    [{ email: 'alice@contoso.test', mailbox: 'alice@contoso.test' }],
  );
  const to = (name: string) => r.route({ sender: SENDER, recipient: `bob@${name}.test` });
  assert.deepEqual(await to('o365'), { name: 'o365', kind: 'transport', spec: { type: 'smtp', account: 'alice@contoso.test', preset: 'office365', host: undefined, port: 587, security: 'starttls', mechanism: 'OAUTHBEARER', caFile: '/etc/relay-ca.pem', maxConnections: 2 }, rewriteTo: undefined });
  assert.deepEqual(await to('graph'), { name: 'graph', kind: 'transport', spec: { type: 'graph', account: 'alice@contoso.test', baseUrl: 'https://graph.test', caFile: '/etc/graph-ca.pem' }, rewriteTo: undefined });
  assert.deepEqual(await to('direct'), { name: 'direct', kind: 'transport', spec: { type: 'mx', resolvers: ['192.0.2.53'], port: 2525 } });
  assert.deepEqual(await to('relayhost'), { name: 'relayhost', kind: 'transport', spec: { type: 'smarthost', host: 'mail.isp.test', port: 465, security: 'implicit', user: 'u', password: 'p', caFile: '/etc/relay-ca.pem', maxConnections: 4 } });
  assert.deepEqual(await to('blocked'), { name: 'blocked', kind: 'reject', message: 'No mail to competitors' });
  assert.deepEqual(await to('refused'), { name: 'refused', kind: 'reject', message: 'Relaying to this destination is not allowed' }, 'the default message');
  const bySender = await to('elsewhere');
  assert.equal(bySender.name, 'by-sender:alice@contoso.test');
  assert.deepEqual(bySender.kind === 'transport' ? bySender.spec : undefined, { type: 'smtp', account: 'alice@contoso.test', host: undefined, port: undefined, caFile: '/etc/relay-ca.pem', maxConnections: 2 });
});

test('by-sender finds the account whatever the case of the sender or of the stored account', async () => {
  const accounts = [
    { email: 'Alice@Contoso.test', mailbox: 'Alice@Contoso.test' },
    { email: 'relay-app', mailbox: 'Relay@Contoso.test' },
  ];
  const r = router('relay: {}\n', accounts);
  const account = async (sender: string) => {
    const route = await r.route({ sender, recipient: RCPT });
    return route.kind === 'transport' && route.spec.type === 'smtp' ? route.spec.account : route.kind;
  };
  assert.equal(await account('ALICE@contoso.test'), 'Alice@Contoso.test');
  assert.equal(await account('relay@contoso.TEST'), 'relay-app');
  assert.equal(await account('carol@contoso.test'), 'none');
});

test('RoutingRules.rejection: the message of a reject route, undefined for any other route', () => {
  const { config } = parseConfigText('relay:\n  routes:\n    blocked: { type: reject, message: Not here }\n    out: { type: mx }\n  rules:\n    - { recipient_domain: fabrikam.test, route: blocked }\n    - { sender: "@contoso.test", route: out }\n', 'reject.yaml');
  const rules = new RoutingRules(config.relay);
  assert.equal(rules.canReject, true);
  assert.equal(rules.rejection({ sender: SENDER, recipient: 'bob@FABRIKAM.test' }), 'Not here');
  assert.equal(rules.rejection({ sender: SENDER, recipient: 'bob@other.test' }), undefined);
  assert.equal(rules.rejection({ sender: 'x@other.test', recipient: 'bob@other.test' }), undefined, 'by-sender is never a reject');
  const none = new RoutingRules(parseConfigText('relay: {}\n', 'none.yaml').config.relay);
  assert.equal(none.canReject, false);
  assert.equal(none.rejection({ sender: SENDER, recipient: RCPT }), undefined);
});
