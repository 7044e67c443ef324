import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { simpleParser } from 'mailparser';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import { sandbox, https, appToken } from '../helpers/sandbox.js';
import { tempDir } from '../helpers/cli.js';
import { addAccount } from '../helpers/accounts.js';
import { openTokenManager, type TokenManager } from '../../src/oauth/index.js';
import { GraphTransport } from '../../src/transport/index.js';
import { graphRequests, type GraphRequestRecord } from '../../src/sandbox/mail/graph.js';
import type { Sandbox } from '../../src/sandbox/index.js';

const ALICE = 'alice@contoso.onmicrosoft.com';
const BOB = 'bob@contoso.onmicrosoft.com';
const CAROL = 'carol@contoso.onmicrosoft.com';
const APP = 'info@contoso.onmicrosoft.com';
let sb: Sandbox;
let tokens: TokenManager;

before(async () => {
  sb = await sandbox();
  const state = tempDir();
  await addAccount(sb, state, APP, { app: true, scopes: 'graph' });
  tokens = openTokenManager({ stateDir: state });
});
after(() => sb.stop());

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function compose(options: ConstructorParameters<typeof MailComposer>[0]): Promise<Buffer> {
  return new Promise((resolve, reject) => new MailComposer(options).compile().build((err: Error | null, msg: Buffer) => (err ? reject(err) : resolve(msg))));
}

/** The Graph requests made while `run` ran. */
async function requestsDuring<T>(run: () => Promise<T>): Promise<{ result: T; requests: GraphRequestRecord[] }> {
  const log = graphRequests(sb.mail);
  const from = log.length;
  const result = await run();
  return { result, requests: log.slice(from) };
}

function inbox(address: string, messageId: string): Buffer {
  const found = sb.mail.mailbox(address).messages.filter((m) => m.raw.includes(Buffer.from(messageId)));
  assert.equal(found.length, 1, `exactly one copy of ${messageId} in ${address}`);
  return found[0]!.raw;
}

test('a 9 MB message with a 7 MB attachment goes through a draft and an upload session', async () => {
  const big = randomBytes(7 * 1024 * 1024);
  const small = randomBytes(200 * 1024);
  const raw = await compose({
    from: ALICE,
    to: BOB,
    // Only in the header, not in the envelope: Graph must not deliver to it.
    cc: 'dave@fabrikam.example',
    subject: 'quarterly figures',
    text: 'see attached',
    messageId: '<upload-1@contoso>',
    headers: { 'X-Relay-Test': 'upload-1' },
    attachments: [
      { filename: 'figures.bin', content: big, contentType: 'application/octet-stream' },
      { filename: 'notes.bin', content: small, contentType: 'application/octet-stream' },
    ],
  });
  assert.ok(raw.length > 9 * 1024 * 1024, `message is ${raw.length} bytes`);

  const g = new GraphTransport({ account: APP, baseUrl: sb.endpoints.graph, caFile: sb.caFile }, { tokens });
  // CAROL is an envelope-only (Bcc) recipient.
  const { result, requests } = await requestsDuring(() => g.deliver({ from: ALICE, to: [BOB, CAROL] }, () => Readable.from([raw])));
  assert.equal(result.response, '202 Accepted');
  assert.deepEqual(result.accepted, [BOB, CAROL]);

  const ops = requests.map((r) => r.op);
  assert.ok(!ops.includes('sendMail'), 'too large for sendMail');
  assert.equal(ops[0], 'createMessage');
  assert.equal(ops.at(-1), 'send');
  assert.equal(ops.filter((o) => o === 'addAttachment').length, 1, 'the 200 KB file is attached with one POST');
  assert.equal(ops.filter((o) => o === 'createUploadSession').length, 1, 'the 7 MB file needs an upload session');
  const fragments = requests.filter((r) => r.op === 'uploadFragment');
  assert.ok(fragments.length >= 3, `several fragments, got ${fragments.length}`);
  assert.ok(fragments.every((f) => !f.authorization), 'no bearer token is sent to the upload URL');
  assert.deepEqual(fragments.map((f) => f.status), [...fragments.slice(1).map(() => 200), 201]);
  let next = 0;
  for (const f of fragments) {
    const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(f.range ?? '');
    assert.ok(m, f.range);
    assert.equal(Number(m[1]), next, 'contiguous ranges');
    assert.equal(Number(m[3]), big.length);
    const size = Number(m[2]) - Number(m[1]) + 1;
    if (Number(m[2]) < big.length - 1) assert.equal(size % (320 * 1024), 0, 'non-final fragments are 320 KiB multiples');
    next = Number(m[2]) + 1;
  }
  assert.equal(next, big.length);
  assert.ok(requests.every((r) => r.status < 300), JSON.stringify(requests.filter((r) => r.status >= 300)));

  const out = sb.mail.outbound().find((o) => o.messageId === 'upload-1@contoso');
  assert.ok(out, 'Message-ID kept');
  assert.deepEqual([...out.to].sort(), [BOB, CAROL]);

  for (const rcpt of [BOB, CAROL]) {
    const delivered = inbox(rcpt, 'upload-1@contoso');
    const parsed = await simpleParser(delivered);
    assert.equal(parsed.subject, 'quarterly figures');
    assert.equal(parsed.text?.trim(), 'see attached');
    assert.equal(parsed.headers.get('x-relay-test'), 'upload-1');
    const byName = new Map(parsed.attachments.map((a) => [a.filename, a.content]));
    assert.equal(sha256(byName.get('figures.bin')!), sha256(big));
    assert.equal(sha256(byName.get('notes.bin')!), sha256(small));
    // The Bcc recipient is delivered to but never named in what recipients see.
    const head = delivered.subarray(0, delivered.indexOf('\r\n\r\n')).toString();
    assert.doesNotMatch(head, /^bcc:/im);
    assert.ok(!head.toLowerCase().includes(CAROL), 'Bcc recipient not in headers');
    assert.ok(!head.includes('dave@fabrikam.example'), 'non-envelope recipient left out of the draft');
  }
  assert.ok(!sb.mail.outbound().some((o) => o.to.includes('dave@fabrikam.example')));
});

test('a small message still goes through one sendMail; envelope-only recipients become Bcc', async () => {
  const raw = Buffer.from(`From: ${ALICE}\r\nTo: ${BOB}\r\nSubject: small\r\nMessage-ID: <small-1@contoso>\r\n\r\nsmall body\r\n`);
  const g = new GraphTransport({ account: APP, baseUrl: sb.endpoints.graph, caFile: sb.caFile }, { tokens });
  const { result, requests } = await requestsDuring(() => g.deliver({ from: ALICE, to: [BOB, CAROL] }, () => Readable.from([raw])));
  assert.equal(result.response, '202 Accepted');
  assert.deepEqual(requests.map((r) => [r.op, r.status]), [['sendMail', 202]]);
  const out = sb.mail.outbound().find((o) => o.messageId === 'small-1@contoso');
  assert.deepEqual([...out!.to].sort(), [BOB, CAROL]);
  for (const rcpt of [BOB, CAROL]) {
    const delivered = inbox(rcpt, 'small-1@contoso').toString();
    assert.doesNotMatch(delivered, /^bcc:/im);
    assert.match(delivered, /\r\n\r\nsmall body\r\n$/);
  }
});

test('throttling during the draft route is waited out (Retry-After)', async () => {
  const raw = await compose({ from: ALICE, to: BOB, subject: 'throttled', text: 'x', messageId: '<upload-429@contoso>', attachments: [{ filename: 'a.bin', content: randomBytes(4 * 1024 * 1024) }] });
  sb.faults.add({ stage: 'graph.sendMail', action: { kind: 'http', status: 429, retryAfter: 1 } });
  const g = new GraphTransport({ account: APP, baseUrl: sb.endpoints.graph, caFile: sb.caFile }, { tokens });
  const started = Date.now();
  const { requests } = await requestsDuring(() => g.deliver({ from: ALICE, to: [BOB] }, () => Readable.from([raw])));
  assert.ok(Date.now() - started >= 1000, 'waited for Retry-After');
  assert.deepEqual(requests.slice(0, 2).map((r) => [r.op, r.status]), [['createMessage', 429], ['createMessage', 201]]);
  const parsed = await simpleParser(inbox(BOB, 'upload-429@contoso'));
  assert.equal(parsed.attachments[0]!.content.length, 4 * 1024 * 1024);
});

test('a 401 InvalidAuthenticationToken inside the draft route refreshes the token once and carries on', async () => {
  const raw = await compose({ from: ALICE, to: BOB, subject: 'refresh', text: 'x', messageId: '<upload-401@contoso>', attachments: [{ filename: 'a.bin', content: randomBytes(4 * 1024 * 1024) }] });
  sb.faults.add({ stage: 'graph.sendMail', action: { kind: 'http', status: 401, body: { error: { code: 'InvalidAuthenticationToken', message: 'Access token has expired or is not yet valid.' } } } });
  const before = sb.identity.stats.tokenRequests;
  const g = new GraphTransport({ account: APP, baseUrl: sb.endpoints.graph, caFile: sb.caFile }, { tokens });
  const { requests } = await requestsDuring(() => g.deliver({ from: ALICE, to: [BOB] }, () => Readable.from([raw])));
  assert.equal(sb.identity.stats.tokenRequests - before, 1, 'exactly one refresh');
  assert.deepEqual(requests.slice(0, 2).map((r) => [r.op, r.status]), [['createMessage', 401], ['createMessage', 201]]);
  assert.equal(requests.at(-1)!.op, 'send');
  inbox(BOB, 'upload-401@contoso');
});

test('sandbox upload session: range validation, status, completion and send', async () => {
  const token = await appToken(sb, 'https://graph.microsoft.com/.default');
  const bearer = { authorization: `Bearer ${token}` };
  const base = `${sb.endpoints.graph}/v1.0/users/${ALICE}/messages`;

  const badHeader = await https(sb, base, { json: { subject: 'x', internetMessageHeaders: [{ name: 'Foo', value: 'bar' }] }, headers: bearer });
  assert.equal(badHeader.status, 400);
  assert.equal(badHeader.json.error.code, 'InvalidInternetMessageHeader');
  const wrongAudience = await https(sb, base, { json: { subject: 'x' }, headers: { authorization: `Bearer ${await appToken(sb)}` } });
  assert.equal(wrongAudience.status, 401);
  assert.equal(wrongAudience.json.error.code, 'InvalidAuthenticationToken');

  const draft = await https(sb, base, { json: { subject: 'ranges', body: { contentType: 'Text', content: 'r' }, toRecipients: [{ emailAddress: { address: BOB } }], internetMessageId: '<ranges-1@contoso>' }, headers: bearer });
  assert.equal(draft.status, 201);
  assert.equal(draft.json.isDraft, true);
  const draftUrl = `${base}/${encodeURIComponent(draft.json.id)}`;
  const otherMailbox = await https(sb, `${sb.endpoints.graph}/v1.0/users/${BOB}/messages/${encodeURIComponent(draft.json.id)}/send`, { method: 'POST', headers: bearer });
  assert.equal(otherMailbox.status, 404);
  assert.equal(otherMailbox.json.error.code, 'ErrorItemNotFound');

  const notFile = await https(sb, `${draftUrl}/attachments/createUploadSession`, { json: { AttachmentItem: { attachmentType: 'item', name: 'x', size: 10 } }, headers: bearer });
  assert.equal(notFile.status, 400);
  const session = await https(sb, `${draftUrl}/attachments/createUploadSession`, { json: { AttachmentItem: { attachmentType: 'file', name: 'r.txt', size: 1000, contentType: 'text/plain' } }, headers: bearer });
  assert.equal(session.status, 201);
  assert.deepEqual(session.json.nextExpectedRanges, ['0-']);
  assert.ok(Date.parse(session.json.expirationDateTime) > Date.now());
  const uploadUrl: string = session.json.uploadUrl;

  const content = 'abcdefghij'.repeat(100);
  const put = (range: string | undefined, body: string, headers: Record<string, string> = {}, url = uploadUrl) =>
    https(sb, url, { method: 'PUT', body, headers: { 'content-type': 'application/octet-stream', ...(range ? { 'content-range': range } : {}), ...headers } });

  const cases: Array<[string, Promise<Awaited<ReturnType<typeof put>>>, number, string]> = [
    ['no Content-Range', put(undefined, content.slice(0, 100)), 400, 'invalidRequest'],
    ['bearer token on the upload URL', put('bytes 0-99/1000', content.slice(0, 100), bearer), 401, 'InvalidAuthenticationToken'],
    ['wrong authtoken', put('bytes 0-99/1000', content.slice(0, 100), {}, uploadUrl.replace(/authtoken=[^&]+/, 'authtoken=forged')), 401, 'InvalidAuthenticationToken'],
    ['total differs from the session size', put('bytes 0-99/999', content.slice(0, 100)), 400, 'invalidRequest'],
    ['range longer than the body', put('bytes 0-99/1000', content.slice(0, 50)), 400, 'invalidRequest'],
    ['end beyond the file', put('bytes 900-1000/1000', content.slice(0, 101)), 400, 'invalidRequest'],
    ['gap before the fragment', put('bytes 100-199/1000', content.slice(100, 200)), 416, 'invalidRange'],
  ];
  for (const [why, pending, status, code] of cases) {
    const r = await pending;
    assert.equal(r.status, status, `${why}: ${r.text}`);
    assert.equal(r.json.error.code, code, why);
  }

  const first = await put('bytes 0-399/1000', content.slice(0, 400));
  assert.equal(first.status, 200, first.text);
  assert.deepEqual(first.json.nextExpectedRanges, ['400']);
  const overlap = await put('bytes 0-99/1000', content.slice(0, 100));
  assert.equal(overlap.status, 416);
  assert.equal(overlap.json.error.code, 'invalidRange');
  const status = await https(sb, uploadUrl);
  assert.equal(status.status, 200);
  assert.deepEqual(status.json.nextExpectedRanges, ['400']);
  const last = await put('bytes 400-999/1000', content.slice(400));
  assert.equal(last.status, 201, last.text);
  assert.match(String(last.headers.location), /\/attachments\('/);
  const afterDone = await put('bytes 0-99/1000', content.slice(0, 100));
  assert.equal(afterDone.status, 404, 'the session ends with the last byte');

  const sent = await https(sb, `${draftUrl}/send`, { method: 'POST', headers: bearer });
  assert.equal(sent.status, 202, sent.text);
  const parsed = await simpleParser(inbox(BOB, 'ranges-1@contoso'));
  assert.equal(parsed.attachments[0]!.filename, 'r.txt');
  assert.equal(parsed.attachments[0]!.content.toString(), content);
  const again = await https(sb, `${draftUrl}/send`, { method: 'POST', headers: bearer });
  assert.equal(again.status, 404, 'a sent draft is gone');
});
