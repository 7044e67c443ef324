/**
 * Text rendering of a check report in English or Japanese: one line per step with ✓/✗, its
 * duration and what it found; under a failure, the cause and the fix.
 */
import { LABELS, type Lang } from '../core/catalogue.js';
import type { CheckReport, CheckStep, StepId } from './types.js';

export const STEP_NAMES: Record<Lang, Record<StepId, string>> = {
  en: { configuration: 'configuration', dns: 'DNS', tcp: 'TCP', tls: 'TLS', greeting: 'greeting', capabilities: 'capabilities', token: 'token', claims: 'token claims', auth: 'AUTH', mailbox: 'mailbox access', 'mail-from': 'MAIL FROM', 'test-message': 'test message' },
  ja: { configuration: '設定', dns: 'DNS', tcp: 'TCP 接続', tls: 'TLS', greeting: 'グリーティング', capabilities: '機能一覧', token: 'トークン取得', claims: 'トークンの内容', auth: '認証 (AUTH)', mailbox: 'メールボックス', 'mail-from': 'MAIL FROM', 'test-message': 'テストメール' },
};

const MARK: Record<CheckStep['status'], string> = { pass: '✓', fail: '✗', warn: '!', skip: '-' };

const width = (s: string) => [...s].reduce((w, ch) => w + (/[\u1100-\uffff]/.test(ch) ? 2 : 1), 0);
const pad = (s: string, n: number) => s + ' '.repeat(Math.max(0, n - width(s)));

export function formatReport(report: CheckReport, lang: Lang): string {
  const l = LABELS[lang];
  const names = STEP_NAMES[lang];
  const fill = (s: string) => s.replace(/<account>|<アカウント>/g, report.account);
  const out: string[] = [];
  for (const p of report.protocols) {
    out.push(`${p.protocol.toUpperCase()} ${p.target} — ${report.account}`);
    for (const s of p.steps) {
      const ms = s.status === 'skip' ? '' : `${s.durationMs} ms`;
      out.push(`  ${MARK[s.status]} ${pad(names[s.id], 16)} ${pad(ms, 8)} ${s.status === 'skip' ? (lang === 'ja' ? '未実行' : s.detail) : s.detail}`);
      if (s.reply) out.push(`      ${lang === 'ja' ? 'サーバーの応答' : 'Server said'}: ${s.reply}`);
      if (s.explanation && (s.status === 'fail' || s.status === 'warn')) {
        const e = s.explanation[lang];
        out.push(`      ${l.cause}: ${fill(e.cause)}`, `      ${l.fix}: ${fill(e.fix)}`);
      }
    }
    out.push('');
  }
  const failed = report.protocols.flatMap((p) => p.steps.filter((s) => s.status === 'fail'));
  if (lang === 'ja') out.push(report.ok ? '結果: すべてのステップに成功しました。' : `結果: ${failed.length} 個のステップが失敗しました。`);
  else out.push(report.ok ? 'Result: every step passed.' : `Result: ${failed.length} step(s) failed.`);
  return out.join('\n');
}
