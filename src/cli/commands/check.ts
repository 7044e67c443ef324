import type { Command } from 'commander';
import { UsageError } from '../../core/errors.js';
import { langFrom } from '../../core/catalogue.js';
import { ExitCode } from '../../core/exit.js';
import { openTokenManager } from '../../oauth/index.js';
import type { CheckProtocol, Endpoint } from '../../check/index.js';
import type { CliContext } from '../context.js';

interface CheckCliOptions {
  protocol: string;
  mailbox?: string;
  sendTestTo?: string;
  host?: string;
  port?: string;
  tls?: string;
  caFile?: string;
  graphUrl?: string;
  lang?: string;
  json?: boolean;
  transcript?: boolean;
}

const ALL: CheckProtocol[] = ['smtp', 'imap', 'pop3', 'graph'];
/** Default port per protocol and TLS mode (DEFAULT_ENDPOINTS holds the same for the default mode). */
const PORTS = { smtp: { starttls: 587, implicit: 465 }, imap: { starttls: 143, implicit: 993 }, pop3: { starttls: 110, implicit: 995 } } as const;

/** `relay365 check EMAIL`: every stage of SMTP/IMAP/POP3/Graph access, with the cause and fix of the first failure. */
export function register(program: Command, ctx: CliContext): void {
  program
    .command('check')
    .argument('<email>', 'account to check (from `relay365 account add`)')
    .description('Diagnose an account step by step (configuration, DNS, TCP, TLS, greeting, token, claims, AUTH, MAIL FROM/mailbox) — exit 0 only when every step passed')
    .option('--protocol <protocol>', 'smtp, imap, pop3, graph or all', 'smtp')
    .option('--mailbox <address>', 'mailbox for SASL user= / Graph /users/{id} (default: the account\'s mailbox)')
    .option('--send-test-to <address>', 'also send a short test message to this address')
    .option('--host <host>', 'server host (SMTP/IMAP/POP3)')
    .option('--port <port>', 'server port (one protocol only)')
    .option('--tls <mode>', 'starttls or implicit')
    .option('--ca-file <file>', 'extra CA (PEM) for the servers and the token endpoint')
    .option('--graph-url <url>', 'Graph base URL', 'https://graph.microsoft.com')
    .option('--lang <lang>', 'en or ja (default: from LANG)')
    .option('--json', 'JSON report (includes the protocol transcript)')
    .option('--transcript', 'also print the protocol transcript (secrets redacted)')
    .action(async (email: string, opts: CheckCliOptions) => {
      if (opts.lang && opts.lang !== 'en' && opts.lang !== 'ja') throw new UsageError('--lang must be en or ja');
      const wanted = opts.protocol === 'pop' ? 'pop3' : opts.protocol;
      if (wanted !== 'all' && !ALL.includes(wanted as CheckProtocol)) throw new UsageError('--protocol must be smtp, imap, pop3, graph or all');
      const protocols = wanted === 'all' ? ALL : [wanted as CheckProtocol];
      if (opts.port && protocols.length > 1) throw new UsageError('--port applies to one protocol; use --protocol smtp|imap|pop3');
      if (opts.tls && opts.tls !== 'starttls' && opts.tls !== 'implicit') throw new UsageError('--tls must be starttls or implicit');
      // Loaded on use: `serve` and the other commands do not pay for this command's libraries.
      const { DEFAULT_ENDPOINTS, formatReport, runCheck } = await import('../../check/index.js');
      const endpoints: Partial<Record<Exclude<CheckProtocol, 'graph'>, Endpoint>> = {};
      for (const p of ['smtp', 'imap', 'pop3'] as const) {
        const d = DEFAULT_ENDPOINTS[p];
        const tls = (opts.tls as Endpoint['tls'] | undefined) ?? d.tls;
        const port = opts.port ? Number(opts.port) : PORTS[p][tls];
        if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new UsageError(`--port: not a port: ${opts.port}`);
        endpoints[p] = { host: opts.host ?? d.host, port, tls };
      }
      const tokens = openTokenManager({ stateDir: ctx.stateDir(), caFile: opts.caFile, env: ctx.env });
      const report = await runCheck({ account: email.toLowerCase(), protocols, mailbox: opts.mailbox?.toLowerCase(), tokens, endpoints, graphUrl: opts.graphUrl, caFile: opts.caFile, sendTestTo: opts.sendTestTo });
      const lang = langFrom(ctx.env, opts.lang);
      if (opts.json) {
        ctx.printJson({
          ...report,
          protocols: report.protocols.map((p) => ({
            ...p,
            steps: p.steps.map(({ explanation, ...s }) => ({ ...s, ...(explanation ? { explanation: { id: explanation.id, temporary: explanation.temporary, cause: explanation[lang].cause, fix: explanation[lang].fix } } : {}) })),
          })),
        });
      } else {
        ctx.print(formatReport(report, lang));
        if (opts.transcript) for (const p of report.protocols) ctx.print(`\n${p.protocol.toUpperCase()} transcript:\n${p.transcript.join('\n')}`);
      }
      if (!report.ok) process.exitCode = ExitCode.PERMANENT;
    });
}
