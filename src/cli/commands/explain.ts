import type { Command } from 'commander';
import { explain, langFrom } from '../../core/catalogue.js';
import { UsageError } from '../../core/errors.js';
import type { CliContext } from '../context.js';

/** `relay365 explain CODE-OR-REPLY`: the cause and the fix for an AADSTS code or a server reply. */
export function register(program: Command, ctx: CliContext): void {
  program
    .command('explain')
    .argument('<code-or-reply...>', 'an AADSTS code (AADSTS50173 or 50173) or a server reply pasted as text')
    .description("Explain a Microsoft error (AADSTS code, SMTP/IMAP/POP reply, Graph error) in plain words, with the fix")
    .option('--lang <lang>', 'en or ja (default: from LANG)')
    .option('--json', 'JSON output')
    .action((words: string[], opts: { lang?: string; json?: boolean }) => {
      const input = words.join(' ');
      const entry = explain(input);
      if (!entry) throw new UsageError(`No catalogue entry matches "${input.slice(0, 120)}".`, { hint: 'Paste the whole reply line (e.g. "535 5.7.3 Authentication unsuccessful") or the AADSTS number.' });
      const lang = langFrom(ctx.env, opts.lang);
      const text = entry[lang];
      if (opts.json) return ctx.printJson({ id: entry.id, kind: entry.kind, temporary: entry.temporary, cause: text.cause, fix: text.fix });
      const labels = lang === 'ja' ? ['原因', '対処', '一時的なエラー', '恒久的なエラー'] : ['Cause', 'Fix', 'temporary', 'permanent'];
      ctx.print(`${entry.id} (${entry.temporary ? labels[2] : labels[3]})\n${labels[0]}: ${text.cause}\n${labels[1]}: ${text.fix}`);
    });
}
