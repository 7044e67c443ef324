/**
 * Sender rewriting for devices with a fixed From: that the mailbox has no SendAs right for:
 * From: becomes the account's mailbox and the original address moves to Reply-To (unless set).
 */
import { Readable } from 'node:stream';

export function rewriteSender(source: Readable, mailbox: string): Readable {
  return Readable.from(
    (async function* () {
      let head = Buffer.alloc(0);
      let done = false;
      for await (const chunk of source) {
        if (done) {
          yield chunk as Buffer;
          continue;
        }
        head = Buffer.concat([head, chunk as Buffer]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0 && head.length < 256 * 1024) continue;
        const cut = end < 0 ? head.length : end + 2;
        let headers = head.subarray(0, cut).toString('latin1');
        const from = /^From:[ \t]*((?:.*)(?:\r\n[ \t].*)*)\r\n/im.exec(headers);
        const original = from?.[1]?.trim();
        headers = headers.replace(/^From:.*(?:\r\n[ \t].*)*\r\n/im, '');
        const hasReplyTo = /^Reply-To:/im.test(headers);
        headers = `From: ${mailbox}\r\n${original && !hasReplyTo ? `Reply-To: ${original}\r\n` : ''}${headers}`;
        yield Buffer.from(headers, 'latin1');
        yield head.subarray(cut);
        done = true;
      }
      if (!done) yield head;
    })(),
  );
}
