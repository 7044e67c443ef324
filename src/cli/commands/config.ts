import type { Command } from 'commander';
import { stringify } from 'yaml';
import { defaultConfig, loadConfigFile } from '../../config/index.js';
import { sanitize } from '../../core/redact.js';
import type { CliContext } from '../context.js';

/** `relay365 config defaults|check`, modelled on `postconf -d` / `postconf -n`. */
export function register(program: Command, ctx: CliContext): void {
  const config = program.command('config').description('Show defaults or validate a configuration file');

  config
    .command('defaults')
    .description('Print every setting with its default value (like postconf -d)')
    .option('--json', 'print JSON instead of YAML')
    .action((opts: { json?: boolean }) => {
      const defaults = defaultConfig();
      if (opts.json) ctx.printJson(defaults);
      else ctx.print(stringify(defaults));
    });

  config
    .command('check')
    .argument('<file>', 'configuration file (YAML)')
    .description('Validate FILE and print the settings it changes from the defaults (like postconf -n)')
    .option('--json', 'print JSON')
    .action((file: string, opts: { json?: boolean }) => {
      const loaded = loadConfigFile(file);
      const changed = sanitize(loaded.raw);
      if (opts.json) ctx.printJson({ file, valid: true, changed });
      else ctx.print(`${file}: valid\n${Object.keys(changed as object).length ? stringify(changed) : '(all defaults)\n'}`);
    });
}
