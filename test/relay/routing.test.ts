/**
 * The router (src/relay/routing.ts): rules, first match wins → a named route.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Router } from '../../src/relay/routing.js';
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
