import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { UsageError } from '../../core/errors.js';
import { openTokenManager } from '../../oauth/index.js';
import { GraphTransport, SmtpTransport, type SmtpSecurity } from '../../transport/index.js';
import type { CliContext } from '../context.js';

const collect = (v: string, prev: string[] = []) => [...prev, ...v.split(',').map((s) => s.trim()).filter(Boolean)];

interface SendOptions {
  from: string;
  to: string[];
  cc?: string[];
  bcc?: string[];
  subject?: string;
  body?: string;
  bodyFile?: string;
  html?: string;
  attach?: string[];
  header?: string[];
  replyTo?: string;
  charset: string;
  account?: string;
  transport: string;
  host: string;
  port: string;
  tls: string;
  caFile?: string;
  graphUrl?: string;
  dryRun?: boolean;
  debug?: boolean;
  json?: boolean;
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return '';
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** `relay365 send`: an SMAIL-style mailer through Microsoft 365 with OAuth. */
export function register(program: Command, ctx: CliContext): void {
  program
    .command('send')
    .description('Send a message through Microsoft 365 (SMTP XOAUTH2 or Graph) — exit 0 accepted, 75 temporary, 1 permanent, 2 usage')
    .requiredOption('--from <address>', 'sender (also the account unless --account)')
    .requiredOption('--to <addresses>', 'recipients (comma-separated, repeatable)', collect)
    .option('--cc <addresses>', 'Cc recipients', collect)
    .option('--bcc <addresses>', 'Bcc recipients (envelope only)', collect)
    .option('--subject <text>', 'subject')
    .option('--body <text>', 'plain-text body (default: stdin)')
    .option('--body-file <file>', 'plain-text body from a file (UTF-8)')
    .option('--html <file>', 'HTML body from a file')
    .option('--attach <file>', 'attachment (repeatable)', (v: string, p: string[] = []) => [...p, v])
    .option('--header <header>', "extra header 'Name: value' (repeatable)", (v: string, p: string[] = []) => [...p, v])
    .option('--reply-to <address>', 'Reply-To')
    .option('--charset <charset>', 'utf-8 or iso-2022-jp', 'utf-8')
    .option('--account <email>', 'account whose token authenticates (default: --from)')
    .option('--transport <t>', 'smtp or graph', 'smtp')
    .option('--host <host>', 'SMTP host', 'smtp.office365.com')
    .option('--port <port>', 'SMTP port', '587')
    .option('--tls <mode>', 'starttls or implicit', 'starttls')
    .option('--ca-file <file>', 'extra CA (PEM) for the server')
    .option('--graph-url <url>', 'Graph base URL', 'https://graph.microsoft.com')
    .option('--dry-run', 'print the MIME message instead of sending')
    .option('--debug', 'print the protocol transcript to stderr (tokens and secrets redacted)')
    .option('--json', 'print message id, server reply and timings as JSON')
    .action(async (opts: SendOptions) => {
      if (!['utf-8', 'iso-2022-jp'].includes(opts.charset.toLowerCase())) throw new UsageError('--charset must be utf-8 or iso-2022-jp');
      if (!['smtp', 'graph'].includes(opts.transport)) throw new UsageError('--transport must be smtp or graph');
      const headers = (opts.header ?? []).map((h): [string, string] => {
        const i = h.indexOf(':');
        if (i <= 0) throw new UsageError(`--header must look like 'Name: value', got "${h}"`);
        return [h.slice(0, i).trim(), h.slice(i + 1).trim()];
      });
      const text = opts.body ?? (opts.bodyFile ? readFileSync(opts.bodyFile, 'utf8') : opts.html ? undefined : await readStdin());
      const { composeMessage } = await import('../../transport/compose.js');
      const raw = await composeMessage({
        from: opts.from,
        to: opts.to,
        cc: opts.cc,
        subject: opts.subject,
        text,
        html: opts.html ? readFileSync(opts.html, 'utf8') : undefined,
        attachments: opts.attach,
        headers,
        replyTo: opts.replyTo,
        charset: opts.charset.toLowerCase() as 'utf-8' | 'iso-2022-jp',
      });
      if (opts.dryRun) {
        ctx.out.write(raw);
        return;
      }
      const account = (opts.account ?? opts.from).toLowerCase();
      const tokens = openTokenManager({ stateDir: ctx.stateDir(), caFile: opts.caFile, env: ctx.env });
      const known = (await tokens.accounts()).find((a) => a.email === account);
      if (known && known.mailbox !== opts.from.toLowerCase() && known.email !== opts.from.toLowerCase()) {
        ctx.warn(`From ${opts.from} is not the authenticated mailbox ${known.mailbox}: Exchange answers 550 5.7.60 / 554 5.2.252 unless the mailbox has SendAs on it.`);
      }
      const envelope = { from: opts.from, to: [...opts.to, ...(opts.cc ?? []), ...(opts.bcc ?? [])] };
      const transport =
        opts.transport === 'graph'
          ? new GraphTransport({ account, baseUrl: opts.graphUrl, caFile: opts.caFile }, { tokens })
          : new SmtpTransport(
              { host: opts.host, port: Number(opts.port), security: opts.tls as SmtpSecurity, caFile: opts.caFile, auth: { kind: 'oauth', account }, pool: false, transcript: opts.debug ? (l) => ctx.err.write(`${l}\n`) : undefined },
              { tokens },
            );
      try {
        const result = await transport.deliver(envelope, () => Readable.from([raw]));
        if (opts.json) ctx.printJson({ accepted: result.accepted, rejected: result.rejected, response: result.response, messageId: /^Message-ID:\s*<([^>]+)>/im.exec(raw.toString('latin1'))?.[1], durationMs: result.durationMs });
        else ctx.print(`Sent: ${result.response}`);
        if (result.rejected.length) {
          ctx.warn(`Some recipients were refused: ${result.rejected.map((r) => `${r.recipient} (${r.reply.code} ${r.reply.text})`).join('; ')}`);
          process.exitCode = result.rejected.every((r) => r.temporary) ? 75 : 1;
        }
      } finally {
        await transport.close();
      }
    });
}
