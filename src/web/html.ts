/**
 * Server-side HTML with escaping by default: `html\`<p>${value}</p>\`` escapes every interpolated
 * value and scrubs it with redactText(), so a token that slips into an error message still never
 * reaches the page. Nested `html` fragments and arrays of them are inserted as they are.
 */
import { redactText } from '../core/redact.js';

export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function render(value: unknown): string {
  if (value instanceof Html) return value.value;
  if (Array.isArray(value)) return value.map(render).join('');
  if (value === undefined || value === null || value === false) return '';
  return escapeHtml(redactText(String(value)));
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1]!;
  return new Html(out);
}

/**
 * Escaped but not scrubbed: for values relay365 made itself and that must survive intact (CSRF
 * tokens, authorization URLs, queue ids), never for text that came from outside.
 */
export function verbatim(text: string): Html {
  return new Html(escapeHtml(text));
}

export function formatTime(iso: string | number | undefined, now = Date.now()): Html {
  if (iso === undefined || iso === '') return html`<span class="muted">—</span>`;
  const t = typeof iso === 'number' ? iso : Date.parse(iso);
  if (!Number.isFinite(t)) return html`${String(iso)}`;
  const d = new Date(t);
  const abs = `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
  return html`<time datetime="${d.toISOString()}" title="${abs}">${relative(t - now)}</time>`;
}

export function relative(deltaMs: number): string {
  const future = deltaMs > 0;
  const s = Math.abs(Math.round(deltaMs / 1000));
  const text = s < 5 ? 'just now' : s < 90 ? `${s} s` : s < 5400 ? `${Math.round(s / 60)} min` : s < 172_800 ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86_400)} days`;
  if (text === 'just now') return text;
  return future ? `in ${text}` : `${text} ago`;
}

export function formatDuration(seconds: number | undefined): string {
  if (seconds === undefined) return '—';
  if (seconds < 90) return `${seconds} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}
