import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { createCertificate } from '../../src/sandbox/ca.js';
import { createTransport, type Transport } from '../../src/transport/index.js';
import { TransportError } from '../../src/core/errors.js';
import { tempDir } from '../helpers/cli.js';

const SENDER = 'printer@example.org';
let caFile: string;
let tlsKey: string;
let tlsCert: string;

before(() => {
  const ca = createCertificate({ commonName: 'smarthost test CA', isCa: true });
  const server = createCertificate({ commonName: 'localhost', altNames: [{ dns: 'localhost' }, { ip: '127.0.0.1' }], issuer: ca });
  caFile = join(tempDir(), 'ca.pem');
  writeFileSync(caFile, ca.certPem);
  tlsKey = server.keyPem;
  tlsCert = server.certPem;
});

interface Received {
  from: string;
  to: string[];
  body: Buffer;
  secure: boolean;
}

interface AuthAttempt {
  method: string;
  username?: string;
  password?: string;
  secure: boolean;
}

/** A real smtp-server on a free loopback port that records what it was given. */
async function smarthost(options: Partial<SMTPServerOptions> = {}): Promise<{ port: number; received: Received[]; auths: AuthAttempt[]; stop(): Promise<void> }> {
  const received: Received[] = [];
  const auths: AuthAttempt[] = [];
  const server = new SMTPServer({
    key: tlsKey,
    cert: tlsCert,
    logger: false,
    authMethods: ['PLAIN', 'LOGIN'],
    onAuth(auth, session, cb) {
      auths.push({ method: auth.method, username: auth.username, password: auth.password ?? undefined, secure: !!session.secure });
      if (auth.username === 'relay' && auth.password === 'relay-secret') cb(null, { user: auth.username });
      else cb(Object.assign(new Error('5.7.8 Authentication credentials invalid'), { responseCode: 535 }));
    },
    onData(stream, session: SMTPServerSession, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        received.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          body: Buffer.concat(chunks),
          secure: !!session.secure,
        });
        cb();
      });
    },
    ...options,
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = ((server as unknown as { server: { address(): AddressInfo } }).server.address() as AddressInfo).port;
  return { port, received, auths, stop: () => new Promise<void>((r) => server.close(() => r())) };
}

const message = (id: string) => Buffer.from(`From: ${SENDER}\r\nTo: ops@example.net\r\nSubject: ${id}\r\nMessage-ID: <${id}@example.org>\r\n\r\nline one\r\n.line starting with a dot\r\n`);
const source = (raw: Buffer) => () => Readable.from([raw]);

async function using<T>(t: Transport, run: (t: Transport) => Promise<T>): Promise<T> {
  try {
    return await run(t);
  } finally {
    await t.close();
  }
}

for (const method of ['PLAIN', 'LOGIN'] as const) {
  test(`STARTTLS then AUTH ${method}: envelope and body arrive intact`, async (t) => {
    const host = await smarthost({ authMethods: [method] });
    t.after(() => host.stop());
    const raw = message(`auth-${method}`);
    const result = await using(createTransport({ type: 'smarthost', host: '127.0.0.1', port: host.port, security: 'starttls', user: 'relay', password: 'relay-secret', caFile }, {}), (x) =>
      x.deliver({ from: SENDER, to: ['ops@example.net', 'oncall@example.net'] }, source(raw)),
    );
    assert.deepEqual(result.accepted, ['ops@example.net', 'oncall@example.net']);
    assert.deepEqual(result.rejected, []);
    assert.match(result.response, /^250 /);
    assert.deepEqual(host.auths, [{ method, username: 'relay', password: 'relay-secret', secure: true }]);
    assert.equal(host.received.length, 1);
    const got = host.received[0]!;
    assert.equal(got.secure, true);
    assert.equal(got.from, SENDER);
    assert.deepEqual(got.to, ['ops@example.net', 'oncall@example.net']);
    assert.equal(got.body.toString(), raw.toString(), 'dot-stuffing round-trips and nothing is rewritten');
  });
}

test('without credentials: no AUTH, delivered over STARTTLS (opportunistic default), null sender kept', async (t) => {
  const host = await smarthost({ authOptional: true });
  t.after(() => host.stop());
  const raw = message('noauth');
  const result = await using(createTransport({ type: 'smarthost', host: '127.0.0.1', port: host.port, caFile }, {}), (x) => x.deliver({ from: '', to: ['ops@example.net'] }, source(raw)));
  assert.deepEqual(result.accepted, ['ops@example.net']);
  assert.deepEqual(host.auths, []);
  assert.equal(host.received.length, 1);
  assert.equal(host.received[0]!.secure, true, 'STARTTLS is used when offered');
  assert.equal(host.received[0]!.from, '', 'bounces keep MAIL FROM:<>');
  assert.equal(host.received[0]!.body.toString(), raw.toString());
});

test('credentials are never sent in clear: no STARTTLS offered → refused before AUTH', async (t) => {
  // The server offers AUTH without TLS and would accept it; only the client can keep the password safe.
  const host = await smarthost({ disabledCommands: ['STARTTLS'], allowInsecureAuth: true });
  t.after(() => host.stop());
  for (const security of ['starttls', undefined] as const) {
    await assert.rejects(
      using(createTransport({ type: 'smarthost', host: '127.0.0.1', port: host.port, security, user: 'relay', password: 'relay-secret', caFile }, {}), (x) => x.deliver({ from: SENDER, to: ['ops@example.net'] }, source(message('cleartext')))),
      (e: unknown) => {
        assert.ok(e instanceof TransportError, String(e));
        assert.equal(e.temporary, false, `${security ?? 'default'}: a missing STARTTLS will not fix itself on retry`);
        return true;
      },
      `security=${security ?? 'default'}`,
    );
  }
  assert.deepEqual(host.auths, [], 'the password never crossed the wire');
  assert.deepEqual(host.received, []);
});

test('wrong password → permanent SMTP_AUTH error with the 535 reply', async (t) => {
  const host = await smarthost();
  t.after(() => host.stop());
  await assert.rejects(
    using(createTransport({ type: 'smarthost', host: '127.0.0.1', port: host.port, security: 'starttls', user: 'relay', password: 'wrong', caFile }, {}), (x) => x.deliver({ from: SENDER, to: ['ops@example.net'] }, source(message('badpw')))),
    (e: unknown) => {
      assert.ok(e instanceof TransportError);
      assert.equal(e.temporary, false);
      assert.equal(e.smtp?.code, 535);
      assert.equal(e.code, 'SMTP_AUTH');
      assert.ok(!e.message.includes('wrong'), 'no password in the message');
      return true;
    },
  );
  assert.equal(host.auths.length, 1);
  assert.equal(host.auths[0]!.secure, true);
});

test('4xx replies are temporary, 5xx permanent: per recipient and for the whole transaction', async (t) => {
  const reply = (code: number, text: string) => Object.assign(new Error(text), { responseCode: code });
  const host = await smarthost({
    authOptional: true,
    onMailFrom(address, _session, cb) {
      if (address.address === 'busy@example.org') return cb(reply(451, '4.3.0 Mail server temporarily rejected message'));
      if (address.address === 'blocked@example.org') return cb(reply(550, '5.7.1 Sender blocked by policy'));
      cb();
    },
    onRcptTo(address, _session, cb) {
      if (address.address === 'full@example.net') return cb(reply(452, '4.2.2 Mailbox full'));
      if (address.address === 'nobody@example.net') return cb(reply(550, '5.1.1 User unknown'));
      cb();
    },
  });
  t.after(() => host.stop());
  const x = createTransport({ type: 'smarthost', host: '127.0.0.1', port: host.port, caFile }, {});
  t.after(() => x.close());

  const partial = await x.deliver({ from: SENDER, to: ['ops@example.net', 'full@example.net', 'nobody@example.net'] }, source(message('partial')));
  assert.deepEqual(partial.accepted, ['ops@example.net']);
  const byRcpt = Object.fromEntries(partial.rejected.map((r) => [r.recipient, r]));
  assert.equal(byRcpt['full@example.net']?.temporary, true);
  assert.equal(byRcpt['full@example.net']?.reply.code, 452);
  assert.equal(byRcpt['nobody@example.net']?.temporary, false);
  assert.equal(byRcpt['nobody@example.net']?.reply.enhanced, '5.1.1');
  assert.deepEqual(host.received.at(-1)!.to, ['ops@example.net']);

  const cases: Array<[string, string[], number, boolean]> = [
    ['busy@example.org', ['ops@example.net'], 451, true],
    ['blocked@example.org', ['ops@example.net'], 550, false],
    [SENDER, ['nobody@example.net'], 550, false],
    [SENDER, ['full@example.net'], 452, true],
  ];
  for (const [from, to, code, temporary] of cases) {
    await assert.rejects(x.deliver({ from, to }, source(message('fail'))), (e: unknown) => {
      assert.ok(e instanceof TransportError, String(e));
      assert.equal(e.smtp?.code, code, `${from} → ${to}: ${e.message}`);
      assert.equal(e.temporary, temporary, e.message);
      return true;
    });
  }
});

test('a 4xx/5xx at end of DATA maps to the right temporary flag', async (t) => {
  let next: [number, string] | undefined;
  const host = await smarthost({
    authOptional: true,
    onData(stream, _session, cb) {
      stream.resume();
      stream.on('end', () => {
        const [code, text] = next!;
        cb(Object.assign(new Error(text), { responseCode: code }));
      });
    },
  });
  t.after(() => host.stop());
  const x = createTransport({ type: 'smarthost', host: '127.0.0.1', port: host.port, caFile }, {});
  t.after(() => x.close());
  for (const [code, text, temporary] of [[421, '4.3.2 Service shutting down', true], [451, '4.7.1 Greylisted, try again', true], [554, '5.6.0 Message rejected as spam', false]] as const) {
    next = [code, text];
    await assert.rejects(x.deliver({ from: SENDER, to: ['ops@example.net'] }, source(message(`data-${code}`))), (e: unknown) => {
      assert.ok(e instanceof TransportError, String(e));
      assert.equal(e.smtp?.code, code, e.message);
      assert.equal(e.temporary, temporary, e.message);
      assert.match(e.message, new RegExp(text.split(' ')[0]!.replace(/\./g, '\\.')));
      return true;
    });
  }
});
