/**
 * The page's only stylesheet and script, served from the admin listener itself (CSP 'self': no
 * inline code, no CDN). The script is optional sugar — every action is a plain form POST and every
 * view a server-rendered page, so the admin page works with scripting off and with a keyboard.
 */
import { createHash } from 'node:crypto';

export const STYLESHEET = `
:root { --bg:#f7f8fa; --fg:#1d2330; --muted:#5d6675; --card:#fff; --line:#dde1e7; --accent:#1f5fbf; --accent-fg:#fff;
  --ok:#1e7f4f; --warn:#a86400; --bad:#b42318; --info:#1f5fbf; --focus:#ffbf47; color-scheme: light dark; }
@media (prefers-color-scheme: dark) { :root { --bg:#14171c; --fg:#e6e9ef; --muted:#9aa3b2; --card:#1c2027; --line:#2e343e;
  --accent:#6ea8ff; --accent-fg:#0b1220; --ok:#4cc38a; --warn:#f0b429; --bad:#ff6b5b; --info:#6ea8ff; } }
* { box-sizing: border-box; }
html { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", "Noto Sans", "Hiragino Sans", sans-serif; background: var(--bg); color: var(--fg); }
body { margin: 0; }
a { color: var(--accent); }
a:focus-visible, button:focus-visible, input:focus-visible, select:focus-visible, summary:focus-visible, textarea:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.skip { position: absolute; left: -999px; top: 0; background: var(--card); padding: .5rem 1rem; z-index: 10; }
.skip:focus { left: .5rem; }
header.top { background: var(--card); border-bottom: 1px solid var(--line); }
header.top .inner { max-width: 1180px; margin: 0 auto; padding: .6rem 1.25rem; display: flex; align-items: center; gap: 1.5rem; flex-wrap: wrap; }
.brand { font-weight: 700; font-size: 1.1rem; color: var(--fg); text-decoration: none; letter-spacing: .01em; }
.brand span { color: var(--accent); }
nav.main { display: flex; gap: .25rem; flex: 1; flex-wrap: wrap; }
nav.main a { padding: .35rem .7rem; border-radius: 6px; text-decoration: none; color: var(--fg); }
nav.main a[aria-current="page"] { background: var(--accent); color: var(--accent-fg); }
nav.main a:hover { background: var(--line); }
nav.main a[aria-current="page"]:hover { background: var(--accent); }
.who { color: var(--muted); font-size: .9rem; display: flex; gap: .75rem; align-items: center; }
main { max-width: 1180px; margin: 0 auto; padding: 1.25rem; }
h1 { font-size: 1.45rem; margin: .25rem 0 1rem; }
h2 { font-size: 1.1rem; margin: 1.75rem 0 .6rem; }
.muted { color: var(--muted); }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 1rem 1.1rem; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); gap: .75rem; }
.stat { display: block; text-decoration: none; color: inherit; background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: .75rem 1rem; }
.stat:hover { border-color: var(--accent); }
.stat .n { font-size: 1.8rem; font-weight: 650; display: block; font-variant-numeric: tabular-nums; }
.stat .label { color: var(--muted); font-size: .85rem; text-transform: uppercase; letter-spacing: .05em; }
.stat.warn .n { color: var(--warn); } .stat.bad .n { color: var(--bad); } .stat.ok .n { color: var(--ok); }
table { width: 100%; border-collapse: collapse; background: var(--card); border: 1px solid var(--line); border-radius: 10px; overflow: hidden; }
th, td { text-align: left; padding: .5rem .7rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: .8rem; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); background: var(--bg); }
tr:last-child td { border-bottom: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: .88em; }
.reply { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .85em; word-break: break-word; }
.badge { display: inline-block; padding: .05rem .5rem; border-radius: 999px; font-size: .8rem; font-weight: 600; border: 1px solid currentColor; white-space: nowrap; }
.badge.ok { color: var(--ok); } .badge.warn { color: var(--warn); } .badge.bad { color: var(--bad); } .badge.info { color: var(--info); } .badge.muted { color: var(--muted); }
.explain { margin: .25rem 0 0; font-size: .9rem; }
.explain b { font-weight: 600; }
.notice { border-left: 4px solid var(--info); background: var(--card); padding: .7rem 1rem; border-radius: 6px; margin: 0 0 1rem; }
.notice.bad { border-color: var(--bad); } .notice.ok { border-color: var(--ok); } .notice.warn { border-color: var(--warn); }
form.inline { display: inline; margin: 0; }
.actions { display: flex; gap: .5rem; flex-wrap: wrap; align-items: center; }
button, .button { font: inherit; padding: .4rem .9rem; border-radius: 6px; border: 1px solid var(--accent); background: var(--accent); color: var(--accent-fg); cursor: pointer; text-decoration: none; display: inline-block; }
button.secondary, .button.secondary { background: transparent; color: var(--accent); }
button.danger { background: transparent; border-color: var(--bad); color: var(--bad); }
button:hover { filter: brightness(1.08); }
td .actions { gap: .35rem; }
td .actions button { padding: .2rem .55rem; font-size: .85rem; }
label { display: block; font-weight: 600; margin: .6rem 0 .2rem; }
label .hint, .field-hint { font-weight: 400; color: var(--muted); font-size: .85rem; }
input[type=text], input[type=password], input[type=search], input[type=email], input[type=url], select, textarea { font: inherit; width: 100%; max-width: 32rem; padding: .4rem .55rem; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); color: var(--fg); }
fieldset { border: 1px solid var(--line); border-radius: 8px; margin: .75rem 0; padding: .5rem .9rem .8rem; }
legend { font-weight: 600; padding: 0 .3rem; }
fieldset label.choice { display: inline-flex; gap: .35rem; font-weight: 400; margin-right: 1.1rem; align-items: center; }
details summary { cursor: pointer; color: var(--accent); margin: .5rem 0; }
.filters { display: flex; gap: .6rem; flex-wrap: wrap; align-items: end; margin-bottom: .9rem; }
.filters label { margin: 0 0 .2rem; font-size: .85rem; }
.filters input, .filters select { width: auto; min-width: 14rem; }
.filters select { min-width: 9rem; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 1rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .3rem 1rem; margin: 0; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; word-break: break-word; }
.device-code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 2rem; letter-spacing: .2em; font-weight: 700; padding: .3rem .8rem; border: 2px dashed var(--accent); border-radius: 8px; display: inline-block; user-select: all; }
pre.config { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 1rem; overflow: auto; font-size: .85rem; }
figure.chart { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: .75rem 1rem .6rem; }
figure.chart svg { width: 100%; height: auto; display: block; }
figure.chart figcaption { font-size: .85rem; color: var(--muted); display: flex; gap: .35rem 1rem; flex-wrap: wrap; align-items: center; }
.key { display: inline-block; width: .8rem; height: .8rem; border-radius: 2px; margin-right: .3rem; vertical-align: -1px; }
.key-accepted { background: var(--info); height: .2rem; vertical-align: middle; }
.key-delivered, .bar-delivered { background: var(--ok); fill: var(--ok); }
.key-deferred, .bar-deferred { background: var(--warn); fill: var(--warn); }
.key-bounced, .bar-bounced { background: var(--bad); fill: var(--bad); }
.line-accepted { fill: none; stroke: var(--info); stroke-width: 2; stroke-linejoin: round; }
svg .grid { stroke: var(--line); stroke-width: 1; }
svg .axis { fill: var(--muted); font-size: 11px; }
.login { max-width: 24rem; margin: 4rem auto; }
.login h1 { text-align: center; }
.login input { max-width: none; }
.login button { width: 100%; margin-top: 1rem; padding: .55rem; }
.empty { color: var(--muted); padding: 1rem; text-align: center; }
time { white-space: nowrap; }
.actions.bulk { margin: -.3rem 0 .9rem; }
.pager { display: flex; gap: 1rem; margin-top: .75rem; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
footer { max-width: 1180px; margin: 2rem auto 1rem; padding: 0 1.25rem; color: var(--muted); font-size: .8rem; }
`;

export const SCRIPT = `
'use strict';
// Live regions: an element with data-refresh="N" and an id is re-read from the server every N
// seconds (the same URL, server-rendered) unless the tab is hidden or someone is typing in it.
// Keyboard focus on a link or button survives the swap. Coming back to the tab refreshes at once.
(function () {
  function typingIn(el) {
    var a = document.activeElement;
    return a && el.contains(a) && /^(INPUT|TEXTAREA|SELECT)$/.test(a.tagName);
  }
  function focusKey(el) {
    var a = document.activeElement;
    if (!a || a === document.body || !el.contains(a)) return null;
    if (a.id) return '#' + CSS.escape(a.id);
    if (a.tagName === 'A' && a.getAttribute('href')) return 'a[href="' + CSS.escape(a.getAttribute('href')) + '"]';
    var form = a.form || (a.closest && a.closest('form'));
    if (form && form.getAttribute('action')) return 'form[action="' + CSS.escape(form.getAttribute('action')) + '"] button';
    return null;
  }
  function update(el) {
    return fetch(location.href, { credentials: 'same-origin', headers: { 'x-relay365-refresh': '1' } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (text) {
        var fresh = text && new DOMParser().parseFromString(text, 'text/html').getElementById(el.id);
        if (!fresh || !document.body.contains(el) || typingIn(el)) return;
        var key = focusKey(el);
        el.replaceWith(fresh);
        var again = key && fresh.querySelector(key);
        if (again) again.focus();
        if (fresh.hasAttribute('data-refresh')) schedule(fresh);
      })
      .catch(function () {});
  }
  function schedule(el) {
    var seconds = Number(el.getAttribute('data-refresh')) || 5;
    setTimeout(function () {
      if (!document.body.contains(el)) return;
      if (document.hidden || typingIn(el)) return schedule(el);
      update(el).then(function () { if (document.body.contains(el)) schedule(el); });
    }, seconds * 1000);
  }
  document.querySelectorAll('[data-refresh][id]').forEach(schedule);
  document.addEventListener('visibilitychange', function () {
    if (!document.hidden) document.querySelectorAll('[data-refresh][id]').forEach(update);
  });
  document.addEventListener('submit', function (e) {
    var question = e.target.getAttribute && e.target.getAttribute('data-confirm');
    if (question && !window.confirm(question)) e.preventDefault();
  });
})();
`;

export const ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#1f5fbf"/><path d="M6 10h20v13H6z" fill="none" stroke="#fff" stroke-width="2.2" stroke-linejoin="round"/><path d="M6 10l10 8 10-8" fill="none" stroke="#fff" stroke-width="2.2" stroke-linejoin="round"/></svg>`;

export const ASSETS: Record<string, { type: string; body: string; etag: string }> = Object.fromEntries(
  [
    ['/static/app.css', 'text/css; charset=utf-8', STYLESHEET],
    ['/static/app.js', 'text/javascript; charset=utf-8', SCRIPT],
    ['/static/icon.svg', 'image/svg+xml', ICON],
  ].map(([path, type, body]) => [path!, { type: type!, body: body!, etag: `"${createHash('sha256').update(body!).digest('base64url').slice(0, 16)}"` }]),
);
