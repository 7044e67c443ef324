/**
 * The mx transport's opportunistic TLS against smtp-server on a free loopback port: when the
 * STARTTLS handshake fails the host is tried again in plaintext and the recorded reply says so;
 * when it works the certificate is not checked, and delivery.ca_file never reaches the route.
 * MX lookups are beside the point here: the domain's only MX is 127.0.0.1.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { createCertificate } from '../../src/sandbox/ca.js';
import { MxTransport } from '../../src/transport/mx.js';
import { createTransport } from '../../src/transport/index.js';
import { Router } from '../../src/relay/routing.js';
import { parseConfigText } from '../../src/config/index.js';
import { tempDir } from '../helpers/cli.js';

let tlsKey: string;
let tlsCert: string;

before(() => {
  // Self-signed, for a name that is not the MX's: what many MX hosts present.
  const c = createCertificate({ commonName: 'mx.elsewhere.example' });
  tlsKey = c.keyPem;
  tlsCert = c.certPem;
});

interface Mx {
  port: number;
  connections: number;
  handshakes: number;
  tlsErrors: string[];
  received: Array<{ to: string[]; secure: boolean; body: string }>;
  stop(): Promise<void>;
}

async function mxServer(options: Partial<SMTPServerOptions> = {}): Promise<Mx> {
  const mx: Omit<Mx, 'port' | 'stop'> = { connections: 0, handshakes: 0, tlsErrors: [], received: [] };
  const server = new SMTPServer({
    key: tlsKey,
    cert: tlsCert,
    logger: false,
    authOptional: true,
    onConnect(_session, cb) {
      mx.connections++;
      cb();
    },
    onSecure(_socket, _session, cb) {
      mx.handshakes++;
      cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        mx.received.push({ to: session.envelope.rcptTo.map((r) => r.address), secure: !!session.secure, body: Buffer.concat(chunks).toString() });
        cb();
      });
    },
    ...options,
  });
  // smtp-server reports the failed handshake as a server error; without a listener it would be thrown.
  server.on('error', (e: Error) => mx.tlsErrors.push(e.message));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = ((server as unknown as { server: { address(): AddressInfo } }).server.address() as AddressInfo).port;
  return Object.assign(mx, { port, stop: () => new Promise<void>((r) => server.close(() => r())) });
}

function mxTransport(port: number): MxTransport {
  const t = new MxTransport({ port, name: 'relay.example.org', timeoutMs: 5000 });
  t.hostsFor = async () => ['127.0.0.1'];
  return t;
}

const RCPT = 'ops@fallback.test';
const message = (id: string) => () => Readable.from([Buffer.from(`From: printer@example.org\r\nTo: ${RCPT}\r\nSubject: ${id}\r\n\r\nbody of ${id}\r\n`)]);

test('a failed STARTTLS handshake: the MX is tried again in plaintext, and the reply says the message went without TLS', async () => {
  // STARTTLS is advertised, but the server speaks nothing newer than TLS 1.1 and relay365 asks for
  // 1.2 at least, so the handshake fails after the 220 to STARTTLS — an old MX's usual way to fail.
  const mx = await mxServer({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1' } as Partial<SMTPServerOptions>);
  try {
    const r = await mxTransport(mx.port).deliver({ from: 'printer@example.org', to: [RCPT] }, message('fallback'));
    assert.deepEqual(r.accepted, [RCPT]);
    assert.deepEqual(r.rejected, []);
    assert.equal(mx.connections, 2, 'one connection for the TLS attempt, one in plaintext');
    assert.equal(mx.handshakes, 0, 'no TLS session was ever established');
    assert.ok(mx.tlsErrors.some((e) => /protocol/i.test(e)), `the server saw the handshake fail: ${mx.tlsErrors.join('; ')}`);
    assert.equal(mx.received.length, 1, 'delivered once');
    assert.equal(mx.received[0]!.secure, false, 'delivered in plaintext');
    assert.deepEqual(mx.received[0]!.to, [RCPT]);
    assert.match(mx.received[0]!.body, /body of fallback/);
    // The reply the relay records for this delivery attempt (queue view, logs) names the downgrade and why.
    assert.match(r.response, /^fallback\.test: 250 .*\(sent without TLS: the TLS handshake with 127\.0\.0\.1 failed: [^\n]*protocol version\)$/);
    assert.equal(r.route, 'mx');
  } finally {
    await mx.stop();
  }
});

test('a working STARTTLS: delivered over TLS to an unverifiable certificate, without reading the CA file', async () => {
  const mx = await mxServer();
  try {
    // delivery.ca_file names a file that does not exist: reading it would throw ENOENT before any
    // connection. The route the router builds from it carries no CA at all.
    const { config } = parseConfigText(`delivery:\n  ca_file: ${join(tempDir(), 'no-such-ca.pem')}\nrelay:\n  routes:\n    out: { type: mx, port: ${mx.port} }\n  default_route: out\n`, 'mx.yaml');
    const route = await new Router(config.relay, config.delivery, async () => []).route({ sender: 'printer@example.org', recipient: RCPT });
    assert.ok(route.kind === 'transport' && route.spec.type === 'mx', JSON.stringify(route));
    assert.ok(!('caFile' in route.spec), JSON.stringify(route.spec));
    const t = createTransport(route.spec, { heloName: 'relay.example.org' }) as MxTransport;
    t.hostsFor = async () => ['127.0.0.1'];
    const r = await t.deliver({ from: 'printer@example.org', to: [RCPT] }, message('tls'));
    assert.deepEqual(r.accepted, [RCPT]);
    assert.equal(mx.connections, 1);
    assert.equal(mx.handshakes, 1);
    assert.equal(mx.received[0]!.secure, true, 'delivered over TLS');
    assert.doesNotMatch(r.response, /without TLS/);
  } finally {
    await mx.stop();
  }
});
