/**
 * The mx transport against a real MTA: Debian Postfix is the MX of the test domains, and a DNS
 * server on 127.0.0.1 (UDP, dns-packet) answers for them. Covers MX preference order with a dead
 * first MX, the A fallback without MX (RFC 5321 §5.1), null MX (RFC 7505), NXDOMAIN,
 * opportunistic STARTTLS to a self-signed MX certificate and one connection per domain.
 * Skipped when Postfix (or root) is missing.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { Readable } from 'node:stream';
import { randomUUID } from 'node:crypto';
import dnsPacket from 'dns-packet';
import { postfixMissing, startPostfix, type Postfix } from '../helpers/postfix.js';
import { MxTransport } from '../../src/transport/mx.js';
import { TransportError } from '../../src/core/errors.js';
import { createCertificate } from '../../src/sandbox/ca.js';

const skip = postfixMissing();

/** name → records; a name absent from the zone is NXDOMAIN. Names are lower case, no trailing dot. */
type Zone = Record<string, { MX?: Array<{ preference: number; exchange: string }>; A?: string[] }>;

const ZONE: Zone = {
  // The usual case: one MX host.
  'mx.test': { MX: [{ preference: 10, exchange: 'mail.mx.test' }] },
  'mail.mx.test': { A: ['127.0.0.1'] },
  // Two MX hosts; the preferred one (lower number) is listed second and refuses connections
  // (nothing listens on 127.0.0.2), so delivery has to sort and then fall through.
  'pref.test': { MX: [{ preference: 20, exchange: 'backup.pref.test' }, { preference: 5, exchange: 'dead.pref.test' }] },
  'dead.pref.test': { A: ['127.0.0.2'] },
  'backup.pref.test': { A: ['127.0.0.1'] },
  // No MX: the domain's own address record is the implicit MX.
  'amx.test': { A: ['127.0.0.1'] },
  // RFC 7505 null MX: "this domain accepts no mail".
  'nullmx.test': { MX: [{ preference: 0, exchange: '.' }], A: ['127.0.0.1'] },
};

interface DnsServer {
  port: number;
  queries: string[];
  close(): Promise<void>;
}

async function startDns(zone: Zone): Promise<DnsServer> {
  const socket = dgram.createSocket('udp4');
  const queries: string[] = [];
  socket.on('message', (msg, peer) => {
    let query: dnsPacket.DecodedPacket;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return;
    }
    const q = query.questions?.[0];
    if (!q) return;
    const name = q.name.toLowerCase().replace(/\.$/, '');
    queries.push(`${q.type} ${name}`);
    const node = zone[name];
    const answers: dnsPacket.Answer[] = [];
    if (node && q.type === 'MX') for (const mx of node.MX ?? []) answers.push({ type: 'MX', name: q.name, ttl: 60, data: mx });
    if (node && q.type === 'A') for (const a of node.A ?? []) answers.push({ type: 'A', name: q.name, ttl: 60, data: a });
    // NOERROR with no answers (NODATA) for a known name, NXDOMAIN (rcode 3) for an unknown one.
    const rcode = node ? 0 : 3;
    const reply = dnsPacket.encode({
      type: 'response',
      id: query.id,
      flags: dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | rcode,
      questions: query.questions,
      answers,
    });
    socket.send(reply, peer.port, peer.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => resolve());
  });
  return { port: socket.address().port, queries, close: () => new Promise((resolve) => socket.close(() => resolve())) };
}

let dns: DnsServer;
let pf: Postfix;
let mx: MxTransport;

before(async () => {
  if (skip) return;
  dns = await startDns(ZONE);
  // A self-signed certificate, as many MX hosts have: opportunistic TLS must not insist on a chain.
  const cert = createCertificate({ commonName: 'mail.mx.test', altNames: [{ dns: 'mail.mx.test' }] });
  pf = await startPostfix({ domains: ['mx.test', 'pref.test', 'amx.test', 'nullmx.test'], tls: cert, hostname: 'mail.mx.test' });
  mx = new MxTransport({ resolvers: [`127.0.0.1:${dns.port}`], port: pf.port, name: 'relay.test', timeoutMs: 10_000 });
});

after(async () => {
  await mx?.close();
  await pf?.stop();
  await dns?.close();
});

function message(id: string, to: string): () => Readable {
  const raw = [`From: sender@relay.test`, `To: ${to}`, `Subject: mx ${id}`, `Message-ID: <${id}>`, '', 'Hello over MX.', ''].join('\r\n');
  return () => Readable.from([Buffer.from(raw)]);
}

/** Postfix log lines written since `mark` (the log length before). */
function logSince(mark: number): string {
  return pf.logTail(100_000).slice(mark);
}

test('MX lookup → Postfix; two recipients in the domain share one connection, over STARTTLS', { skip }, async () => {
  const id = `${randomUUID()}@relay.test`;
  const mark = pf.logTail(100_000).length;
  const r = await mx.deliver({ from: 'sender@relay.test', to: ['anna@mx.test', 'ben@MX.test'] }, message(id, 'anna@mx.test, ben@mx.test'));
  assert.deepEqual(r.accepted.sort(), ['anna@mx.test', 'ben@MX.test'].sort());
  assert.deepEqual(r.rejected, []);
  assert.match(r.response, /^mx\.test: 250 2\.0\.0 Ok: queued as /);
  assert.ok(dns.queries.includes('MX mx.test') && dns.queries.includes('A mail.mx.test'), dns.queries.join(', '));

  const anna = await pf.waitForMessages(1, { recipient: 'anna@mx.test' });
  const ben = await pf.waitForMessages(1, { recipient: 'ben@mx.test' });
  for (const m of [...anna, ...ben]) {
    const text = m.raw.toString();
    assert.match(text, new RegExp(`^Message-ID: <${id}>$`, 'm'));
    // Postfix's Received: header records the encrypted session (ESMTPS) and the EHLO name.
    assert.match(text, /^Received: from relay\.test \(unknown \[127\.0\.0\.1\]\)\n(?:\t.*\n)*?\t.*by mail\.mx\.test \(Postfix\) with ESMTPS id /m);
  }
  const log = logSince(mark);
  // One SMTP session carried the message (and both recipients).
  assert.equal(log.match(/disconnect from .* mail=/g)?.length, 1, log);
  assert.match(log, /Anonymous TLS connection established from unknown\[127\.0\.0\.1\]/);
  assert.match(log, /disconnect from unknown\[127\.0\.0\.1\] ehlo=2 starttls=1 mail=1 rcpt=2 data=1/);
});

test('MX preference order: the preferred MX refuses connections, the next one gets the mail', { skip }, async () => {
  const id = `${randomUUID()}@relay.test`;
  const r = await mx.deliver({ from: 'sender@relay.test', to: ['carl@pref.test'] }, message(id, 'carl@pref.test'));
  assert.deepEqual(r.accepted, ['carl@pref.test']);
  const hosts = await mx.hostsFor('pref.test');
  assert.deepEqual(hosts, ['dead.pref.test', 'backup.pref.test']);
  const [m] = await pf.waitForMessages(1, { recipient: 'carl@pref.test' });
  assert.match(m!.raw.toString(), new RegExp(`^Message-ID: <${id}>$`, 'm'));
});

test('no MX record: falls back to the domain\'s A record (RFC 5321 §5.1)', { skip }, async () => {
  const id = `${randomUUID()}@relay.test`;
  assert.deepEqual(await mx.hostsFor('amx.test'), ['amx.test']);
  const r = await mx.deliver({ from: 'sender@relay.test', to: ['dora@amx.test'] }, message(id, 'dora@amx.test'));
  assert.deepEqual(r.accepted, ['dora@amx.test']);
  assert.ok(dns.queries.includes('A amx.test'));
  const [m] = await pf.waitForMessages(1, { recipient: 'dora@amx.test' });
  assert.match(m!.raw.toString(), new RegExp(`^Message-ID: <${id}>$`, 'm'));
});

test('null MX (RFC 7505) and NXDOMAIN fail permanently, without connecting', { skip }, async () => {
  const mark = pf.logTail(100_000).length;
  for (const [rcpt, pattern] of [
    ['eve@nullmx.test', /nullmx\.test does not accept mail \(null MX\)/],
    ['fay@nx.test', /Host or domain name not found: nx\.test/],
  ] as const) {
    const err = await mx.deliver({ from: 'sender@relay.test', to: [rcpt] }, message(`${randomUUID()}@relay.test`, rcpt)).then(
      () => assert.fail(`${rcpt} was accepted`),
      (e: unknown) => e,
    );
    assert.ok(err instanceof TransportError, String(err));
    assert.equal(err.temporary, false, `${rcpt}: ${err.message}`);
    assert.match(err.message, pattern);
  }
  // Not even the A record of the null-MX domain was used. (\b: the previous test's session may
  // still log its "disconnect from" now.)
  assert.doesNotMatch(logSince(mark), /\bconnect from/);
  assert.equal(pf.messages('eve@nullmx.test').length, 0);
});

test('two domains in one message: one delivered, the null-MX one rejected per recipient', { skip }, async () => {
  const id = `${randomUUID()}@relay.test`;
  const r = await mx.deliver({ from: 'sender@relay.test', to: ['gus@mx.test', 'hal@nullmx.test'] }, message(id, 'gus@mx.test, hal@nullmx.test'));
  assert.deepEqual(r.accepted, ['gus@mx.test']);
  assert.equal(r.rejected.length, 1);
  assert.equal(r.rejected[0]!.recipient, 'hal@nullmx.test');
  assert.equal(r.rejected[0]!.temporary, false);
  await pf.waitForMessages(1, { recipient: 'gus@mx.test' });
});
