/**
 * Messages per minute over the last hour as an inline SVG (no chart library, no script): stacked
 * bars for what delivery did (delivered, deferred, bounced), a line for what clients handed in.
 * Colours come from the stylesheet, so the chart follows the light/dark theme.
 */
import { html, type Html } from './html.js';
import type { MinuteBucket } from './history.js';

const W = 720;
const H = 200;
const PAD = { left: 36, right: 8, top: 12, bottom: 24 };

function niceMax(n: number): number {
  if (n <= 4) return 4;
  const pow = 10 ** Math.floor(Math.log10(n));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * pow).find((s) => s >= n / 4) ?? pow * 10;
  return Math.ceil(n / step) * step;
}

export function trafficChart(buckets: MinuteBucket[]): Html {
  const totals = { accepted: 0, delivered: 0, deferred: 0, bounced: 0 };
  let peak = 0;
  for (const b of buckets) {
    for (const k of Object.keys(totals) as Array<keyof typeof totals>) totals[k] += b.counts[k];
    peak = Math.max(peak, b.counts.accepted, b.counts.delivered + b.counts.deferred + b.counts.bounced);
  }
  const max = niceMax(peak);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const slot = plotW / buckets.length;
  const barW = Math.max(1, slot - 2);
  const y = (v: number) => PAD.top + plotH - (v / max) * plotH;
  const fmt = (n: number) => n.toFixed(1);

  const grid = [0, max / 2, max].map(
    (v) => html`<line class="grid" x1="${PAD.left}" x2="${W - PAD.right}" y1="${fmt(y(v))}" y2="${fmt(y(v))}"/><text class="axis" x="${PAD.left - 6}" y="${fmt(y(v) + 4)}" text-anchor="end">${v}</text>`,
  );
  const bars = buckets.map((b, i) => {
    const x = fmt(PAD.left + i * slot + 1);
    let base = 0;
    const parts: Html[] = [];
    for (const k of ['delivered', 'deferred', 'bounced'] as const) {
      const v = b.counts[k];
      if (!v) continue;
      parts.push(html`<rect class="bar-${k}" x="${x}" y="${fmt(y(base + v))}" width="${fmt(barW)}" height="${fmt(y(base) - y(base + v))}"><title>${new Date(b.minute).toISOString().slice(11, 16)} UTC: ${v} ${k}</title></rect>`);
      base += v;
    }
    return parts;
  });
  const points = buckets.map((b, i) => `${fmt(PAD.left + i * slot + slot / 2)},${fmt(y(b.counts.accepted))}`).join(' ');
  const labels = [
    { i: 0, text: '60 min ago', anchor: 'start' },
    { i: Math.floor(buckets.length / 2), text: '30 min ago', anchor: 'middle' },
    { i: buckets.length - 1, text: 'now', anchor: 'end' },
  ].map((l) => html`<text class="axis" x="${fmt(PAD.left + l.i * slot + (l.anchor === 'start' ? 0 : l.anchor === 'end' ? slot : slot / 2))}" y="${H - 6}" text-anchor="${l.anchor}">${l.text}</text>`);
  const summary = `Last hour: ${totals.accepted} accepted, ${totals.delivered} delivered, ${totals.deferred} deferred, ${totals.bounced} bounced; busiest minute ${peak}.`;

  return html`<figure class="chart">
<svg viewBox="0 0 ${W} ${H}" role="img" aria-labelledby="chart-title chart-desc" preserveAspectRatio="xMidYMid meet">
<title id="chart-title">Messages per minute, last hour</title>
<desc id="chart-desc">${summary}</desc>
${grid}${bars}
<polyline class="line-accepted" points="${points}"/>
${labels}
</svg>
<figcaption><span class="key key-accepted"></span>accepted ${totals.accepted} <span class="key key-delivered"></span>delivered ${totals.delivered} <span class="key key-deferred"></span>deferred ${totals.deferred} <span class="key key-bounced"></span>bounced ${totals.bounced}</figcaption>
</figure>`;
}
