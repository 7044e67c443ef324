/**
 * RFC 3464 delivery status notifications (multipart/report; report-type=delivery-status).
 */
import { randomUUID } from 'node:crypto';

export interface DsnRecipient {
  recipient: string;
  action: 'failed' | 'delayed';
  status: string;
  diagnostic: string;
  remoteMta?: string;
}

export function buildDsn(opts: { reportingMta: string; originalSender: string; queueId: string; arrivalDate: Date; recipients: DsnRecipient[]; originalHeaders: string }): string {
  const boundary = `=_relay365_${randomUUID()}`;
  const failed = opts.recipients.every((r) => r.action === 'failed');
  const human = [
    failed ? 'Your message could not be delivered to the following recipients:' : 'Your message has not been delivered yet; relay365 keeps trying:',
    '',
    ...opts.recipients.map((r) => `  ${r.recipient}\r\n    ${r.diagnostic}`),
    '',
    `Queue id: ${opts.queueId}`,
  ].join('\r\n');
  const perRecipient = opts.recipients
    .map((r) => [`Final-Recipient: rfc822; ${r.recipient}`, `Action: ${r.action}`, `Status: ${r.status}`, ...(r.remoteMta ? [`Remote-MTA: dns; ${r.remoteMta}`] : []), `Diagnostic-Code: smtp; ${r.diagnostic.replace(/\r?\n/g, ' ')}`].join('\r\n'))
    .join('\r\n\r\n');
  return [
    `From: Mail Delivery System <MAILER-DAEMON@${opts.reportingMta}>`,
    `To: <${opts.originalSender}>`,
    `Subject: ${failed ? 'Undelivered Mail Returned to Sender' : 'Delayed Mail (still being retried)'}`,
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
    `Reporting-MTA: dns; ${opts.reportingMta}`,
    `X-Postfix-Queue-ID: ${opts.queueId}`,
    `Arrival-Date: ${opts.arrivalDate.toUTCString().replace('GMT', '+0000')}`,
    '',
    perRecipient,
    '',
    `--${boundary}`,
    'Content-Type: text/rfc822-headers',
    '',
    opts.originalHeaders.trimEnd(),
    '',
    `--${boundary}--`,
    '',
  ].join('\r\n');
}
