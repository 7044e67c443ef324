/**
 * Where a message's header section ends: at its first empty line. Lines may end in CRLF or, from
 * sloppy clients and Unix tools, in LF alone. One search for the inbound Message-ID scan, sender
 * rewriting and the headers a DSN returns.
 */

const LF_LF = Buffer.from('\n\n');
const LF_CRLF = Buffer.from('\n\r\n');

/**
 * The empty line after the header in `bytes`: `start` is where it begins (the header, with its last
 * line break, is `bytes[0, start)`), `end` where it ends (the body begins). Undefined when `bytes`
 * holds no empty line yet. When `bytes` begin the message, one that begins with an empty line has
 * an empty header; a later chunk (`messageStart` false) may begin with the line break that ends an
 * empty line started in the chunk before, which only the caller can see.
 */
export function blankLine(bytes: Buffer, messageStart = true): { start: number; end: number } | undefined {
  if (messageStart && bytes[0] === 0x0a) return { start: 0, end: 1 };
  if (messageStart && bytes[0] === 0x0d && bytes[1] === 0x0a) return { start: 0, end: 2 };
  const lf = bytes.indexOf(LF_LF);
  const crlf = bytes.indexOf(LF_CRLF);
  if (lf < 0 && crlf < 0) return undefined;
  return lf >= 0 && (crlf < 0 || lf < crlf) ? { start: lf + 1, end: lf + 2 } : { start: crlf + 1, end: crlf + 3 };
}
