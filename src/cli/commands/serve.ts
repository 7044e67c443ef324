import type { Command } from 'commander';
import { RelayService } from '../../relay/index.js';
import { loadConfigFile } from '../../config/index.js';
import { writeFileAtomic } from '../../core/fs.js';
import { join } from 'node:path';
import { hashPassword } from '../../relay/policy.js';
import { UsageError } from '../../core/errors.js';
import type { CliContext } from '../context.js';
import { claimHeldSignals } from '../early-signals.js';

/** `relay365 serve`: the relay (SIGTERM: graceful stop; SIGHUP: reload). */
export function register(program: Command, ctx: CliContext): void {
  program
    .command('serve')
    .description('Run the SMTP relay: legacy clients in, Microsoft 365 with OAuth out (embedded defaults: 127.0.0.1:2525, SQLite queue, loopback clients only)')
    .action(async () => {
      const log = ctx.log();
      // Signals are handled from the first moment: relay.json (what supervisors and tests wait
      // for) appears during start-up, and a SIGTERM or SIGHUP arriving then must not hit Node's
      // default action, which kills the process without the graceful stop. Those that came while
      // the modules loaded were held for serve (../early-signals.ts).
      const held = claimHeldSignals();
      const hup: { reload?: () => void; pending: boolean } = { pending: held.includes('SIGHUP') };
      const stopped = new Promise<void>((resolve) => {
        process.once('SIGTERM', () => resolve());
        process.once('SIGINT', () => resolve());
      });
      process.on('SIGHUP', () => (hup.reload ? hup.reload() : (hup.pending = true)));
      if (held.includes('SIGTERM') || held.includes('SIGINT')) {
        log.info({ signal: held.find((s) => s !== 'SIGHUP') }, 'stop requested while starting; nothing was started');
        return;
      }
      const service = await RelayService.start({ config: ctx.cfg, stateDir: ctx.stateDir(), log, env: ctx.env });
      const configFile = ctx.config().file;
      // The admin page (and prom-client, ~5 MB) is loaded only when it is enabled.
      const webModule = ctx.cfg.web.enabled ? await import('../../web/index.js') : undefined;
      const web = webModule ? await webModule.startAdminServer({ ...webModule.adminOptionsFor(service), log, configFile }) : undefined;
      if (web) await writeFileAtomic(join(ctx.stateDir(), 'relay.json'), `${JSON.stringify({ pid: process.pid, smtp: service.inbound.bound, web: web.url }, null, 2)}\n`, 0o644);
      // The file the configuration came from (--config, $RELAY365_CONFIG or the default path).
      hup.reload = () => {
        if (!configFile) return log.info('SIGHUP: no configuration file to reload (embedded defaults)');
        try {
          const next = loadConfigFile(configFile).config;
          service.reload(next);
          web?.reload(next, configFile);
        } catch (err) {
          log.error({ err }, 'reload failed; keeping the running configuration');
        }
      };
      if (hup.pending) hup.reload();
      const where = service.inbound.bound.map((b) => `${b.address}:${b.port}${b.tls !== 'none' ? ` (${b.tls})` : ''}`).join(', ');
      const accounts = await service.tokens.accounts();
      ctx.err.write(`relay365 relay listening on ${where}${web ? `; admin page, metrics and health on ${web.url}` : ''}; state ${ctx.stateDir()}; ${accounts.length} account(s)${accounts.length ? '' : ' — add one with `relay365 account add`'}\n`);
      await stopped;
      await web?.stop();
      await service.stop();
    });

  const relay = program.command('relay').description('Relay helpers');
  relay
    .command('hash-password')
    .description('Print an scrypt hash for relay.users[].password_hash (reads the password from stdin)')
    .action(async () => {
      const chunks: Buffer[] = [];
      for await (const c of process.stdin) chunks.push(c as Buffer);
      const pw = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
      if (!pw) throw new UsageError('Pipe the password on stdin: echo -n secret | relay365 relay hash-password');
      ctx.print(hashPassword(pw));
    });
}
