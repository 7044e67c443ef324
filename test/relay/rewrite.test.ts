/**
 * Sender rewriting (a route's `rewrite_sender`): From: becomes the account's mailbox, the original
 * goes to Reply-To, and nothing else in the message changes, however it arrives in chunks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { rewriteHeader, rewriteSender } from '../../src/relay/rewrite.js';
import { seededRandom, splitAtRandom } from '../helpers/random.js';

const MAILBOX = 'scanner@contoso.onmicrosoft.com';

async function rewrite(message: Buffer, maxChunk = message.length || 1): Promise<Buffer> {
  const chunks = splitAtRandom(message, seededRandom(message.length), maxChunk);
  return Buffer.concat(await rewriteSender(Readable.from(chunks), MAILBOX).toArray());
}

test('From: becomes the mailbox, the original moves to Reply-To, the rest is untouched, whatever the chunking', async () => {
  const message = Buffer.from('Received: from printer\r\nFrom: "MFP 3rd floor" <mfp@printers.test>\r\nTo: bob@fabrikam.test\r\nSubject: Scan\r\n\r\nFrom: this line is body\r\n');
  const expected = `From: ${MAILBOX}\r\nReply-To: "MFP 3rd floor" <mfp@printers.test>\r\nReceived: from printer\r\nTo: bob@fabrikam.test\r\nSubject: Scan\r\n\r\nFrom: this line is body\r\n`;
  for (const maxChunk of [1, 2, 7, 40, message.length]) assert.equal((await rewrite(message, maxChunk)).toString('latin1'), expected, `chunks of up to ${maxChunk} bytes`);
});

test('a Reply-To the message already has is kept, and no second one is added', () => {
  assert.equal(rewriteHeader('From: a@printers.test\r\nReply-To: helpdesk@contoso.test\r\n', MAILBOX), `From: ${MAILBOX}\r\nReply-To: helpdesk@contoso.test\r\n`);
});

test('a folded From: is unfolded into Reply-To and its continuation line goes with it', () => {
  assert.equal(rewriteHeader('From: "Scanner"\r\n\t<scan@printers.test>\r\nSubject: x\r\n', MAILBOX), `From: ${MAILBOX}\r\nReply-To: "Scanner"\t<scan@printers.test>\r\nSubject: x\r\n`);
});

test('a message with bare LF line ends keeps them and ends up with exactly one From:', async () => {
  const out = (await rewrite(Buffer.from('From: cron@host.test\nSubject: nightly\n\nbody\n'), 5)).toString('latin1');
  assert.equal(out, `From: ${MAILBOX}\nReply-To: cron@host.test\nSubject: nightly\n\nbody\n`);
});

test('without a From: one is added and no Reply-To; a message that is all header is rewritten too', async () => {
  assert.equal((await rewrite(Buffer.from('Subject: x\r\n\r\nbody'))).toString('latin1'), `From: ${MAILBOX}\r\nSubject: x\r\n\r\nbody`);
  assert.equal((await rewrite(Buffer.from('From: a@b.test\r\nSubject: no body\r\n'), 3)).toString('latin1'), `From: ${MAILBOX}\r\nReply-To: a@b.test\r\nSubject: no body\r\n`);
  assert.equal((await rewrite(Buffer.from('\r\nno header at all'))).toString('latin1'), `From: ${MAILBOX}\r\n\r\nno header at all`);
});

test('a large body passes byte for byte', async () => {
  const body = randomBytes(1024 * 1024);
  const out = await rewrite(Buffer.concat([Buffer.from('From: big@printers.test\r\n\r\n'), body]), 64 * 1024);
  const prefix = `From: ${MAILBOX}\r\nReply-To: big@printers.test\r\n\r\n`;
  assert.equal(out.subarray(0, prefix.length).toString('latin1'), prefix);
  assert.ok(out.subarray(prefix.length).equals(body));
});
