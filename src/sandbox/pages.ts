/** Minimal self-contained HTML for the sandbox sign-in pages (no external assets). */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export function renderPage(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(title)}</title>
<style>body{font-family:system-ui,sans-serif;background:#f2f2f2;margin:0}main{max-width:26rem;margin:4rem auto;background:#fff;padding:2rem;box-shadow:0 2px 6px rgba(0,0,0,.2)}
label{display:block;margin-top:1rem}input{width:100%;padding:.5rem;box-sizing:border-box}button{margin-top:1.2rem;padding:.5rem 1.2rem;background:#0067b8;color:#fff;border:0;margin-right:.5rem}
#error{color:#a00}</style></head><body><main>${body}<p style="color:#777;font-size:.8rem">relay365 sandbox — a local emulator, not Microsoft.</p></main></body></html>`;
}
