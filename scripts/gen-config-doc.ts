/**
 * Writes docs/configuration.md from the configuration schema (src/config/schema.ts): every key
 * with its type, default and description, by walking the zod schema. The schema stays the one
 * source of truth; test/web/docs.test.ts fails when the committed file is stale.
 *
 *   npx tsx scripts/gen-config-doc.ts           # regenerate
 *   npx tsx scripts/gen-config-doc.ts --check   # exit 1 when docs/configuration.md is stale
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configSchema } from '../src/config/schema.js';

export const CONFIG_DOC = fileURLToPath(new URL('../docs/configuration.md', import.meta.url));

// zod 4 keeps a schema's shape in `_zod.def`; only the parts a reference needs are read here.
interface Def {
  type: string;
  innerType?: Schema;
  defaultValue?: unknown;
  shape?: Record<string, Schema>;
  element?: Schema;
  valueType?: Schema;
  options?: Schema[];
  discriminator?: string;
  entries?: Record<string, string>;
  values?: unknown[];
  checks?: Array<{ _zod: { def: { check: string; format?: string; value?: number; inclusive?: boolean } } }>;
}
interface Schema {
  _zod: { def: Def };
  description?: string;
}

interface Row {
  key: string;
  type: string;
  default: string;
  description: string;
}

interface Unwrapped {
  schema: Schema;
  description?: string;
  optional: boolean;
  hasDefault: boolean;
  defaultValue?: unknown;
}

/** Peels optional/default/prefault/nullable wrappers, keeping the outermost description and default. */
function unwrap(schema: Schema): Unwrapped {
  const out: Unwrapped = { schema, description: schema.description, optional: false, hasDefault: false };
  let s = schema;
  for (;;) {
    const d = s._zod.def;
    if (d.type === 'optional' || d.type === 'nullable') out.optional = true;
    else if (d.type === 'default') {
      out.hasDefault = true;
      out.defaultValue = d.defaultValue;
    } else if (d.type !== 'prefault') break;
    s = d.innerType!;
    out.description ??= s.description;
  }
  out.schema = s;
  out.description ??= s.description;
  return out;
}

function typeName(schema: Schema): string {
  const d = schema._zod.def;
  switch (d.type) {
    case 'string':
      return 'string';
    case 'number': {
      const int = d.checks?.some((c) => c._zod.def.format === 'safeint' || c._zod.def.check === 'number_format');
      const min = d.checks?.find((c) => c._zod.def.check === 'greater_than')?._zod.def;
      const max = d.checks?.find((c) => c._zod.def.check === 'less_than')?._zod.def;
      const range = min || max ? ` (${min ? `${min.inclusive ? '≥' : '>'} ${min.value}` : ''}${min && max ? ', ' : ''}${max ? `${max.inclusive ? '≤' : '<'} ${max.value}` : ''})` : '';
      return `${int ? 'integer' : 'number'}${range}`;
    }
    case 'boolean':
      return 'boolean';
    case 'enum':
      return Object.values(d.entries ?? {})
        .map((v) => `\`${v}\``)
        .join(' | ');
    case 'literal':
      return (d.values ?? []).map((v) => `\`${String(v)}\``).join(' | ');
    case 'array':
      return `list of ${typeName(unwrap(d.element!).schema)}`;
    case 'record':
      return `map of name → ${typeName(unwrap(d.valueType!).schema)}`;
    case 'object':
      return 'object';
    case 'union':
      return d.discriminator ? `one of ${d.options!.length} kinds (by \`${d.discriminator}\`)` : 'one of several';
    default:
      return d.type;
  }
}

function yamlInline(value: unknown): string {
  if (value === undefined) return '';
  if (typeof value === 'string') return /^[\w./@:*$-]+$/.test(value) && value !== '' ? value : JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(yamlInline).join(', ')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>);
    return entries.length ? `{ ${entries.map(([k, v]) => `${k}: ${yamlInline(v)}`).join(', ')} }` : '{}';
  }
  return String(value);
}

/** Markdown table cell: pipes escaped; `<`/`>` outside code spans as entities (<state> is not a tag). */
function cell(text: string): string {
  return text
    .split(/(`[^`]*`)/)
    .map((part, i) => (i % 2 ? part : part.replace(/</g, '&lt;').replace(/>/g, '&gt;')))
    .join('')
    .replace(/\|/g, '\\|')
    .replace(/\n/g, ' ');
}

function defaultCell(u: Unwrapped): string {
  if (u.hasDefault) return `\`${yamlInline(u.defaultValue).replace(/\|/g, '\\|')}\``;
  if (u.optional) return '*(unset)*';
  return '*(required)*';
}

function walk(schema: Schema, path: string, rows: Row[], subsections: Array<{ title: string; intro: string; rows: Row[] }>): void {
  const u = unwrap(schema);
  const d = u.schema._zod.def;
  if (d.type === 'object') {
    for (const [key, child] of Object.entries(d.shape!)) {
      const cu = unwrap(child);
      const cd = cu.schema._zod.def;
      const childPath = path ? `${path}.${key}` : key;
      if (cd.type === 'object') {
        walk(child, childPath, rows, subsections);
        continue;
      }
      rows.push({ key: childPath, type: typeName(cu.schema), default: defaultCell(cu), description: cu.description ?? '' });
      const element = cd.type === 'array' ? unwrap(cd.element!).schema : cd.type === 'record' ? unwrap(cd.valueType!).schema : undefined;
      if (element) {
        const itemPath = cd.type === 'array' ? `${childPath}[]` : `${childPath}.<name>`;
        const ed = element._zod.def;
        if (ed.type === 'object') {
          const sub: Row[] = [];
          walk(element, itemPath, sub, subsections);
          subsections.push({ title: `Each entry of \`${childPath}\``, intro: cu.description ?? '', rows: sub });
        } else if (ed.type === 'union' && ed.discriminator) {
          for (const option of ed.options!) {
            const od = unwrap(option).schema._zod.def;
            const kind = od.shape?.[ed.discriminator] ? unwrap(od.shape[ed.discriminator]!).schema._zod.def.values?.[0] : undefined;
            const sub: Row[] = [];
            walk(option, itemPath, sub, subsections);
            subsections.push({ title: `\`${childPath}\` entries with \`${ed.discriminator}: ${String(kind)}\``, intro: '', rows: sub });
          }
        }
      }
    }
  }
}

function table(rows: Row[]): string {
  const lines = ['| key | type | default | description |', '|---|---|---|---|'];
  for (const r of rows) lines.push(`| \`${r.key}\` | ${cell(r.type)} | ${r.default} | ${cell(r.description)} |`);
  return lines.join('\n');
}

export function renderConfigDoc(): string {
  const root = configSchema as unknown as Schema;
  const out: string[] = [
    '# Configuration reference',
    '',
    '<!-- Generated by scripts/gen-config-doc.ts from src/config/schema.ts. Do not edit by hand:',
    '     run `npx tsx scripts/gen-config-doc.ts` after changing the schema. -->',
    '',
    'relay365 reads one YAML file: `--config FILE`, `$RELAY365_CONFIG`, or `/etc/relay365/relay365.yaml` when it',
    'exists; without one it runs on the defaults below. Unknown keys are errors (`file:line: key: unknown key`), and',
    'so are rules or a `default_route` naming a route that `relay.routes` does not have, and TLS listeners without',
    '`cert_file` and `key_file`. `relay365 config defaults` prints every key with its default (like `postconf -d`),',
    '`relay365 config check FILE` validates a file and prints what it changes (like `postconf -n`). The relay',
    'reloads policy, routes and accounts on SIGHUP (`systemctl reload relay365`: cached tokens and pooled upstream',
    'connections are dropped, paused accounts are tried again); listeners and the queue backend need a restart.',
    '',
  ];
  const top: Row[] = [];
  const sections: string[] = [];
  for (const [key, child] of Object.entries(root._zod.def.shape!)) {
    const u = unwrap(child);
    if (u.schema._zod.def.type !== 'object') {
      top.push({ key, type: typeName(u.schema), default: defaultCell(u), description: u.description ?? '' });
      continue;
    }
    const rows: Row[] = [];
    const subs: Array<{ title: string; intro: string; rows: Row[] }> = [];
    walk(child, key, rows, subs);
    const parts = [`## \`${key}\``, '', u.description ?? '', '', table(rows)];
    for (const s of subs) parts.push('', `### ${s.title}`, '', ...(s.intro ? [s.intro, ''] : []), table(s.rows));
    sections.push(parts.join('\n'));
  }
  if (top.length) out.push('## Top level', '', table(top), '');
  out.push(sections.join('\n\n'), '');
  return out.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const text = renderConfigDoc();
  if (process.argv.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(CONFIG_DOC, 'utf8');
    } catch {}
    if (current !== text) {
      process.stderr.write('docs/configuration.md is stale: run `npx tsx scripts/gen-config-doc.ts`\n');
      process.exit(1);
    }
  } else {
    writeFileSync(CONFIG_DOC, text);
    process.stdout.write(`wrote ${CONFIG_DOC}\n`);
  }
}
