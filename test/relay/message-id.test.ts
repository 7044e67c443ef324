/**
 * The Message-ID noted as a message streams in (src/relay/inbound.ts, MessageIdFinder): the same
 * answer as a search of the whole header, however the message is split into chunks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageIdFinder } from '../../src/relay/inbound.js';
import { seededRandom, splitAtRandom } from '../helpers/random.js';

/** The reference: the header is everything before the first blank line (at most 64 KB searched). */
function expected(message: string): string | undefined {
  const head = message.slice(0, 64 * 1024);
  const end = /\r?\n\r?\n/.exec(head)?.index;
  return /^Message-ID:\s*<([^>\r\n]+)>/im.exec(end === undefined ? head : head.slice(0, end))?.[1];
}

function run(chunks: Buffer[]): string | undefined {
  const finder = new MessageIdFinder();
  let id: string | undefined;
  for (const c of chunks) if (!finder.done) id = finder.feed(c);
  return id;
}

test('the same Message-ID as a search of the whole header, for 3,000 random messages split at random', () => {
  const rnd = seededRandom(12345);
  const pick = <T>(a: T[]) => a[Math.floor(rnd() * a.length)]!;
  const eol = () => pick(['\r\n', '\n']);
  let withId = 0;
  for (let n = 0; n < 3000; n++) {
    const lines: string[] = [];
    for (let i = Math.floor(rnd() * 6); i > 0; i--) lines.push(pick(['From: a@b.test', 'Subject: x', 'X-Long: ' + 'y'.repeat(Math.floor(rnd() * 300)), ' folded', 'Message-ID: <early@x>']) + eol());
    // The ID in the header, after the blank line (the body: not a header), or not at all.
    const id = `id${n}@relay365.test`;
    const where = pick(['header', 'body', 'none']);
    if (where === 'header') lines.push(`${pick(['Message-ID', 'Message-Id', 'message-id'])}:${pick([' ', '  ', '\t'])}<${id}>${eol()}`);
    lines.push(eol());
    if (where === 'body') lines.push(`Message-ID: <${id}>${eol()}`);
    lines.push(`body ${'z'.repeat(Math.floor(rnd() * 200))}${eol()}`);
    const message = lines.join('');
    const want = expected(message);
    if (want === id) withId++;
    assert.equal(run(splitAtRandom(Buffer.from(message, 'latin1'), rnd, pick([1, 3, 16, 4096]))), want, JSON.stringify(message));
  }
  assert.ok(withId > 500, `enough messages carry the ID in their header (${withId})`);
});

test('every split into two or three chunks of messages whose body starts with a Message-ID line', () => {
  const messages = ['Subject: x\n\nMessage-ID: <body@x>\n', 'Subject: x\r\n\r\nMessage-ID: <body@x>\r\n', 'Message-ID: <head@x>\r\n\r\nMessage-ID: <body@x>\r\n', 'A: 1\r\nB: 2\n\r\nMessage-ID: <body@x>\n'];
  for (const message of messages) {
    const bytes = Buffer.from(message, 'latin1');
    const want = expected(message);
    for (let i = 0; i <= bytes.length; i++)
      for (let j = i; j <= bytes.length; j++) {
        const chunks = [bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)].filter((c) => c.length);
        assert.equal(run(chunks), want, `${JSON.stringify(message)} split at ${i}, ${j}`);
      }
  }
});

test('a header longer than 64 KB is searched no further; a large body is not turned into text', () => {
  const long = Buffer.from(`X-Pad: ${'p'.repeat(70 * 1024)}\r\nMessage-ID: <late@x>\r\n\r\nbody\r\n`, 'latin1');
  assert.equal(run(splitAtRandom(long, () => 0.5, 65536)), undefined);
  const finder = new MessageIdFinder();
  assert.equal(finder.feed(Buffer.from(`Message-ID: <first@x>\r\n\r\n${'b'.repeat(1024 * 1024)}`, 'latin1')), 'first@x');
  assert.equal(finder.done, true, 'nothing more to look at');
});
