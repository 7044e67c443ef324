/**
 * blankLine (src/relay/header.ts): where a message's header ends, for the Message-ID scan, sender
 * rewriting and the headers a DSN returns.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blankLine } from '../../src/relay/header.js';
import { headerEnd } from '../../src/relay/dsn.js';

const at = (text: string, messageStart?: boolean) => blankLine(Buffer.from(text, 'latin1'), messageStart);

test('the first empty line, whether lines end in CRLF, LF, or a mix of both', () => {
  assert.deepEqual(at('A: 1\r\nB: 2\r\n\r\nbody\n\n'), { start: 12, end: 14 });
  assert.deepEqual(at('A: 1\nB: 2\n\nbody\r\n\r\n'), { start: 10, end: 11 });
  assert.deepEqual(at('A: 1\n\r\nbody'), { start: 5, end: 7 }, 'a header line ending in LF, then an empty CRLF line');
  assert.equal(at('A: 1\r\nB: 2\r\n'), undefined);
});

test('a message that begins with an empty line has an empty header; a later chunk that begins with one is left to its caller', () => {
  assert.deepEqual(at('\r\nbody'), { start: 0, end: 2 });
  assert.deepEqual(at('\nbody'), { start: 0, end: 1 });
  assert.equal(at('\nMessage-ID: <x@y>\r\n', false), undefined);
});

test("a DSN's returned headers end before the header's last line break, for the same shapes", () => {
  assert.equal(headerEnd(Buffer.from('A: 1\n\r\nbody')), 4);
  assert.equal(headerEnd(Buffer.from('\r\nbody')), 0);
});
