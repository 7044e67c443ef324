/**
 * smtp-server's DATA parser looks for "\n." (an escaped dot or the end of the message) with a
 * JavaScript loop over every byte of the message: for 1 MB messages that loop was an eighth of the
 * inbound thread's CPU. This is the library's own `_feedDataStream` (smtp-server 3.x, MIT-0,
 * © Andris Reinman) with that loop replaced by Buffer.indexOf, which visits only the places where
 * a line starts with a dot; everything else, including its SMTP smuggling defences, is unchanged.
 * The four bytes it holds back at the end of each chunk are no longer copied in front of the next
 * chunk (which copied the whole message once more) unless a "\n." sits across the seam.
 * It replaces the library's method only when that method is exactly the version this copy was made
 * from (a hash of its source); any other version keeps its own code.
 * test/relay/smtp-stream-patch.test.ts checks both give the same output on random input.
 */
import { createHash } from 'node:crypto';

const PATCHED_SOURCE_SHA256 = '9d8b903f9a3a63542d72e19a9e2f67009a3b1107a28d57e8e7369355454ff230';
const END_SEQUENCE = Buffer.from('\r\n.\r\n');
const LF_DOT = Buffer.from('\n.');
const DATA_START_TERMINATOR = Buffer.from('.\r\n');

interface DataStreamTarget {
  writable: boolean;
  destroyed: boolean;
  write(chunk: Buffer): boolean;
  once(event: string, fn: () => void): void;
  removeListener(event: string, fn: () => void): void;
}

interface SmtpStreamState {
  _dataStream: DataStreamTarget;
  _lastBytes: Buffer | false;
  _atDataStart: boolean;
  _countDataBytes(len: number): void;
  _endDataMode(chunk: Buffer | false, remainder: Buffer, done: () => void): void;
  _feedDataStream(chunk: Buffer, done: () => void): void;
}

function feedDataStream(this: SmtpStreamState, input: Buffer, done: () => void): void {
  const dataStream = this._dataStream;
  let chunk = input;
  let buf: Buffer;
  if (this._lastBytes && this._lastBytes.length) {
    const held = this._lastBytes;
    this._lastBytes = false;
    if (!this._atDataStart && chunk.length >= 4 && !lfDotAcrossSeam(held, chunk)) {
      // Only a "\n." starting in the held bytes or at the chunk's first byte reads a held byte
      // (the terminator check looks one byte back); with none there, the held bytes are plain
      // message data, and the chunk is scanned on its own instead of being copied behind them,
      // which cost a copy of every byte of the message.
      this._countDataBytes(held.length);
      if (dataStream.writable) dataStream.write(held);
    } else {
      chunk = Buffer.concat([held, chunk], held.length + chunk.length);
    }
  }
  let len = chunk.length;
  // A terminator right at the start of DATA (tested on _atDataStart, not on the byte count: see
  // the library's note on TCP segmentation and smuggling).
  if (this._atDataStart && len >= 3 && Buffer.compare(chunk.subarray(0, 3), DATA_START_TERMINATOR) === 0) {
    this._endDataMode(false, chunk.subarray(3), done);
    return;
  }
  if (this._atDataStart && len >= 2 && chunk[0] === 0x2e && chunk[1] === 0x2e) {
    chunk = chunk.subarray(1);
    len--;
    this._atDataStart = false;
  }
  // The library's loop: i from 2 to len - 3 where chunk[i] is "." and chunk[i - 1] is "\n",
  // i.e. every "\n." starting at p = i - 1 >= 1 with i < len - 2.
  for (let p = chunk.indexOf(LF_DOT, 1); p >= 0 && p + 1 < len - 2; p = chunk.indexOf(LF_DOT, p + 1)) {
    const i = p + 1;
    if (Buffer.compare(chunk.subarray(i - 2, i + 3), END_SEQUENCE) === 0) {
      buf = chunk.subarray(0, i);
      this._countDataBytes(buf.length);
      this._endDataMode(buf, chunk.subarray(i + 3), done);
      return;
    }
    if (chunk[i + 1] === 0x2e) {
      buf = chunk.subarray(0, i);
      this._lastBytes = false;
      this._countDataBytes(buf.length);
      if (dataStream.writable) dataStream.write(buf);
      const rest = chunk.subarray(i + 1);
      setImmediate(() => this._feedDataStream(rest, done));
      return;
    }
  }
  this._lastBytes = chunk.length < 4 ? chunk : chunk.subarray(chunk.length - 4);
  if (this._lastBytes.length < chunk.length) {
    buf = chunk.subarray(0, chunk.length - this._lastBytes.length);
    this._countDataBytes(buf.length);
    if (dataStream.writable) {
      const handled = dataStream.write(buf);
      if (!handled && !dataStream.destroyed) {
        const onDrain = () => {
          dataStream.removeListener('drain', onDrain);
          dataStream.removeListener('close', onDrain);
          done();
        };
        dataStream.once('drain', onDrain);
        dataStream.once('close', onDrain);
      } else {
        return done();
      }
    } else {
      return done();
    }
  } else {
    return done();
  }
}

/**
 * Whether "\n." starts at a position 1 … held.length of held + chunk (the library's scan starts at
 * 1): the positions whose match would involve the held bytes.
 */
function lfDotAcrossSeam(held: Buffer, chunk: Buffer): boolean {
  const at = (k: number) => (k < held.length ? held[k] : chunk[k - held.length]);
  for (let p = 1; p <= held.length; p++) if (at(p) === 0x0a && at(p + 1) === 0x2e) return true;
  return false;
}

/** Installs the faster parser on smtp-server's ESM SMTPStream; false if the library's differs. */
export async function patchSmtpStream(): Promise<boolean> {
  const { SMTPStream } = (await import('smtp-server/lib/smtp-stream.js' as string)) as { SMTPStream: { prototype: Record<string, unknown> } };
  const proto = SMTPStream.prototype;
  if (proto.__relay365FastData) return true;
  const original = proto._feedDataStream as (...args: unknown[]) => unknown;
  if (createHash('sha256').update(original.toString()).digest('hex') !== PATCHED_SOURCE_SHA256) return false;
  proto.__relay365OriginalFeedDataStream = original;
  proto._feedDataStream = feedDataStream;
  proto.__relay365FastData = true;
  return true;
}
