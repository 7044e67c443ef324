import type { Command } from 'commander';
import { join } from 'node:path';
import { UsageError } from '../../core/errors.js';
import type { CliContext } from '../context.js';

/** `relay365 sandbox`: run the local Microsoft 365 emulator until SIGINT/SIGTERM. */
export function register(program: Command, ctx: CliContext): void {
  program
    .command('sandbox')
    .description('Run a local emulator of Microsoft 365 (identity platform, Exchange SMTP/IMAP/POP3, Graph) for trials and tests')
    .option('--directory <file>', 'directory YAML (tenants, users, apps); default: the built-in demo directory')
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--smtp-port <port>', 'SMTP submission port (0 = free)', '0')
    .option('--identity-port <port>', 'identity platform HTTPS port (0 = free)', '0')
    .option('--token-lifetime <seconds>', 'access token lifetime', '3599')
    .option('--json', 'print endpoints as JSON')
    .action(async (opts: { directory?: string; host: string; smtpPort: string; identityPort: string; tokenLifetime: string; json?: boolean }) => {
      const port = (v: string, name: string) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`--${name} must be a port number (0-65535), got "${v}"`);
        return n;
      };
      const stateDir = join(ctx.stateDir(), 'sandbox');
      // Handled before start-up writes sandbox.json: a stop requested then still stops cleanly.
      const stopped = new Promise<void>((resolve) => {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      });
      // Loaded on use: the relay does not carry the emulator (node-forge, mailparser) in memory.
      const { startSandbox } = await import('../../sandbox/index.js');
      const sb = await startSandbox({
        stateDir,
        directory: opts.directory,
        host: opts.host,
        ports: { smtp: port(opts.smtpPort, 'smtp-port'), identity: port(opts.identityPort, 'identity-port') },
        tokenLifetimeSeconds: Number(opts.tokenLifetime),
      });
      if (opts.json) ctx.printJson({ endpoints: sb.endpoints, caFile: sb.caFile, tenantId: sb.tenantId, stateFile: join(stateDir, 'sandbox.json') });
      else {
        const e = sb.endpoints;
        ctx.print(
          [
            'relay365 sandbox is running (a local emulator of Microsoft 365; not Microsoft).',
            `  identity platform  ${e.authorityHost}/{tenant}/oauth2/v2.0/{authorize,token,devicecode}`,
            `  SMTP (STARTTLS)    ${e.smtp.host}:${e.smtp.port}`,
            `  SMTP HVE           ${e.smtpHve.host}:${e.smtpHve.port}`,
            `  IMAP (TLS/STARTTLS) ${e.imap.host}:${e.imap.port} / ${e.imapStarttls.port}`,
            `  POP3 (TLS/STLS)    ${e.pop3.host}:${e.pop3.port} / ${e.pop3Stls.port}`,
            `  Graph              ${e.graph}/v1.0/users/{id}/sendMail`,
            `  admin API          ${e.admin}`,
            `  CA certificate     ${sb.caFile}`,
            `  state file         ${join(stateDir, 'sandbox.json')}`,
            '',
            sb.directory.describe(),
            '',
            'Press Ctrl-C to stop.',
          ].join('\n'),
        );
      }
      await stopped;
      await sb.stop();
    });
}
