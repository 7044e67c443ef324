/**
 * sendmail(8)-compatible entry point for cron, PHP mail(), logwatch …: `-t`, `-i`/`-oi`, `-f`,
 * `-F`, recipients as arguments, the message on stdin. If a relay365 relay runs (its
 * `<state>/relay.json` names the port), the message is handed to it over SMTP so it is queued
 * durably; otherwise it is sent directly with the account of the envelope sender.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostname, userInfo } from 'node:os';
import { Readable } from 'node:stream';
import { ExitCode } from '../core/exit.js';
import { isRelay365Error, toRelay365Error } from '../core/errors.js';
import { defaultStateDir } from '../core/fs.js';
import { openTokenManager } from '../oauth/index.js';
import { SmtpTransport } from '../transport/index.js';
import type { Transport } from '../transport/types.js';

export interface SendmailArgs {
  extractRecipients: boolean;
  ignoreDots: boolean;
  from?: string;
  fullName?: string;
  recipients: string[];
}

/** Parses sendmail's historic option syntax; unknown -o/-B/-q options are accepted and ignored. */
export function parseSendmailArgs(args: string[]): SendmailArgs {
  const out: SendmailArgs = { extractRecipients: false, ignoreDots: false, recipients: [] };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      out.recipients.push(...args.slice(i + 1));
      break;
    }
    if (a === '-t') out.extractRecipients = true;
    else if (a === '-i' || a === '-oi') out.ignoreDots = true;
    else if (a === '-f' || a === '-r') out.from = args[++i];
    else if (a.startsWith('-f') || a.startsWith('-r')) out.from = a.slice(2);
    else if (a === '-F') out.fullName = args[++i];
    else if (a.startsWith('-F')) out.fullName = a.slice(2);
    else if (/^-(o\w*|B\w*|bm|odi|odb|oem|oee|v|U|q\w*)$/.test(a)) continue;
    else if (a === '-C' || a === '-N' || a === '-R' || a === '-V' || a === '-L') i++;
    else if (a.startsWith('-')) continue;
    else out.recipients.push(...a.split(',').map((s) => s.trim()).filter(Boolean));
  }
  return out;
}

function headerAddresses(headers: string, names: string[]): string[] {
  const unfolded = headers.replace(/\r?\n[ \t]+/g, ' ');
  const out: string[] = [];
  for (const line of unfolded.split(/\r?\n/)) {
    const m = /^([^:]+):(.*)$/.exec(line);
    if (!m || !names.includes(m[1]!.trim().toLowerCase())) continue;
    for (const a of m[2]!.matchAll(/<([^<>\s]+@[^<>\s]+)>|([^\s,<>"]+@[^\s,<>"]+)/g)) out.push(a[1] ?? a[2]!);
  }
  return out;
}

export async function runSendmail(args: string[], io: { out: NodeJS.WritableStream; err: NodeJS.WritableStream; stdin?: NodeJS.ReadableStream; env?: NodeJS.ProcessEnv }): Promise<number> {
  const env = io.env ?? process.env;
  try {
    const opts = parseSendmailArgs(args);
    const chunks: Buffer[] = [];
    for await (const c of io.stdin ?? process.stdin) chunks.push(Buffer.from(c as Buffer));
    let text = Buffer.concat(chunks).toString('latin1').replace(/\r?\n/g, '\r\n');
    // Without -i a line with a single dot ends the message (sendmail's default).
    if (!opts.ignoreDots) {
      const end = text.search(/(^|\r\n)\.\r\n/);
      if (end >= 0) text = text.slice(0, end + (text[end] === '\r' ? 2 : 0));
    }
    const split = text.search(/\r\n\r\n/);
    let headers = split >= 0 ? text.slice(0, split + 2) : text;
    const body = split >= 0 ? text.slice(split + 2) : '\r\n';
    const sender = opts.from ?? env.RELAY365_SENDMAIL_FROM ?? headerAddresses(headers, ['from'])[0] ?? `${userInfo().username}@${hostname()}`;
    const recipients = [...opts.recipients, ...(opts.extractRecipients ? headerAddresses(headers, ['to', 'cc', 'bcc']) : [])];
    if (recipients.length === 0) {
      io.err.write('sendmail: no recipients (give addresses or -t)\n');
      return ExitCode.USAGE;
    }
    // Bcc is envelope-only; add the headers a mailer is expected to add.
    headers = headers.replace(/^Bcc:.*(?:\r\n[ \t].*)*\r\n/gim, '');
    if (!/^From:/im.test(headers)) headers = `From: ${opts.fullName ? `"${opts.fullName}" ` : ''}<${sender}>\r\n${headers}`;
    if (!/^Date:/im.test(headers)) headers = `Date: ${new Date().toUTCString().replace('GMT', '+0000')}\r\n${headers}`;
    if (!/^Message-ID:/im.test(headers)) headers = `Message-ID: <${Date.now()}.${process.pid}@${hostname()}>\r\n${headers}`;
    const message = Buffer.from(headers + body, 'latin1');

    const stateDir = env.RELAY365_STATE_DIR ?? defaultStateDir(env);
    const relayFile = join(stateDir, 'relay.json');
    let transport: Transport;
    if (existsSync(relayFile)) {
      const port = JSON.parse(readFileSync(relayFile, 'utf8')).smtp?.[0]?.port as number;
      transport = new SmtpTransport({ host: '127.0.0.1', port, security: 'none', pool: false });
    } else {
      const tokens = openTokenManager({ stateDir, env, caFile: env.RELAY365_CA_FILE });
      const account = (await tokens.accounts()).find((a) => a.email === sender.toLowerCase() || a.mailbox === sender.toLowerCase()) ?? (await tokens.accounts())[0];
      if (!account) {
        io.err.write(`sendmail: no relay is running (${relayFile}) and no account is configured; run \`relay365 account add\` or \`relay365 serve\`\n`);
        return ExitCode.TEMPFAIL;
      }
      transport = new SmtpTransport({ host: env.RELAY365_SMTP_HOST ?? 'smtp.office365.com', port: Number(env.RELAY365_SMTP_PORT ?? 587), security: 'starttls', caFile: env.RELAY365_CA_FILE, auth: { kind: 'oauth', account: account.email }, pool: false }, { tokens });
    }
    try {
      await transport.deliver({ from: sender, to: recipients }, () => Readable.from([message]));
    } finally {
      await transport.close();
    }
    return ExitCode.OK;
  } catch (e) {
    const err = isRelay365Error(e) ? e : toRelay365Error(e);
    io.err.write(`sendmail: ${err.message}\n${err.hint ? `hint: ${err.hint}\n` : ''}`);
    return err.temporary ? ExitCode.TEMPFAIL : ExitCode.PERMANENT;
  }
}
