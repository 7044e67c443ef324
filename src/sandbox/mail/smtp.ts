/**
 * The sandbox's Exchange Online SMTP submission endpoint (smtp.office365.com:587 style) and the
 * HVE endpoint. Hand-written on purpose: an emulator must produce Exchange's literal lines
 * (fact sheet §4.2/§4.3), which a general SMTP server library does not let us shape.
 * Deviation from §4.2: BINARYMIME/CHUNKING are not advertised because BDAT is not implemented.
 */
import net from 'node:net';
import tls from 'node:tls';
import { randomBytes, randomUUID } from 'node:crypto';
import type { SandboxContext } from '../context.js';
import type { Identity } from '../directory.js';
import { checkMailAuth, decodeOauthbearer, decodeXoauth2, identityLabel, LineReader, type MailAuthResult } from './auth.js';

export type SmtpMode = 'submission' | 'hve';

interface Session {
  socket: net.Socket;
  secure: boolean;
  ehlo?: string;
  auth?: Extract<MailAuthResult, { ok: true }>;
  from?: string;
  rcpts: string[];
  data?: Buffer[];
  dataBytes: number;
  pendingAuth?: 'XOAUTH2' | 'OAUTHBEARER' | 'LOGIN-USER' | 'LOGIN-PASS' | 'OAUTHBEARER-ERROR';
  closed: boolean;
  counted?: string;
}

const HOST_SUFFIX = () => `${new Date().toISOString()} ${randomBytes(8).toString('hex').toUpperCase()}`;

export function startSmtpServer(ctx: SandboxContext, mode: SmtpMode, host: string, port: number): Promise<{ server: net.Server; port: number; stop(): Promise<void> }> {
  const active = new Map<string, number>(); // authenticated connections per mailbox
  const minuteLog = new Map<string, number[]>(); // message timestamps per mailbox
  const dayLog = new Map<string, Array<{ at: number; n: number }>>(); // recipients per mailbox
  const sockets = new Set<net.Socket>();
  const secureContext = tls.createSecureContext({ key: ctx.tls.key, cert: ctx.tls.cert, minVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0' });
  const hostname = ctx.hostname;
  const bracket = () => `[${hostname} ${HOST_SUFFIX()}]`;

  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const s: Session = { socket, secure: false, rcpts: [], dataBytes: 0, closed: false };
    const write = (line: string) => {
      if (!s.closed && !s.socket.destroyed) s.socket.write(`${line}\r\n`);
    };
    const close = () => {
      s.closed = true;
      s.socket.end();
    };
    const release = () => {
      if (s.counted) {
        active.set(s.counted, Math.max(0, (active.get(s.counted) ?? 1) - 1));
        s.counted = undefined;
      }
    };
    socket.on('close', release);

    const fault = async (stage: Parameters<typeof ctx.faults.take>[0], subject = ''): Promise<boolean> => {
      const f = ctx.faults.take(stage, subject);
      if (!f) return false;
      if (f.kind === 'delay') {
        await new Promise((r) => setTimeout(r, f.ms));
        return false;
      }
      if (f.kind === 'drop') {
        s.closed = true;
        s.socket.destroy();
        return true;
      }
      if (f.kind === 'reply') {
        write(f.reply);
        if (f.reply.startsWith('421')) close();
        return true;
      }
      return false;
    };

    const ehloLines = (name: string) => {
      const lines = [
        `${hostname} Hello [${socket.remoteAddress?.replace(/^::ffff:/, '')}]`,
        'SIZE 157286400',
        'PIPELINING',
        'DSN',
        'ENHANCEDSTATUSCODES',
        ...(s.secure ? ['AUTH LOGIN XOAUTH2'] : ['STARTTLS']),
        '8BITMIME',
        'SMTPUTF8',
      ];
      void name;
      return lines.map((l, i) => `250${i === lines.length - 1 ? ' ' : '-'}${l}`);
    };

    const authFailureReply = (r: Extract<MailAuthResult, { ok: false }>): string => {
      if (mode === 'hve') return '501 5.5.124 Invalid XOAUTH2 auth data';
      switch (r.reason) {
        case 'smtp-disabled-tenant':
          return `535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. ${bracket()}`;
        case 'smtp-disabled-mailbox':
          return `535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information. ${bracket()}`;
        case 'security-defaults':
          return `535 5.7.139 Authentication unsuccessful, user is locked by your organization's security defaults policy. Contact your administrator. ${bracket()}`;
        default:
          return `535 5.7.3 Authentication unsuccessful ${bracket()}`;
      }
    };

    const finishAuth = async (mechanism: 'XOAUTH2' | 'OAUTHBEARER', payload: string) => {
      const bearer = mechanism === 'XOAUTH2' ? decodeXoauth2(payload) : decodeOauthbearer(payload);
      if (await fault('smtp.auth', bearer?.user ?? '')) return;
      if (!bearer) {
        // Exchange answers 535 even for undecodable input (fact sheet §3.5).
        write(mode === 'hve' ? '501 5.5.124 Invalid XOAUTH2 auth data' : `535 5.7.3 Authentication unsuccessful ${bracket()}`);
        return;
      }
      const result = checkMailAuth(ctx, 'smtp', bearer);
      if (!result.ok) {
        if (mechanism === 'OAUTHBEARER' && result.reason === 'token') {
          // RFC 7628 §3.2.2: error challenge first, the client answers ^A, then the final failure.
          const challenge = Buffer.from(JSON.stringify({ status: 'invalid_token', scope: 'https://outlook.office.com/SMTP.Send', 'openid-configuration': 'https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration' })).toString('base64');
          s.pendingAuth = 'OAUTHBEARER-ERROR';
          write(`334 ${challenge}`);
          return;
        }
        write(authFailureReply(result));
        return;
      }
      if (mode === 'hve' && result.expiresAt - ctx.now() < 10 * 60_000) {
        write('501 5.5.127 Invalid XOAUTH2 auth data - Token will expire soon');
        return;
      }
      if ((active.get(result.mailbox) ?? 0) >= ctx.limits.concurrentPerMailbox) {
        write(`432 4.3.2 Concurrent connections limit exceeded. Visit https://aka.ms/concurrent_sending for more information. [Hostname=${hostname}]`);
        return;
      }
      active.set(result.mailbox, (active.get(result.mailbox) ?? 0) + 1);
      s.counted = result.mailbox;
      s.auth = result;
      write('235 2.7.0 Authentication successful');
    };

    const resetTransaction = () => {
      s.from = undefined;
      s.rcpts = [];
      s.data = undefined;
      s.dataBytes = 0;
    };

    const endOfData = async () => {
      const raw = Buffer.concat(s.data ?? []);
      s.data = undefined;
      const auth = s.auth!;
      if (await fault('smtp.dataEnd', `${auth.mailbox} ${s.rcpts.join(' ')}`)) {
        resetTransaction();
        return;
      }
      if (raw.length > ctx.limits.maxMessageBytes) {
        write(`552 5.3.4 Message size exceeds fixed maximum message size [Hostname=${hostname}]`);
        resetTransaction();
        return;
      }
      const fromHeader = headerAddress(raw, 'from') ?? s.from!;
      const identity: Identity = auth.identity;
      if (identity.kind === 'app' && !auth.connected) {
        write(`430 4.2.0 STOREDRV; mailbox logon failure; STOREDRV.Submission.Exception:ConnectionFailedTransientException.MapiExceptionLogonFailed; Failed to process message due to a transient exception with message Cannot open mailbox. [Hostname=${hostname}]`);
        resetTransaction();
        return;
      }
      for (const sender of new Set([s.from!.toLowerCase(), fromHeader.toLowerCase()])) {
        if (sender && sender !== auth.mailbox && !ctx.directory.canSendAs(identity, sender)) {
          write(
            ctx.limits.sendAsReply === '5.7.60'
              ? `550 5.7.60 SMTP; Client does not have permissions to send as this sender [${hostname}]`
              : `554 5.2.252 SendAsDenied; ${auth.mailbox} not allowed to send as ${sender}; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due to a permanent exception with message [BeginDiagnosticData]Cannot submit message.[EndDiagnosticData] [Hostname=${hostname}]`,
          );
          resetTransaction();
          return;
        }
      }
      const now = ctx.now();
      const day = (dayLog.get(auth.mailbox) ?? []).filter((e) => e.at > now - 86_400_000);
      const sentToday = day.reduce((n, e) => n + e.n, 0);
      if (sentToday + s.rcpts.length > ctx.limits.recipientsPerDay) {
        write(`554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception with message The message can't be submitted because the sender's submission quota was exceeded. [Hostname=${hostname}]`);
        resetTransaction();
        return;
      }
      // Over 30 messages/minute Exchange delays rather than rejects (fact sheet §4.5).
      const minute = (minuteLog.get(auth.mailbox) ?? []).filter((t) => t > now - 60_000);
      if (minute.length >= ctx.limits.messagesPerMinute) await new Promise((r) => setTimeout(r, ctx.limits.rateDelayMs));
      minute.push(ctx.now());
      minuteLog.set(auth.mailbox, minute);
      day.push({ at: now, n: s.rcpts.length });
      dayLog.set(auth.mailbox, day);
      const messageId = headerValue(raw, 'message-id')?.replace(/[<>]/g, '') ?? `${randomUUID()}@${auth.mailbox.split('@')[1]}`;
      ctx.mail.recordOutbound({ via: mode === 'hve' ? 'hve' : 'smtp', from: s.from!, to: [...s.rcpts], raw, identity: identityLabel(identity), messageId });
      for (const r of s.rcpts) if (ctx.directory.user(r)) ctx.mail.append(r, raw);
      write(`250 2.0.0 OK <${messageId}> [Hostname=${hostname}]`);
      resetTransaction();
    };

    let queue = Promise.resolve();
    const handle = async (line: string) => {
      if (s.closed) return;
      if (s.data) {
        if (line === '.') {
          await endOfData();
          return;
        }
        const bytes = Buffer.from(`${line.startsWith('.') ? line.slice(1) : line}\r\n`, 'latin1');
        s.dataBytes += bytes.length;
        if (s.dataBytes <= ctx.limits.maxMessageBytes + 1024 * 1024) s.data.push(bytes);
        return;
      }
      if (s.pendingAuth) {
        const pending = s.pendingAuth;
        s.pendingAuth = undefined;
        if (line === '*') {
          write('501 5.7.0 Authentication cancelled');
          return;
        }
        if (pending === 'OAUTHBEARER-ERROR') {
          write(`535 5.7.3 Authentication unsuccessful ${bracket()}`);
          return;
        }
        if (pending === 'LOGIN-USER') {
          s.pendingAuth = 'LOGIN-PASS';
          write('334 UGFzc3dvcmQ6');
          return;
        }
        if (pending === 'LOGIN-PASS') {
          write(`535 5.7.139 Authentication unsuccessful, basic authentication is disabled. ${bracket()}`);
          return;
        }
        await finishAuth(pending, line);
        return;
      }
      const [verbRaw = '', ...rest] = line.split(' ');
      const verb = verbRaw.toUpperCase();
      const arg = rest.join(' ');
      switch (verb) {
        case 'EHLO':
        case 'HELO': {
          if (await fault('smtp.ehlo')) return;
          s.ehlo = arg;
          resetTransaction();
          if (verb === 'HELO') write(`250 ${hostname} Hello [${socket.remoteAddress}]`);
          else for (const l of ehloLines(arg)) write(l);
          return;
        }
        case 'STARTTLS': {
          if (s.secure) {
            write('503 5.5.1 Bad sequence of commands');
            return;
          }
          write('220 2.0.0 SMTP server ready');
          upgrade();
          return;
        }
        case 'AUTH': {
          const [mech = '', initial] = arg.split(' ');
          const m = mech.toUpperCase();
          if (!s.secure || !['XOAUTH2', 'OAUTHBEARER', 'LOGIN', 'PLAIN'].includes(m) || (m === 'OAUTHBEARER' && mode === 'hve')) {
            write('504 5.7.4 Unrecognized authentication type');
            return;
          }
          if (s.auth) {
            write('503 5.5.1 Already authenticated');
            return;
          }
          if (m === 'LOGIN') {
            s.pendingAuth = 'LOGIN-USER';
            write('334 VXNlcm5hbWU6');
            return;
          }
          if (m === 'PLAIN') {
            write(`535 5.7.139 Authentication unsuccessful, basic authentication is disabled. ${bracket()}`);
            return;
          }
          if (initial && initial !== '=') await finishAuth(m as 'XOAUTH2' | 'OAUTHBEARER', initial);
          else {
            s.pendingAuth = m as 'XOAUTH2' | 'OAUTHBEARER';
            write('334 ');
          }
          return;
        }
        case 'MAIL': {
          if (!s.auth) {
            write(`530 5.7.57 Client not authenticated to send mail. ${bracket()}`);
            return;
          }
          const m = /^FROM:\s*<([^>]*)>(.*)$/i.exec(arg);
          if (!m) {
            write('501 5.5.4 Invalid arguments');
            return;
          }
          const size = /SIZE=(\d+)/i.exec(m[2] ?? '');
          if (size && Number(size[1]) > ctx.limits.maxMessageBytes) {
            write(`552 5.3.4 Message size exceeds fixed maximum message size`);
            return;
          }
          if (await fault('smtp.mail', `${s.auth.mailbox} ${m[1]}`)) return;
          resetTransaction();
          s.from = m[1]!;
          write('250 2.1.0 Sender OK');
          return;
        }
        case 'RCPT': {
          if (s.from === undefined) {
            write('503 5.5.1 Bad sequence of commands');
            return;
          }
          const m = /^TO:\s*<([^>]+)>/i.exec(arg);
          if (!m) {
            write('501 5.5.4 Invalid arguments');
            return;
          }
          if (await fault('smtp.rcpt', m[1]!)) return;
          if (s.rcpts.length >= ctx.limits.recipientsPerMessage) {
            write('452 4.5.3 Too many recipients');
            return;
          }
          s.rcpts.push(m[1]!);
          write('250 2.1.5 Recipient OK');
          return;
        }
        case 'DATA': {
          if (!s.from || s.rcpts.length === 0) {
            write('503 5.5.1 Bad sequence of commands');
            return;
          }
          if (await fault('smtp.data')) return;
          s.data = [];
          s.dataBytes = 0;
          write('354 Start mail input; end with <CRLF>.<CRLF>');
          return;
        }
        case 'RSET':
          resetTransaction();
          write('250 2.0.0 Resetting');
          return;
        case 'NOOP':
          write('250 2.0.0 OK');
          return;
        case 'QUIT':
          write('221 2.0.0 Service closing transmission channel');
          close();
          return;
        default:
          write('500 5.3.3 Unrecognized command');
      }
    };

    const reader = new LineReader((line) => {
      queue = queue.then(() => handle(line)).catch(() => {
        s.socket.destroy();
      });
    });
    const onData = (chunk: Buffer) => reader.push(chunk);
    socket.on('data', onData);

    const upgrade = () => {
      socket.off('data', onData);
      socket.pause();
      reader.reset();
      const secure = new tls.TLSSocket(socket, { isServer: true, secureContext });
      secure.on('error', () => socket.destroy());
      secure.on('secure', () => {
        const proto = secure.getProtocol();
        s.socket = secure;
        s.secure = true;
        if (proto === 'TLSv1' || proto === 'TLSv1.1') {
          // Exact moment is UNVERIFIED (fact sheet §4.1): sent right after the handshake.
          write(`421 4.7.66 TLS 1.0 and 1.1 are not supported. Please upgrade/update your client to support TLS 1.2. Visit https://aka.ms/smtp_auth_tls. [${hostname}]`);
          close();
          return;
        }
        s.ehlo = undefined;
        resetTransaction();
      });
      secure.on('data', (chunk: Buffer) => reader.push(chunk));
      socket.resume();
    };

    void (async () => {
      if (await fault('smtp.connect')) return;
      write(`220 ${hostname} Microsoft ESMTP MAIL Service ready at ${new Date().toUTCString().replace('GMT', '+0000')}`);
    })();
  });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const bound = (server.address() as net.AddressInfo).port;
      resolve({
        server,
        port: bound,
        stop: () =>
          new Promise<void>((r) => {
            for (const so of sockets) so.destroy();
            server.close(() => r());
          }),
      });
    });
  });
}

function headerBlock(raw: Buffer): string {
  const text = raw.subarray(0, 64 * 1024).toString('latin1');
  const end = text.search(/\r?\n\r?\n/);
  return (end < 0 ? text : text.slice(0, end)).replace(/\r?\n[ \t]+/g, ' ');
}

export function headerValue(raw: Buffer, name: string): string | undefined {
  const re = new RegExp(`^${name}:[ \\t]*(.*)$`, 'im');
  return re.exec(headerBlock(raw))?.[1]?.trim();
}

/** The first address of a header such as From: ("Name <a@b>" or "a@b"). */
export function headerAddress(raw: Buffer, name: string): string | undefined {
  const v = headerValue(raw, name);
  if (!v) return undefined;
  const angle = /<([^>]+@[^>]+)>/.exec(v);
  if (angle) return angle[1];
  const bare = /([^\s,;<>"]+@[^\s,;<>"]+)/.exec(v);
  return bare?.[1];
}
