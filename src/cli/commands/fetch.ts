import type { Command } from 'commander';
import { UsageError } from '../../core/errors.js';
import { openTokenManager } from '../../oauth/index.js';
import type { FetchOptions, FetchResult } from '../../fetch/index.js';
import type { CliContext } from '../context.js';

interface FetchCliOptions {
  protocol: string;
  mailbox?: string;
  folder: string;
  since?: string;
  unseen?: boolean;
  to: string;
  delete?: boolean;
  markSeen?: boolean;
  watch?: boolean;
  interval: string;
  host: string;
  port?: string;
  tls: string;
  caFile?: string;
  debug?: boolean;
  json?: boolean;
}

const DEFAULT_PORTS: Record<string, Record<string, number>> = { imap: { implicit: 993, starttls: 143 }, pop3: { implicit: 995, starttls: 110 } };

/** `relay365 fetch EMAIL`: IMAP/POP3 with XOAUTH2 into maildir, mbox, stdout or a command. */
export function register(program: Command, ctx: CliContext): void {
  program
    .command('fetch')
    .argument('<email>', 'account (from `relay365 account add`) whose token authenticates')
    .description('Fetch mail over IMAP or POP3 with OAuth (XOAUTH2); each message is stored before it is marked or deleted upstream, and only new mail is delivered on later runs')
    .option('--protocol <protocol>', 'imap or pop3', 'imap')
    .option('--mailbox <address>', 'mailbox to open (SASL user=): a shared mailbox, or the target of app-only access')
    .option('--folder <name>', 'IMAP folder', 'INBOX')
    .option('--since <date>', 'IMAP: only messages received on or after this date (YYYY-MM-DD)')
    .option('--unseen', 'IMAP: only messages without \\Seen')
    .option('--to <destination>', "maildir:DIR, mbox:FILE, stdout or exec:'CMD' (the command gets each message on stdin; exit 0 = delivered)", 'stdout')
    .option('--delete', 'delete each message upstream once it is stored')
    .option('--mark-seen', 'IMAP: set \\Seen on each message once it is stored')
    .option('--watch', 'keep running: IMAP IDLE, POP3 polling; stops on SIGTERM/SIGINT')
    .option('--interval <seconds>', 'POP3 poll interval / retry delay for --watch', '60')
    .option('--host <host>', 'server', 'outlook.office365.com')
    .option('--port <port>', 'port (default 993/995 implicit TLS, 143/110 with --tls starttls)')
    .option('--tls <mode>', 'implicit or starttls', 'implicit')
    .option('--ca-file <file>', 'extra CA (PEM) for the server and the token endpoint')
    .option('--debug', 'POP3: print the protocol transcript to stderr (tokens redacted)')
    .option('--json', 'print the counts as JSON')
    .action(async (email: string, opts: FetchCliOptions) => {
      const protocol = opts.protocol === 'pop' ? 'pop3' : opts.protocol;
      if (protocol !== 'imap' && protocol !== 'pop3') throw new UsageError('--protocol must be imap or pop3');
      if (opts.tls !== 'implicit' && opts.tls !== 'starttls') throw new UsageError('--tls must be implicit or starttls');
      if (opts.delete && opts.markSeen) throw new UsageError('use either --delete or --mark-seen');
      if (protocol === 'pop3' && (opts.markSeen || opts.unseen || opts.since || opts.folder !== 'INBOX')) throw new UsageError('--mark-seen, --unseen, --since and --folder are IMAP-only (POP3 has one folder and no flags)');
      let since: Date | undefined;
      if (opts.since) {
        since = new Date(opts.since);
        if (Number.isNaN(since.getTime())) throw new UsageError(`--since: not a date: ${opts.since}`);
      }
      const port = opts.port ? Number(opts.port) : DEFAULT_PORTS[protocol]![opts.tls]!;
      if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new UsageError(`--port: not a port: ${opts.port}`);
      const interval = Number(opts.interval);
      if (!(interval > 0)) throw new UsageError('--interval must be a positive number of seconds');
      // Loaded on use: `serve` and the other commands do not pay for this command's libraries.
      const { fetchOnce, parseDestination, watch } = await import('../../fetch/index.js');
      const tokens = openTokenManager({ stateDir: ctx.stateDir(), caFile: opts.caFile, env: ctx.env });
      const options: FetchOptions = {
        account: email.toLowerCase(),
        protocol,
        mailbox: opts.mailbox?.toLowerCase(),
        folder: opts.folder,
        since,
        unseen: opts.unseen,
        destination: parseDestination(opts.to, ctx.out),
        after: opts.delete ? 'delete' : opts.markSeen ? 'mark-seen' : 'keep',
        host: opts.host,
        port,
        tls: opts.tls,
        caFile: opts.caFile,
        stateDir: ctx.stateDir(),
        tokens,
        note: (l) => ctx.warn(l),
        transcript: opts.debug ? (d, l) => ctx.err.write(`${d}: ${l}\n`) : undefined,
      };
      // With --to stdout the messages own stdout; the summary goes to stderr then.
      const report = (r: FetchResult) => {
        const line = `${r.mailbox}: ${r.delivered} new message(s) to ${options.destination.description}, ${r.alreadyFetched} fetched before${r.deleted ? `, ${r.deleted} deleted` : ''}${r.markedSeen ? `, ${r.markedSeen} marked seen` : ''}`;
        if (opts.json) (opts.to === 'stdout' ? ctx.err : ctx.out).write(`${JSON.stringify(r)}\n`);
        else if (opts.to === 'stdout') ctx.warn(line);
        else ctx.print(line);
      };
      if (!opts.watch) return report(await fetchOnce(options));
      const abort = new AbortController();
      const stop = () => abort.abort();
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      try {
        await watch(options, { signal: abort.signal, intervalSeconds: interval, onPass: (r) => (r.delivered || r.deleted ? report(r) : undefined), onError: (e) => ctx.warn(`${e.message}${e.temporary ? ' (will retry)' : ''}`) });
      } finally {
        process.off('SIGTERM', stop);
        process.off('SIGINT', stop);
      }
    });
}
