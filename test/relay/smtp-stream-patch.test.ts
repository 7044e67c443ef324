/**
 * The faster DATA parser (src/relay/smtp-stream-patch.ts) against smtp-server's own: the same
 * message bytes, byte counts and following commands for random messages made of line breaks,
 * dots and text (escaped dots, a terminator split across packets, lone dots), split at random.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { patchSmtpStream } from '../../src/relay/smtp-stream-patch.js';
import { seededRandom, splitAtRandom } from '../helpers/random.js';

type Stream = import('node:stream').Writable & {
  oncommand(cmd: Buffer, cb: () => void): void;
  startDataMode(max?: number): import('node:stream').PassThrough & { byteLength: number };
  continue(): void;
  _feedDataStream: unknown;
};
const { SMTPStream } = (await import('smtp-server/lib/smtp-stream.js' as string)) as { SMTPStream: new () => Stream };
const original = (SMTPStream.prototype as unknown as Record<string, unknown>)._feedDataStream;

/** DATA then the chunks; resolves with the message, its byte count and the commands after it. */
async function parse(chunks: Buffer[], useOriginal: boolean): Promise<{ data: string; bytes: number; commands: string[] }> {
  const s = new SMTPStream();
  if (useOriginal) s._feedDataStream = original;
  const commands: string[] = [];
  s.oncommand = (cmd, cb) => {
    commands.push(cmd.toString('latin1'));
    cb();
  };
  const data = s.startDataMode();
  const out: Buffer[] = [];
  data.on('data', (d: Buffer) => out.push(d));
  const ended = new Promise<void>((r) => data.on('end', () => r()));
  // Not awaited one by one: after the terminator the stream holds its write callback until the
  // application calls continue(), as smtp-server does once the message is handled.
  for (const c of chunks) s.write(c);
  await ended;
  s.continue();
  await new Promise<void>((r) => s.end(() => r()));
  return { data: Buffer.concat(out).toString('latin1'), bytes: data.byteLength, commands };
}

function randomInput(seed: number): Buffer[] {
  const rnd = seededRandom(seed);
  const alphabet = ['\r\n', '.', '..', 'a', 'bc', '\r', '\n', '\r\n.'];
  let body = '';
  const n = Math.floor(rnd() * 40);
  for (let i = 0; i < n; i++) body += alphabet[Math.floor(rnd() * alphabet.length)];
  return splitAtRandom(Buffer.from(`${body}\r\n.\r\nNOOP\r\nQUIT\r\n`, 'latin1'), rnd, 12);
}

test('the patched DATA parser matches smtp-server\'s for 1,500 random messages split at random points', async () => {
  assert.equal(await patchSmtpStream(), true, 'the installed smtp-server is the version the copy was made from');
  assert.notEqual((SMTPStream.prototype as unknown as Record<string, unknown>)._feedDataStream, original);
  for (let seed = 1; seed <= 1500; seed++) {
    const chunks = randomInput(seed);
    const expected = await parse(chunks, true);
    const got = await parse(chunks, false);
    assert.deepEqual(got, expected, `seed ${seed}: ${JSON.stringify(Buffer.concat(chunks).toString('latin1'))}`);
  }
});

test('a 1 MB message with escaped dots arrives whole through the patched parser', async () => {
  await patchSmtpStream();
  let text = '';
  for (let i = 0; text.length < 1024 * 1024; i++) text += i % 50 === 0 ? `..line ${i}\r\n` : `${'y'.repeat(70)} ${i}\r\n`;
  const wire = Buffer.from(`${text}.\r\nQUIT\r\n`, 'latin1');
  const chunks = [];
  for (let i = 0; i < wire.length; i += 65536) chunks.push(wire.subarray(i, i + 65536));
  const got = await parse(chunks, false);
  assert.equal(got.data, text.replace(/^\.\./gm, '.'));
  assert.equal(got.bytes, got.data.length);
  assert.deepEqual(got.commands, ['QUIT']);
});
