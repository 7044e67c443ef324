/**
 * The sandbox's Exchange Online POP3 endpoint (995 implicit TLS, 110 + STLS), hand-written so it
 * answers with Exchange's literal lines (fact sheet §3.4). Deletions happen at QUIT, as RFC 1939 says.
 */
import type { SandboxContext } from '../context.js';
import { checkMailAuth, decodeXoauth2, greetingTag } from './auth.js';
import { startLineServer } from './listener.js';
import type { StoredMessage } from './store.js';

export function startPop3Server(ctx: SandboxContext, host: string, port: number, implicitTls: boolean): Promise<{ port: number; stop(): Promise<void> }> {
  return startLineServer(ctx, host, port, implicitTls, `+OK The Microsoft Exchange POP3 service is ready. [${greetingTag(ctx.hostname)}]`, (conn) => {
    let mailbox: string | undefined;
    let messages: StoredMessage[] = [];
    const deleted = new Set<number>();
    let pendingAuth = false;
    const write = conn.write;

    const handle = (line: string) => {
      if (pendingAuth) {
        pendingAuth = false;
        authenticate(line);
        return;
      }
      const [verbRaw = '', ...args] = line.split(' ');
      const verb = verbRaw.toUpperCase();
      const n = Number(args[0]);
      const msg = () => (Number.isInteger(n) && n >= 1 && n <= messages.length && !deleted.has(n) ? messages[n - 1] : undefined);
      if (!mailbox && !['CAPA', 'STLS', 'AUTH', 'USER', 'PASS', 'QUIT', 'NOOP'].includes(verb)) {
        write('-ERR Command is not valid in this state.');
        return;
      }
      switch (verb) {
        case 'CAPA':
          write('+OK');
          for (const c of ['TOP', 'UIDL', 'SASL PLAIN XOAUTH2', 'USER', ...(conn.secure ? [] : ['STLS']), '.']) write(c);
          return;
        case 'STLS': {
          if (conn.secure) {
            write('-ERR Command is not valid in this state.');
            return;
          }
          write('+OK Begin TLS negotiation');
          conn.upgrade();
          return;
        }
        case 'AUTH': {
          const mech = (args[0] ?? '').toUpperCase();
          if (mech !== 'XOAUTH2') {
            write('-ERR Unrecognized authentication type.');
            return;
          }
          if (args[1]) authenticate(args[1]);
          else {
            pendingAuth = true;
            // Trailing space after "+" is UNVERIFIED (fact sheet §3.4); RFC 5034 sends "+ ".
            write('+ ');
          }
          return;
        }
        case 'USER':
        case 'PASS':
          write('-ERR Logon failure: unknown user name or bad password.');
          return;
        case 'STAT': {
          const live = messages.filter((_, i) => !deleted.has(i + 1));
          write(`+OK ${live.length} ${live.reduce((a, m) => a + m.raw.length, 0)}`);
          return;
        }
        case 'LIST':
        case 'UIDL': {
          const value = (m: StoredMessage) => (verb === 'LIST' ? String(m.raw.length) : `${m.uid}`);
          if (args[0]) {
            const m = msg();
            write(m ? `+OK ${n} ${value(m)}` : '-ERR No such message.');
            return;
          }
          write('+OK');
          messages.forEach((m, i) => {
            if (!deleted.has(i + 1)) write(`${i + 1} ${value(m)}`);
          });
          write('.');
          return;
        }
        case 'RETR':
        case 'TOP': {
          const m = msg();
          if (!m) {
            write('-ERR No such message.');
            return;
          }
          let body = m.raw.toString('latin1').replace(/\r?\n/g, '\r\n');
          if (verb === 'TOP') {
            const lines = Number(args[1] ?? 0);
            const idx = body.indexOf('\r\n\r\n');
            const head = idx < 0 ? body : body.slice(0, idx + 4);
            const rest = idx < 0 ? '' : body.slice(idx + 4).split('\r\n').slice(0, lines).join('\r\n');
            body = head + rest;
          }
          const stuffed = body.split('\r\n').map((l) => (l.startsWith('.') ? `.${l}` : l));
          if (stuffed.at(-1) === '') stuffed.pop();
          conn.socket.write(`+OK\r\n${stuffed.join('\r\n')}\r\n.\r\n`, 'latin1');
          return;
        }
        case 'DELE':
          if (!msg()) {
            write('-ERR No such message.');
            return;
          }
          deleted.add(n);
          write('+OK');
          return;
        case 'RSET':
          deleted.clear();
          write('+OK');
          return;
        case 'NOOP':
          write('+OK');
          return;
        case 'QUIT':
          if (mailbox && deleted.size) ctx.mail.expunge(mailbox, [...deleted].map((i) => messages[i - 1]!.uid));
          write('+OK Microsoft Exchange Server POP3 server signing off.');
          conn.socket.end();
          return;
        default:
          write('-ERR Protocol error. 14');
      }
    };

    const authenticate = (payload: string) => {
      const bearer = decodeXoauth2(payload);
      const fault = ctx.faults.take('pop.auth', bearer?.user ?? '');
      if (fault?.kind === 'drop') {
        conn.socket.destroy();
        return;
      }
      if (fault?.kind === 'reply') {
        write(fault.reply);
        return;
      }
      const r = bearer ? checkMailAuth(ctx, 'pop', bearer) : undefined;
      // POP has no "authenticated but not connected" state: missing FullAccess fails at AUTH.
      if (!r || !r.ok || !r.connected) {
        write('-ERR Authentication failure: unknown user name or bad password.');
        return;
      }
      mailbox = r.mailbox;
      messages = [...ctx.mail.mailbox(mailbox).messages];
      write('+OK User successfully authenticated.');
    };

    return handle;
  });
}
