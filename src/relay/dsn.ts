/**
 * RFC 3464 delivery status notifications (multipart/report; report-type=delivery-status), and the
 * RFC 3461 parameters (RET, ENVID, NOTIFY, ORCPT) that decide whether one is sent and what it says.
 */
import { randomUUID } from 'node:crypto';
import type { SMTPServerEnvelope } from 'smtp-server';
import type { DsnNotify, EnqueueMeta, RecipientDsn } from '../queue/index.js';
import { blankLine } from './header.js';

export interface DsnRecipient {
  recipient: string;
  /** 'relayed': handed to a route that sends no DSNs of its own although NOTIFY asked for SUCCESS (RFC 3461 §6.2.4). */
  action: 'failed' | 'delayed' | 'relayed';
  status: string;
  diagnostic: string;
  remoteMta?: string;
  /** The ORCPT parameter ("rfc822;bob@example.com"), reported as Original-Recipient. */
  originalRecipient?: string;
}

/** What of the original message a DSN returns: its header section, or the whole message. */
export interface ReturnedContent {
  kind: 'headers' | 'message';
  bytes: Buffer;
}

/** At most this much of a header section is returned (a header section without an end is cut here). */
const HEADERS_MAX = 64 * 1024;
/**
 * RET=FULL returns the whole message only up to this size, and the headers alone beyond it, as
 * Postfix does (bounce_size_limit, 50,000 bytes by default): a DSN goes back through the same
 * mailbox and counts against the same sending limits, and returning a 30 MB attachment to the
 * sender, who has it already, is the bulk of the cost for none of the use. RET=FULL is a request
 * (RFC 3461 §4.3 lets the MTA return less), so the sender still learns which message failed.
 */
export const FULL_RETURN_MAX = 50_000;

/** NOTIFY as RFC 3461 §4.1 reads it: absent means FAILURE and DELAY (the relay's choice), NEVER means none. */
export function wantsNotice(notify: DsnNotify[] | undefined, kind: 'FAILURE' | 'DELAY' | 'SUCCESS'): boolean {
  return notify ? notify.includes(kind) : kind !== 'SUCCESS';
}

/**
 * The DSN parameters smtp-server parsed into the session envelope, as the queue stores them:
 * smtp-server has already decoded their xtext (and refused control characters), and nodemailer
 * encodes them again for the next hop.
 */
export function dsnMetaOf(envelope: SMTPServerEnvelope): Pick<EnqueueMeta, 'dsn' | 'recipientDsn'> {
  const out: Pick<EnqueueMeta, 'dsn' | 'recipientDsn'> = {};
  const ret = envelope.dsn?.ret;
  const envid = envelope.dsn?.envid;
  if (ret === 'FULL' || ret === 'HDRS' || envid) out.dsn = { ...(ret === 'FULL' || ret === 'HDRS' ? { ret } : {}), ...(envid ? { envid } : {}) };
  for (const r of envelope.rcptTo) {
    if (!r.dsn?.notify && !r.dsn?.orcpt) continue;
    const d: RecipientDsn = {};
    if (r.dsn.notify) d.notify = r.dsn.notify as DsnNotify[];
    if (r.dsn.orcpt) d.orcpt = r.dsn.orcpt;
    (out.recipientDsn ??= new Map()).set(r.address, d);
  }
  return out;
}

/** Where the header section ends, before its last line break (./header.ts); -1 if not seen yet. */
export function headerEnd(message: Buffer): number {
  const start = blankLine(message)?.start;
  if (start === undefined) return -1;
  return start === 0 ? 0 : start - (message[start - 2] === 0x0d ? 2 : 1);
}

/**
 * Reads what a DSN returns of the original: the whole message when `full` (RET=FULL on a failure
 * notice) and it is at most FULL_RETURN_MAX bytes, else the header section. Reads no further than
 * it needs.
 */
export async function readReturnedContent(body: AsyncIterable<Buffer>, full: boolean): Promise<ReturnedContent> {
  const limit = full ? FULL_RETURN_MAX + 1 : HEADERS_MAX;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    chunks.push(chunk);
    size += chunk.length;
    if (size >= limit || (!full && chunk.includes(10) && blankLine(Buffer.concat(chunks)) !== undefined)) break;
  }
  const all = Buffer.concat(chunks);
  if (full && all.length <= FULL_RETURN_MAX) return { kind: 'message', bytes: all };
  const end = headerEnd(all);
  return { kind: 'headers', bytes: all.subarray(0, end >= 0 ? end : Math.min(all.length, HEADERS_MAX)) };
}

/** A value the client chose (ENVID, ORCPT), made safe for one header line. */
const oneLine = (value: string) => value.replace(/[\x00-\x1f\x7f]+/g, ' ').trim();

function summaryOf(recipients: DsnRecipient[]): { subject: string; intro: string } {
  if (recipients.some((r) => r.action === 'failed')) return { subject: 'Undelivered Mail Returned to Sender', intro: 'Your message could not be delivered to the following recipients:' };
  if (recipients.some((r) => r.action === 'delayed')) return { subject: 'Delayed Mail (still being retried)', intro: 'Your message has not been delivered yet; relay365 keeps trying:' };
  return { subject: 'Successful Mail Delivery Report', intro: 'Your message was relayed to the following recipients by a route that returns no delivery notifications of its own, so this is the last one you will get:' };
}

export function buildDsn(opts: { reportingMta: string; originalSender: string; queueId: string; arrivalDate: Date; envid?: string; recipients: DsnRecipient[]; returned: ReturnedContent }): Buffer {
  const boundary = `=_relay365_${randomUUID()}`;
  const { subject, intro } = summaryOf(opts.recipients);
  const human = [intro, '', ...opts.recipients.map((r) => `  ${r.recipient}\r\n    ${r.diagnostic}`), '', `Queue id: ${opts.queueId}`].join('\r\n');
  const perRecipient = opts.recipients
    .map((r) =>
      [
        ...(r.originalRecipient ? [`Original-Recipient: ${oneLine(r.originalRecipient)}`] : []),
        `Final-Recipient: rfc822; ${r.recipient}`,
        `Action: ${r.action}`,
        `Status: ${r.status}`,
        ...(r.remoteMta ? [`Remote-MTA: dns; ${r.remoteMta}`] : []),
        `Diagnostic-Code: smtp; ${r.diagnostic.replace(/\r?\n/g, ' ')}`,
      ].join('\r\n'),
    )
    .join('\r\n\r\n');
  const head = [
    `From: Mail Delivery System <MAILER-DAEMON@${opts.reportingMta}>`,
    `To: <${opts.originalSender}>`,
    `Subject: ${subject}`,
    `Date: ${new Date().toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: <${randomUUID()}@${opts.reportingMta}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    '',
    human,
    '',
    `--${boundary}`,
    'Content-Type: message/delivery-status',
    '',
    ...(opts.envid ? [`Original-Envelope-Id: ${oneLine(opts.envid)}`] : []),
    `Reporting-MTA: dns; ${opts.reportingMta}`,
    `X-Postfix-Queue-ID: ${opts.queueId}`,
    `Arrival-Date: ${opts.arrivalDate.toUTCString().replace('GMT', '+0000')}`,
    '',
    perRecipient,
    '',
    `--${boundary}`,
    `Content-Type: ${opts.returned.kind === 'message' ? 'message/rfc822' : 'text/rfc822-headers'}`,
    '',
    '',
  ].join('\r\n');
  // The original's bytes as they are (latin1 keeps every byte), with CRLF line ends throughout.
  const returned = opts.returned.bytes.toString('latin1').replace(/\r?\n/g, '\r\n').replace(/(\r\n)+$/, '');
  return Buffer.concat([Buffer.from(head, 'utf8'), Buffer.from(returned, 'latin1'), Buffer.from(`\r\n\r\n--${boundary}--\r\n`, 'utf8')]);
}
