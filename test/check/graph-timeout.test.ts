/**
 * A Graph endpoint that takes the connection, completes TLS, reads the request and never answers:
 * the check must give up after its timeout with the usual failed step, cause and fix, not hang.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { dirname } from 'node:path';
import { loadOrCreateTls } from '../../src/sandbox/ca.js';
import { runCheck } from '../../src/check/index.js';
import { checkFixture, failure, ALICE, type CheckFixture } from './fixture.js';

let f: CheckFixture;
let silent: Server;
let graphUrl: string;
const requests: string[] = [];
const sockets = new Set<Socket>();

before(async () => {
  f = await checkFixture(['alice']);
  // The sandbox's own certificate (127.0.0.1 is on it), so the TCP and TLS steps pass as they would against Graph.
  const { key, cert } = loadOrCreateTls(dirname(f.sb.caFile));
  silent = createServer({ key, cert }, (req) => {
    requests.push(`${req.method} ${req.url}`);
    // No response, ever.
  });
  silent.on('secureConnection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  graphUrl = `https://127.0.0.1:${(silent.address() as AddressInfo).port}`;
});

after(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => silent.close(() => resolve()));
  await f.stop();
});

test('Graph: an endpoint that never answers fails the auth step within the timeout, with a cause and a fix', async () => {
  const started = Date.now();
  const report = await runCheck({ account: ALICE, protocols: ['graph'], tokens: f.tokens, endpoints: {}, graphUrl, caFile: f.sb.caFile, timeoutMs: 1000 });
  const elapsed = Date.now() - started;
  assert.equal(report.ok, false);
  assert.ok(requests.some((r) => r.startsWith('POST /v1.0/users/')), `the request reached the server: ${requests.join(', ')}`);
  const s = failure(report);
  assert.equal(s.id, 'auth');
  assert.match(s.detail, /^127\.0\.0\.1:\d+: no answer within 1000 ms/);
  assert.ok(s.durationMs >= 900 && s.durationMs < 3000, `the step gave up after about a second (${s.durationMs} ms)`);
  assert.ok(elapsed < 10_000, `the whole check ended (${elapsed} ms)`);
  assert.equal(s.explanation!.id, 'no-answer');
  assert.equal(s.explanation!.temporary, true);
  assert.match(s.explanation!.en.cause, /accepted the connection but did not answer in time/);
  assert.match(s.explanation!.en.fix, /proxy or firewall/);
  assert.match(s.explanation!.ja.cause, /時間内に応答しませんでした/);
  const steps = report.protocols[0]!.steps;
  for (const id of ['tcp', 'tls', 'token']) assert.equal(steps.find((x) => x.id === id)!.status, 'pass', `${id} passed`);
  assert.equal(steps.find((x) => x.id === 'test-message')!.status, 'skip');
});
