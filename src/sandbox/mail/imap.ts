/**
 * The sandbox's Exchange Online IMAP endpoint (993 implicit TLS, 143 + STARTTLS), hand-written so
 * it answers with Exchange's literal lines (fact sheet §3.3, §7). It implements what a mail
 * fetcher needs — one INBOX, UID FETCH/SEARCH/STORE, EXPUNGE, IDLE — not a full IMAP4rev1 server.
 */
import type { SandboxContext } from '../context.js';
import { checkMailAuth, decodeXoauth2, greetingTag } from './auth.js';
import { startLineServer } from './listener.js';
import type { MailboxState, StoredMessage } from './store.js';

const CAPS = 'IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+';
const CAPS_AUTHENTICATED = 'IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+ CLIENTACCESSRULES CLIENTNETWORKPRESENCELOCATION BACKENDAUTHENTICATE';

/** Split an IMAP argument string into atoms, "quoted strings" and (parenthesised lists). */
function tokenize(s: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < s.length) {
    if (s[i] === ' ') {
      i++;
      continue;
    }
    if (s[i] === '"') {
      let j = i + 1;
      let v = '';
      while (j < s.length && s[j] !== '"') {
        if (s[j] === '\\') j++;
        v += s[j++];
      }
      out.push(v);
      i = j + 1;
    } else if (s[i] === '(') {
      let depth = 0;
      let j = i;
      for (; j < s.length; j++) {
        if (s[j] === '(') depth++;
        else if (s[j] === ')' && --depth === 0) break;
      }
      out.push(s.slice(i, j + 1));
      i = j + 1;
    } else {
      let j = i;
      let depth = 0;
      while (j < s.length && (s[j] !== ' ' || depth > 0)) {
        if (s[j] === '[') depth++;
        if (s[j] === ']') depth--;
        j++;
      }
      out.push(s.slice(i, j));
      i = j;
    }
  }
  return out;
}

function inSet(set: string, n: number, max: number): boolean {
  return set.split(',').some((part) => {
    const [a, b] = part.split(':');
    const lo = a === '*' ? max : Number(a);
    const hi = b === undefined ? lo : b === '*' ? max : Number(b);
    return n >= Math.min(lo, hi) && n <= Math.max(lo, hi);
  });
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
function imapDate(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getUTCDate())}-${MONTHS[d.getUTCMonth()]}-${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

export function startImapServer(ctx: SandboxContext, host: string, port: number, implicitTls: boolean): Promise<{ port: number; stop(): Promise<void> }> {
  return startLineServer(ctx, host, port, implicitTls, `* OK The Microsoft Exchange IMAP4 service is ready. [${greetingTag(ctx.hostname)}]`, (conn) => {
    let auth: { mailbox: string; connected: boolean } | undefined;
    let box: MailboxState | undefined;
    let readOnly = false;
    let view: StoredMessage[] = [];
    let pendingAuth: string | undefined;
    let idleTag: string | undefined;
    const write = conn.write;
    /** New mail is announced during IDLE, or at the next NOOP/IDLE if it arrived in between. */
    const sync = () => {
      if (box && box.messages.length > view.length) {
        view = [...box.messages];
        write(`* ${view.length} EXISTS`);
      }
    };
    const onAppend = (address: string) => {
      if (auth && box && idleTag && address === auth.mailbox) sync();
    };
    ctx.mail.on('append', onAppend);
    conn.onClose(() => ctx.mail.off('append', onAppend));

    const authenticate = (tag: string, payload: string) => {
      const bearer = decodeXoauth2(payload);
      const fault = ctx.faults.take('imap.auth', bearer?.user ?? '');
      if (fault?.kind === 'reply') return write(`${tag} ${fault.reply}`);
      if (fault?.kind === 'drop') return conn.socket.destroy();
      const r = bearer ? checkMailAuth(ctx, 'imap', bearer) : undefined;
      if (!r || !r.ok) return write(`${tag} NO AUTHENTICATE failed.`);
      auth = { mailbox: r.mailbox, connected: r.connected };
      write(`${tag} OK AUTHENTICATE completed.`);
    };

    const fetchItems = (m: StoredMessage, seq: number, items: string[], uidMode: boolean): Buffer => {
      const parts: Array<string | Buffer> = [];
      const wants = new Set(items.map((i) => i.toUpperCase()));
      if (uidMode) wants.add('UID');
      if (wants.has('UID')) parts.push(`UID ${m.uid}`);
      if (wants.has('FLAGS')) parts.push(`FLAGS (${[...m.flags].join(' ')})`);
      if (wants.has('RFC822.SIZE')) parts.push(`RFC822.SIZE ${m.raw.length}`);
      if (wants.has('INTERNALDATE')) parts.push(`INTERNALDATE "${imapDate(m.internalDate)}"`);
      if (wants.has('ENVELOPE')) parts.push('ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)');
      for (const item of wants) {
        const b = /^(BODY(?:\.PEEK)?\[\]|RFC822|BODY\.PEEK\[HEADER\]|BODY\[HEADER\])$/.exec(item);
        if (!b) continue;
        let data = m.raw;
        if (item.includes('HEADER')) {
          const i = data.indexOf('\r\n\r\n');
          data = i >= 0 ? data.subarray(0, i + 4) : data;
        }
        const name = item.replace('.PEEK', '');
        parts.push(Buffer.concat([Buffer.from(`${name} {${data.length}}\r\n`), data]));
        if (!item.includes('PEEK') && !readOnly && !m.flags.has('\\Seen')) {
          m.flags.add('\\Seen');
          if (!wants.has('FLAGS')) parts.push(`FLAGS (${[...m.flags].join(' ')})`);
        }
      }
      const chunks: Buffer[] = [Buffer.from(`* ${seq} FETCH (`)];
      parts.forEach((p, i) => chunks.push(Buffer.from(i ? ' ' : ''), Buffer.isBuffer(p) ? p : Buffer.from(p)));
      chunks.push(Buffer.from(')\r\n'));
      return Buffer.concat(chunks);
    };

    const search = (criteria: string[], uidMode: boolean): number[] => {
      const out: number[] = [];
      view.forEach((m, i) => {
        let ok = true;
        for (let k = 0; k < criteria.length; k++) {
          const c = criteria[k]!.toUpperCase();
          if (c === 'ALL') continue;
          else if (c === 'UNSEEN') ok &&= !m.flags.has('\\Seen');
          else if (c === 'SEEN') ok &&= m.flags.has('\\Seen');
          else if (c === 'DELETED') ok &&= m.flags.has('\\Deleted');
          else if (c === 'UNDELETED') ok &&= !m.flags.has('\\Deleted');
          else if (c === 'SINCE') ok &&= m.internalDate.getTime() >= Date.parse(criteria[++k]!.replace(/-/g, ' ')) - 86_400_000;
          else if (c === 'UID') ok &&= inSet(criteria[++k]!, m.uid, box!.uidNext - 1);
          else if (/^[\d*:,]+$/.test(c)) ok &&= inSet(c, i + 1, view.length);
        }
        if (ok) out.push(uidMode ? m.uid : i + 1);
      });
      return out;
    };

    const handle = (line: string) => {
      if (idleTag) {
        if (line.toUpperCase() === 'DONE') {
          write(`${idleTag} OK IDLE completed.`);
          idleTag = undefined;
        }
        return;
      }
      if (pendingAuth) {
        const tag = pendingAuth;
        pendingAuth = undefined;
        if (line === '*') return write(`${tag} BAD AUTHENTICATE cancelled.`);
        return authenticate(tag, line);
      }
      const sp = line.indexOf(' ');
      const tag = sp < 0 ? line : line.slice(0, sp);
      const rest = sp < 0 ? '' : line.slice(sp + 1);
      const tokens = tokenize(rest);
      let cmd = (tokens[0] ?? '').toUpperCase();
      const args = tokens.slice(1);
      let uidMode = false;
      if (cmd === 'UID') {
        uidMode = true;
        cmd = (args.shift() ?? '').toUpperCase();
      }
      if (auth && !auth.connected && !['LOGOUT', 'CAPABILITY', 'NOOP', 'ID'].includes(cmd)) {
        // Fact sheet §3.3/§7: the token is valid but the identity has no access to the mailbox.
        write(`${tag} BAD User is authenticated but not connected.`);
        write('* BYE Connection closed. 14');
        conn.socket.end();
        return;
      }
      switch (cmd) {
        case 'CAPABILITY':
          write(`* CAPABILITY ${auth ? CAPS_AUTHENTICATED : CAPS}${!conn.secure ? ' STARTTLS' : ''}`);
          return write(`${tag} OK CAPABILITY completed.`);
        case 'ID':
          write('* ID ("name" "Microsoft.Exchange.Imap4.Imap4Server" "version" "15.20")');
          return write(`${tag} OK ID completed.`);
        case 'NOOP':
          sync();
          return write(`${tag} OK NOOP completed.`);
        case 'LOGOUT':
          write('* BYE Microsoft Exchange Server IMAP4 server signing off.');
          write(`${tag} OK LOGOUT completed.`);
          return void conn.socket.end();
        case 'STARTTLS': {
          if (conn.secure) return write(`${tag} BAD Command received in Invalid state.`);
          write(`${tag} OK Begin TLS negotiation now.`);
          return conn.upgrade();
        }
        case 'LOGIN':
          return write(`${tag} NO LOGIN failed.`);
        case 'AUTHENTICATE': {
          if ((args[0] ?? '').toUpperCase() !== 'XOAUTH2') return write(`${tag} NO AUTHENTICATE failed.`);
          if (args[1]) return authenticate(tag, args[1]);
          pendingAuth = tag;
          // Exact continuation text is UNVERIFIED (fact sheet §3.3); RFC 3501 sends "+ ".
          return write('+ ');
        }
      }
      if (!auth) return write(`${tag} BAD Command received in Invalid state.`);
      switch (cmd) {
        case 'NAMESPACE':
          write('* NAMESPACE (("" "/")) NIL NIL');
          return write(`${tag} OK NAMESPACE completed.`);
        case 'LIST':
        case 'LSUB':
          if ((args[1] ?? '') !== '') write(`* ${cmd} (\\Marked \\HasNoChildren) "/" INBOX`);
          else write(`* ${cmd} (\\Noselect) "/" ""`);
          return write(`${tag} OK ${cmd} completed.`);
        case 'STATUS': {
          const b = ctx.mail.mailbox(auth.mailbox);
          write(`* STATUS INBOX (MESSAGES ${b.messages.length} UIDNEXT ${b.uidNext} UIDVALIDITY ${b.uidValidity} UNSEEN ${b.messages.filter((m) => !m.flags.has('\\Seen')).length})`);
          return write(`${tag} OK STATUS completed.`);
        }
        case 'SELECT':
        case 'EXAMINE': {
          if ((args[0] ?? '').toUpperCase() !== 'INBOX') return write(`${tag} NO The requested item could not be found.`);
          box = ctx.mail.mailbox(auth.mailbox);
          view = [...box.messages];
          readOnly = cmd === 'EXAMINE';
          write(`* ${view.length} EXISTS`);
          write('* 0 RECENT');
          write('* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $MDNSent)');
          write('* OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $MDNSent)] Permanent flags');
          write(`* OK [UIDVALIDITY ${box.uidValidity}] UIDVALIDITY value`);
          write(`* OK [UIDNEXT ${box.uidNext}] The next unique identifier value`);
          return write(`${tag} OK [${readOnly ? 'READ-ONLY' : 'READ-WRITE'}] ${cmd} completed.`);
        }
      }
      if (!box) return write(`${tag} BAD Command received in Invalid state.`);
      switch (cmd) {
        case 'FETCH': {
          const set = args[0] ?? '';
          const items = (args[1] ?? '').replace(/^\(|\)$/g, '');
          const list = tokenize(items).map((i) => (i === 'FAST' ? 'FLAGS INTERNALDATE RFC822.SIZE' : i === 'ALL' ? 'FLAGS INTERNALDATE RFC822.SIZE ENVELOPE' : i)).flatMap((i) => i.split(' '));
          view.forEach((m, i) => {
            if (inSet(set, uidMode ? m.uid : i + 1, uidMode ? box!.uidNext - 1 : view.length)) conn.socket.write(fetchItems(m, i + 1, list, uidMode));
          });
          return write(`${tag} OK FETCH completed.`);
        }
        case 'SEARCH': {
          const ids = search(args.filter((a) => a.toUpperCase() !== 'CHARSET' && a.toUpperCase() !== 'UTF-8' && a.toUpperCase() !== 'US-ASCII'), uidMode);
          write(`* SEARCH${ids.length ? ` ${ids.join(' ')}` : ''}`);
          return write(`${tag} OK SEARCH completed.`);
        }
        case 'STORE': {
          const [set = '', op = '', ...flagArgs] = args;
          const flags = flagArgs.join(' ').replace(/^\(|\)$/g, '').split(' ').filter(Boolean);
          const silent = op.toUpperCase().endsWith('.SILENT');
          view.forEach((m, i) => {
            if (!inSet(set, uidMode ? m.uid : i + 1, uidMode ? box!.uidNext - 1 : view.length)) return;
            if (op.startsWith('+')) flags.forEach((f) => m.flags.add(f));
            else if (op.startsWith('-')) flags.forEach((f) => m.flags.delete(f));
            else m.flags = new Set(flags);
            if (!silent) write(`* ${i + 1} FETCH (${uidMode ? `UID ${m.uid} ` : ''}FLAGS (${[...m.flags].join(' ')}))`);
          });
          return write(`${tag} OK STORE completed.`);
        }
        case 'EXPUNGE':
        case 'CLOSE': {
          const gone = view.map((m, i) => ({ m, seq: i + 1 })).filter(({ m }) => m.flags.has('\\Deleted') && (!uidMode || inSet(args[0] ?? '*', m.uid, box!.uidNext - 1)));
          if (!readOnly) {
            ctx.mail.expunge(auth.mailbox, gone.map((g) => g.m.uid));
            if (cmd === 'EXPUNGE') for (const g of [...gone].reverse()) write(`* ${g.seq} EXPUNGE`);
            const removed = new Set(gone.map((g) => g.m));
            view = view.filter((m) => !removed.has(m));
          }
          // Mail that arrived meanwhile is announced, not silently absorbed into the view: a client
          // in a fetch-delete-IDLE loop would otherwise never learn of it.
          if (cmd === 'CLOSE') box = undefined;
          else sync();
          return write(`${tag} OK ${cmd} completed.`);
        }
        case 'UNSELECT':
          box = undefined;
          return write(`${tag} OK UNSELECT completed.`);
        case 'IDLE':
          idleTag = tag;
          write('+ IDLE accepted, awaiting DONE command.');
          return sync();
        default:
          return write(`${tag} BAD Command Error. 10`);
      }
    };

    return handle;
  });
}
