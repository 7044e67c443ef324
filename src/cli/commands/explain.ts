import type { Command } from 'commander';
import { explain, explainReply, langFrom, localize, LABELS, type ReplyProtocol } from '../../core/catalogue.js';
import { UsageError } from '../../core/errors.js';
import type { CliContext } from '../context.js';

const PROTOCOLS = ['smtp', 'imap', 'pop', 'pop3', 'graph'];

/** `relay365 explain CODE-OR-REPLY`: the cause and the fix for an AADSTS code or a server reply. */
export function register(program: Command, ctx: CliContext): void {
  program
    .command('explain')
    .argument('<code-or-reply...>', 'an AADSTS code (AADSTS50173 or 50173) or a server reply pasted as text')
    .description('Explain a Microsoft error (AADSTS code, SMTP/IMAP/POP reply, Graph error) in plain words, with the fix')
    .option('--lang <lang>', 'en or ja (default: from LANG)')
    .option('--protocol <protocol>', 'only consider replies of smtp, imap, pop3 or graph')
    .option('--json', 'JSON output')
    .action((words: string[], opts: { lang?: string; json?: boolean; protocol?: string }) => {
      if (opts.lang && opts.lang !== 'en' && opts.lang !== 'ja') throw new UsageError('--lang must be en or ja');
      if (opts.protocol && !PROTOCOLS.includes(opts.protocol)) throw new UsageError('--protocol must be smtp, imap, pop3 or graph');
      const input = words.join(' ');
      const entry = opts.protocol ? explainReply(input, opts.protocol as ReplyProtocol) : explain(input);
      if (!entry) throw new UsageError(`No catalogue entry matches "${input.slice(0, 120)}".`, { hint: 'Paste the whole reply line (e.g. "535 5.7.3 Authentication unsuccessful") or the AADSTS number. docs/errors.md lists every entry.' });
      const lang = langFrom(ctx.env, opts.lang);
      const text = localize(entry, lang);
      if (opts.json) return ctx.printJson(text);
      const l = LABELS[lang];
      ctx.print(`${entry.id} (${entry.temporary ? l.temporary : l.permanent})\n${l.cause}: ${text.cause}\n${l.fix}: ${text.fix}`);
    });
}
