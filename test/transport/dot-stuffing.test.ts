/**
 * The fast dot-stuffing (src/transport/dot-stuffing.ts) against nodemailer's own DataStream: the
 * same bytes out for random input made of line breaks, dots and text, split at random points,
 * and a 1 MB message through the patched stream. The wire-form check (src/transport/line-scan.ts)
 * in WebAssembly against its indexOf twin, and its module against its source.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Transform } from 'node:stream';
import { readFileSync } from 'node:fs';
import { patchNodemailerDataStream, stuffChunk } from '../../src/transport/dot-stuffing.js';
import { wireFormIndexOf, wireFormSimd } from '../../src/transport/line-scan.js';
import { LINE_SCAN_TS_PATH, renderLineScanModule } from '../../scripts/gen-line-scan.js';
import { seededRandom, splitAtRandom } from '../helpers/random.js';

type DataStreamClass = new () => Transform & { lastByte: number | false; inByteCount: number; outByteCount: number };
const url = new URL('./smtp-connection/data-stream.js', import.meta.resolve('nodemailer'));
const { default: DataStream } = (await import(url.href)) as { default: DataStreamClass };
const original = DataStream.prototype._transform;

async function throughStream(chunks: Buffer[]): Promise<Buffer> {
  const s = new DataStream();
  const out: Buffer[] = [];
  s.on('data', (d: Buffer) => out.push(d));
  const ended = new Promise((r) => s.on('end', r));
  for (const c of chunks) s.write(c);
  s.end();
  await ended;
  return Buffer.concat(out);
}

/** Bytes drawn from line breaks, dots and two letters: nearly every chunk needs escaping. */
function randomMessage(seed: number): { bytes: Buffer; chunks: Buffer[] } {
  const rnd = seededRandom(seed);
  const alphabet = [0x0d, 0x0a, 0x2e, 0x61, 0x62, 0x0d, 0x0a, 0x2e];
  const bytes = Buffer.from(Array.from({ length: Math.floor(rnd() * 200) }, () => alphabet[Math.floor(rnd() * alphabet.length)]!));
  return { bytes, chunks: splitAtRandom(bytes, rnd, 20) };
}

/** CRLF lines with a rare fault (a bare CR or LF, a leading dot): most chunks need nothing. */
function mostlyCleanMessage(seed: number): { bytes: Buffer; chunks: Buffer[] } {
  const rnd = seededRandom(seed);
  let text = '';
  for (let i = Math.floor(rnd() * 40); i > 0; i--) {
    const fault = rnd();
    const body = 'x'.repeat(Math.floor(rnd() * 12));
    text += fault < 0.03 ? `.${body}\r\n` : fault < 0.06 ? `${body}\n` : fault < 0.09 ? `${body}\r${body}\r\n` : fault < 0.1 ? `${body}\r` : `${body}\r\n`;
  }
  const bytes = Buffer.from(text, 'latin1');
  return { bytes, chunks: splitAtRandom(bytes, rnd, 60) };
}

test('stuffChunk gives the same bytes as nodemailer\'s DataStream for 6,000 random messages split at random points', async () => {
  assert.equal(DataStream.prototype._transform, original, 'compared with the unpatched original');
  for (let seed = 1; seed <= 6000; seed++) {
    const { bytes, chunks } = seed <= 3000 ? randomMessage(seed) : mostlyCleanMessage(seed);
    const expected = await throughStream(chunks);
    let last: number | false = false;
    const got: Buffer[] = [];
    for (const c of chunks) {
      got.push(stuffChunk(c, last));
      last = c[c.length - 1]!;
    }
    // The final ".\r\n" of the original's _flush, by the same rule.
    got.push(Buffer.from(last === 0x0a ? '.\r\n' : last === 0x0d ? '\n.\r\n' : '\r\n.\r\n'));
    assert.deepEqual(Buffer.concat(got), expected, `seed ${seed}: ${JSON.stringify(bytes.toString('latin1'))}`);
  }
});

test('the patched DataStream stuffs a 1 MB message as the original did, counters included', async () => {
  const line = (i: number) => (i % 97 === 0 ? `.dot line ${i}\r\n` : i % 301 === 0 ? `bare lf ${i}\n` : `${'x'.repeat(70)} ${i}\r\n`);
  let text = '';
  for (let i = 0; text.length < 1024 * 1024; i++) text += line(i);
  const chunks = [];
  const buf = Buffer.from(text, 'latin1');
  for (let i = 0; i < buf.length; i += 65536) chunks.push(buf.subarray(i, i + 65536));
  const before = await throughStream(chunks);
  await patchNodemailerDataStream();
  assert.notEqual(DataStream.prototype._transform, original);
  const after = await throughStream(chunks);
  assert.deepEqual(after, before);
  assert.ok(after.includes('\r\n..dot line 97\r\n'), 'a leading dot is doubled');
  assert.ok(after.includes('bare lf 301\r\n'), 'a bare LF becomes CRLF');
  const s = new DataStream();
  s.resume();
  s.end(buf);
  await new Promise((r) => s.on('end', r));
  assert.equal(s.inByteCount, buf.length);
  assert.equal(s.outByteCount, after.length);
});

test('the wire-form check: WebAssembly and indexOf agree on 100,000 random chunks, every preceding byte, and chunks larger than the module\'s window', () => {
  const rnd = seededRandom(42);
  const alphabet = [0x0d, 0x0a, 0x2e, 0x61, 0x0d, 0x0a, 0x61, 0x61, 0x61, 0x61];
  const before: Array<number | false> = [false, 0x0d, 0x0a, 0x2e, 0x61];
  let inWireForm = 0;
  for (let n = 0; n < 100_000; n++) {
    const chunk = Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 48) }, () => alphabet[Math.floor(rnd() * alphabet.length)]!));
    const last = before[Math.floor(rnd() * before.length)]!;
    const simd = wireFormSimd(chunk, last);
    assert.notEqual(simd, undefined, 'WebAssembly SIMD runs on this machine');
    assert.equal(simd, wireFormIndexOf(chunk, last), `${JSON.stringify(chunk.toString('latin1'))} after ${String(last)}`);
    if (simd) inWireForm++;
  }
  assert.ok(inWireForm > 5_000, `both outcomes are exercised (${inWireForm} in wire form)`);
  // 600 KB of CRLF lines spans three windows; one fault anywhere, including at a window's edges.
  const clean = Buffer.from(`${'y'.repeat(78)}\r\n`.repeat(7_700), 'latin1');
  assert.equal(wireFormSimd(clean, 0x0a), true);
  for (const at of [0, 1, 256 * 1024 - 1, 256 * 1024, 256 * 1024 + 1, 512 * 1024, clean.length - 2, clean.length - 1]) {
    for (const byte of [0x0a, 0x0d, 0x2e]) {
      const faulty = Buffer.from(clean);
      faulty[at] = byte;
      assert.equal(wireFormSimd(faulty, 0x0a), wireFormIndexOf(faulty, 0x0a), `byte ${byte} at ${at}`);
    }
  }
});

test('src/transport/line-scan-wasm.ts is line-scan.wat assembled (run: node --import tsx scripts/gen-line-scan.ts)', async () => {
  assert.equal(readFileSync(LINE_SCAN_TS_PATH, 'utf8'), await renderLineScanModule(), 'line-scan-wasm.ts is stale: regenerate it');
});
