/**
 * Loads and validates a YAML configuration file. Every error names the file, the line and the
 * key path (`relay.yaml:12: relay.listen.port: expected a number`), like maddy's config errors.
 */
import { readFileSync } from 'node:fs';
import { parseDocument, LineCounter, isMap, isPair, isScalar, type Node, type Document } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../core/errors.js';
import { configSchema, type Config } from './schema.js';

export interface LoadedConfig {
  config: Config;
  /** Absolute or given path of the file, undefined for embedded defaults. */
  file?: string;
  /** The raw parsed YAML (before defaults), for `config check` to show what differs. */
  raw: unknown;
}

export function defaultConfig(): Config {
  return configSchema.parse({});
}

export function loadConfigFile(file: string): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${file}: cannot read configuration file: ${(err as Error).message}`, { file }, { cause: err });
  }
  return parseConfigText(text, file);
}

export function parseConfigText(text: string, file = '<config>'): LoadedConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const line = lineCounter.linePos(e.pos[0]).line;
    throw new ConfigError(`${file}:${line}: YAML syntax error: ${e.message.split('\n')[0]}`, { file, line });
  }
  const raw = doc.toJS() ?? {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(`${file}:1: the configuration must be a mapping of keys to values`, { file, line: 1 });
  }
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const messages = result.error.issues.map((issue) => describeIssue(issue, doc, lineCounter, file));
    const first = messages[0]!;
    throw new ConfigError(messages.map((m) => m.text).join('\n'), { file, line: first.line, keyPath: first.keyPath });
  }
  return { config: result.data, file, raw };
}

function describeIssue(issue: z.core.$ZodIssue, doc: Document, lc: LineCounter, file: string): { text: string; line?: number; keyPath: string } {
  const path = issue.path.map(String);
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0]!;
    const keyPath = [...path, key].join('.');
    const line = lineOfKey(doc, lc, issue.path as (string | number)[], key);
    return { text: `${file}:${line ?? '?'}: ${keyPath}: unknown key (not a relay365 setting; check the spelling, or see \`relay365 config defaults\`)`, line, keyPath };
  }
  const keyPath = path.join('.') || '(top level)';
  const node = doc.getIn(issue.path as (string | number)[], true) as Node | undefined;
  let line: number | undefined;
  if (node && node.range) line = lc.linePos(node.range[0]).line;
  else if (issue.path.length > 0) line = lineOfKey(doc, lc, issue.path.slice(0, -1) as (string | number)[], String(issue.path.at(-1)));
  // A required key that is missing: the line of the nearest enclosing value that is there.
  for (let n = issue.path.length - 1; line === undefined && n > 0; n--) {
    const enclosing = doc.getIn(issue.path.slice(0, n) as (string | number)[], true) as Node | undefined;
    if (enclosing?.range) line = lc.linePos(enclosing.range[0]).line;
  }
  return { text: `${file}:${line ?? '?'}: ${keyPath}: ${issue.message}`, line, keyPath };
}

function lineOfKey(doc: Document, lc: LineCounter, parentPath: (string | number)[], key: string): number | undefined {
  const parent = parentPath.length === 0 ? doc.contents : doc.getIn(parentPath, true);
  if (!isMap(parent)) return undefined;
  for (const item of parent.items) {
    if (isPair(item) && isScalar(item.key) && String(item.key.value) === key && item.key.range) {
      return lc.linePos(item.key.range[0]).line;
    }
  }
  return undefined;
}
