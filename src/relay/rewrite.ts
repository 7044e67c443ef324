/**
 * Sender rewriting for devices with a fixed From: that the mailbox has no SendAs right for:
 * From: becomes the account's mailbox and the original address moves to Reply-To (unless set).
 * Only the header is read into memory (up to 256 KB); the body streams through untouched. Lines
 * may end in CRLF or, from sloppy clients, in LF alone: the lines added end like the message's
 * first line, so a message never mixes the two because of us.
 */
import { Readable } from 'node:stream';
import { chunksOf } from '../core/stream.js';
import { blankLine } from './header.js';

/** A header longer than this is treated as ending there (Postfix's header_size_limit is 100 KB). */
const HEADER_MAX = 256 * 1024;

/** One From: field (with its continuation lines), anywhere in the header. */
const FROM_FIELD = /^From:[ \t]*(.*(?:\r?\n[ \t].*)*)(?:\r?\n|$)/gim;

/** The header with From: set to `mailbox` and the original From: as Reply-To (if it has none). */
export function rewriteHeader(header: string, mailbox: string): string {
  const eol = /\r?\n/.exec(header)?.[0] ?? '\r\n';
  let original: string | undefined;
  const rest = header.replace(FROM_FIELD, (_field, value: string) => {
    // Unfolding (RFC 5322 §2.2.3) removes the line breaks and keeps the white space.
    original ??= value.replace(/\r?\n/g, '').trim();
    return '';
  });
  const replyTo = original && !/^Reply-To:/im.test(rest) ? `Reply-To: ${original}${eol}` : '';
  return `From: ${mailbox}${eol}${replyTo}${rest}`;
}

export function rewriteSender(source: Readable, mailbox: string): Readable {
  return Readable.from(
    (async function* () {
      let head = Buffer.alloc(0);
      let done = false;
      const rewritten = (end: number) => {
        done = true;
        return Buffer.from(rewriteHeader(head.toString('latin1', 0, end), mailbox), 'latin1');
      };
      for await (const chunk of chunksOf(source)) {
        if (done) {
          yield chunk;
          continue;
        }
        head = Buffer.concat([head, chunk]);
        const end = blankLine(head)?.start;
        if (end === undefined && head.length < HEADER_MAX) continue;
        const cut = end ?? head.length;
        yield rewritten(cut);
        yield head.subarray(cut);
      }
      // A message that is all header (no blank line, no body).
      if (!done) yield rewritten(head.length);
    })(),
  );
}
