/**
 * relay365 command-line entry point. Exit codes: 0 ok, 1 permanent failure, 2 usage or
 * configuration error, 75 temporary failure (sendmail's EX_TEMPFAIL), 70 internal error.
 */
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { ExitCode } from '../core/exit.js';
import { isRelay365Error, toRelay365Error } from '../core/errors.js';
import { CliContext } from './context.js';
import { registrars } from './commands/index.js';
import { releaseHeldSignals } from './early-signals.js';

export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export function buildProgram(out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): { program: Command; ctx: CliContext } {
  const program = new Command('relay365');
  const ctx = new CliContext(program, out, err);
  program
    .description('SMTP relay, mailer, fetcher and diagnostics for Microsoft 365 / Outlook.com with OAuth 2.0')
    .version(version(), '-V, --version')
    .option('-c, --config <file>', 'configuration file (YAML); default $RELAY365_CONFIG or /etc/relay365/relay365.yaml if present')
    .option('--state <dir>', 'state directory (token store, queue); default $RELAY365_STATE_DIR or ~/.local/state/relay365')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (logs go to stderr)')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: (s) => out.write(s),
      writeErr: (s) => err.write(s),
    })
    .addHelpText(
      'after',
      '\nExit codes: 0 ok, 1 permanent failure, 2 usage/configuration error, 75 temporary failure (retry later).',
    )
    // Signals held while the modules loaded (./early-signals.ts) are serve's to claim; any other
    // command meets them now, as it would have without the holding.
    .hook('preAction', (_program, command) => {
      if (command.name() !== 'serve') releaseHeldSignals();
    });
  for (const register of registrars) register(program, ctx);
  for (const sub of program.commands) applyExitOverride(sub);
  return { program, ctx };
}

function applyExitOverride(cmd: Command): void {
  cmd.exitOverride();
  cmd.showHelpAfterError();
  for (const sub of cmd.commands) applyExitOverride(sub);
}

/** Runs the CLI; resolves to the process exit code. */
export async function main(argv: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  // Installed as /usr/sbin/sendmail (or invoked as `relay365 sendmail`): sendmail(8) options are
  // not commander-shaped (-oi, -f addr, -t), so they bypass the parser.
  const invokedAs = basename(argv[1] ?? '');
  if (invokedAs === 'sendmail' || argv[2] === 'sendmail') {
    const args = invokedAs === 'sendmail' ? argv.slice(2) : argv.slice(3);
    releaseHeldSignals();
    const { runSendmail } = await import('./sendmail.js').catch(() => ({ runSendmail: undefined }));
    if (!runSendmail) {
      err.write('relay365: sendmail mode is not available in this build\n');
      return ExitCode.SOFTWARE;
    }
    return runSendmail(args, { out, err });
  }

  const { program, ctx } = buildProgram(out, err);
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.OK;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return ExitCode.OK;
      return ExitCode.USAGE;
    }
    const error = isRelay365Error(e) ? e : toRelay365Error(e);
    const wantsJson = argv.includes('--json');
    if (wantsJson) {
      err.write(`${JSON.stringify(error.toJSON())}\n`);
    } else {
      err.write(`relay365: ${error.message}\n`);
      if (error.hint) err.write(`hint: ${error.hint}\n`);
    }
    if (!isRelay365Error(e) || error.code === 'INTERNAL') {
      try {
        ctx.log().debug({ err: e }, 'command failed');
      } catch {
        // logging must never turn an error into a crash
      }
      return ExitCode.SOFTWARE;
    }
    return error.exitCode;
  }
}
