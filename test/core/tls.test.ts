/**
 * An extra CA file (`delivery.ca_file`, a route's `ca_file`, `--ca-file`) is added to Node's
 * built-in roots, never put in their place: a private CA for one server must not make every
 * public endpoint (the identity platform, Graph) untrusted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import tls from 'node:tls';
import { join } from 'node:path';
import { trustedCas } from '../../src/core/tls.js';
import { makeFetch } from '../../src/oauth/http.js';
import { loadOrCreateTls } from '../../src/sandbox/ca.js';
import { tempDir } from '../helpers/cli.js';

test('trustedCas: every built-in root, then the file; nothing without a file', () => {
  const { caFile, ca } = loadOrCreateTls(join(tempDir('relay365-ca-'), 'tls'));
  const list = trustedCas(caFile)!;
  assert.equal(list.length, tls.rootCertificates.length + 1);
  assert.deepEqual(list.slice(0, -1), [...tls.rootCertificates]);
  assert.equal(list.at(-1), ca);
  assert.equal(trustedCas(undefined), undefined, 'no file: Node decides (its own roots)');
  assert.throws(() => trustedCas(join(tempDir('relay365-ca-'), 'missing.pem')), /ENOENT/);
});

test('token and Graph requests (makeFetch) trust a server signed by the extra CA, and only with it', async (t) => {
  const { caFile, key, cert } = loadOrCreateTls(join(tempDir('relay365-ca-'), 'tls'));
  const server = https.createServer({ key, cert }, (_req, res) => res.end('ok'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => server.close(r)));
  const url = `https://127.0.0.1:${(server.address() as { port: number }).port}/`;

  const withCa = await makeFetch({ caFile, timeoutMs: 5_000 })(url);
  assert.equal(await withCa.text(), 'ok');
  await assert.rejects(makeFetch({ timeoutMs: 5_000 })(url), (err: Error & { cause?: { code?: string } }) => /CERT|SIGNATURE|SELF_SIGNED|VERIFY/.test(String(err.cause?.code ?? err.message)), 'the built-in roots alone do not know the private CA');
});
