/**
 * Builds RFC 5322 messages for `relay365 send`: nodemailer's MailComposer for UTF-8 (HTML,
 * attachments), and a direct ISO-2022-JP encoder (encoding-japanese) for the plain-text Japanese
 * mail that SMAIL users send by default, which MailComposer cannot produce.
 */
import { randomUUID } from 'node:crypto';
import { basename } from 'node:path';
import { readFileSync } from 'node:fs';
import Encoding from 'encoding-japanese';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';

export interface ComposeInput {
  from: string;
  to: string[];
  cc?: string[];
  subject?: string;
  text?: string;
  html?: string;
  attachments?: string[];
  headers?: Array<[string, string]>;
  replyTo?: string;
  charset?: 'utf-8' | 'iso-2022-jp';
}

function iso2022jp(text: string): Buffer {
  return Buffer.from(Encoding.convert(Encoding.stringToCode(text), { to: 'JIS', from: 'UNICODE', type: 'array' }) as number[]);
}

function encodedWord(text: string): string {
  if (/^[\x00-\x7f]*$/.test(text)) return text;
  return `=?ISO-2022-JP?B?${iso2022jp(text).toString('base64')}?=`;
}

function domainOf(address: string): string {
  return address.split('@').pop() || 'localhost';
}

export async function composeMessage(input: ComposeInput): Promise<Buffer> {
  const extra = input.headers ?? [];
  const has = (name: string) => extra.some(([n]) => n.toLowerCase() === name.toLowerCase());
  if (input.charset === 'iso-2022-jp' && !input.html && !input.attachments?.length) {
    const lines = [
      `From: ${input.from}`,
      `To: ${input.to.join(', ')}`,
      ...(input.cc?.length ? [`Cc: ${input.cc.join(', ')}`] : []),
      ...(input.replyTo ? [`Reply-To: ${input.replyTo}`] : []),
      `Subject: ${encodedWord(input.subject ?? '')}`,
      ...(has('Date') ? [] : [`Date: ${new Date().toUTCString().replace('GMT', '+0000')}`]),
      ...(has('Message-ID') ? [] : [`Message-ID: <${randomUUID()}@${domainOf(input.from)}>`]),
      ...extra.map(([n, v]) => `${n}: ${v}`),
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=ISO-2022-JP',
      'Content-Transfer-Encoding: 7bit',
      '',
      '',
    ].join('\r\n');
    const body = iso2022jp((input.text ?? '').replace(/\r?\n/g, '\r\n'));
    return Buffer.concat([Buffer.from(lines, 'ascii'), body, Buffer.from('\r\n')]);
  }
  const composer = new MailComposer({
    from: input.from,
    to: input.to,
    cc: input.cc,
    replyTo: input.replyTo,
    subject: input.subject,
    text: input.text,
    html: input.html,
    messageId: has('Message-ID') ? undefined : `<${randomUUID()}@${domainOf(input.from)}>`,
    date: new Date(),
    headers: Object.fromEntries(extra),
    attachments: (input.attachments ?? []).map((f) => ({ filename: basename(f), content: readFileSync(f) })),
  });
  return new Promise((resolve, reject) => composer.compile().build((err: Error | null, msg: Buffer) => (err ? reject(err) : resolve(msg))));
}
