/**
 * SMTP DATA transparency (RFC 5321 §4.5.2) for outgoing messages, as nodemailer's DataStream does
 * it — dots at line starts doubled, bare CR and bare LF turned into CRLF (a bare CR followed by a
 * dot gets the dot stuffed too, against SMTP smuggling) — without a JavaScript loop over every
 * byte, which for a 1 MB message was a third of the relay's delivery CPU. A chunk already in wire
 * form (nearly all of them) passes untouched after a SIMD check (./line-scan.ts); any other is
 * escaped visiting only its line breaks, found with Buffer.indexOf. The output is the same byte
 * for byte (test/transport/dot-stuffing.test.ts compares both on random input split at random
 * points).
 */
import { noteStreamed } from '../core/memory.js';
import { isWireForm } from './line-scan.js';

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const INSERT_LF = Buffer.from('\n');
const INSERT_LF_DOT = Buffer.from('\n.');
const INSERT_CR = Buffer.from('\r');
const INSERT_DOT = Buffer.from('.');

/**
 * Escapes one chunk. `lastByte` is the last input byte of the previous chunk (false before the
 * first). Insertions can only happen right after a CR, at an LF, right after an LF, or at the very
 * start; those are the only positions examined, each by DataStream's own rules.
 */
export function stuffChunk(chunk: Buffer, lastByte: number | false): Buffer {
  const len = chunk.length;
  if (!len || isWireForm(chunk, lastByte)) return chunk;
  const parts: Buffer[] = [];
  let copied = 0;
  let outLen = 0;
  let lastExamined = -1;
  const examine = (i: number) => {
    if (i >= len || i <= lastExamined) return;
    lastExamined = i;
    const byte = chunk[i];
    const prev = i ? chunk[i - 1] : lastByte;
    let insert: Buffer | undefined;
    if (prev === CR && byte !== LF) insert = byte === DOT ? INSERT_LF_DOT : INSERT_LF;
    else if (byte === LF && prev !== CR) insert = INSERT_CR;
    else if (byte === DOT && (prev === LF || prev === false)) insert = INSERT_DOT;
    if (!insert) return;
    if (i > copied) {
      parts.push(chunk.subarray(copied, i));
      outLen += i - copied;
    }
    parts.push(insert);
    outLen += insert.length;
    copied = i;
  };
  examine(0);
  let cr = chunk.indexOf(CR);
  let lf = chunk.indexOf(LF);
  while (cr >= 0 || lf >= 0) {
    if (cr >= 0 && (lf < 0 || cr < lf)) {
      examine(cr + 1);
      cr = chunk.indexOf(CR, cr + 1);
    } else {
      examine(lf);
      examine(lf + 1);
      lf = chunk.indexOf(LF, lf + 1);
    }
  }
  if (!parts.length) return chunk;
  if (copied < len) {
    parts.push(chunk.subarray(copied));
    outLen += len - copied;
  }
  return Buffer.concat(parts, outLen);
}

interface DataStreamLike {
  inByteCount: number;
  outByteCount: number;
  lastByte: number | false;
  push(chunk: Buffer): boolean;
}

/**
 * Gives nodemailer's DataStream (the ESM build the relay imports) this implementation. Its
 * _flush (the final ".") and byte counters are kept as they are.
 */
export async function patchNodemailerDataStream(): Promise<void> {
  const url = new URL('./smtp-connection/data-stream.js', import.meta.resolve('nodemailer'));
  const { default: DataStream } = (await import(url.href)) as { default: { prototype: Record<string, unknown> } };
  if (DataStream.prototype.__relay365FastStuffing) return;
  DataStream.prototype._transform = function (this: DataStreamLike, chunk: Buffer | string, _encoding: string, done: () => void) {
    if (!chunk || !chunk.length) return done();
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    this.inByteCount += buf.length;
    noteStreamed(buf.length);
    const out = stuffChunk(buf, this.lastByte);
    this.outByteCount += out.length;
    this.push(out);
    this.lastByte = buf[buf.length - 1]!;
    done();
  };
  DataStream.prototype.__relay365FastStuffing = true;
}
