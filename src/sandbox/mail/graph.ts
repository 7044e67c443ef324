/**
 * The sandbox's Microsoft Graph `sendMail` (fact sheet §6): JSON and MIME bodies, 202, the error
 * bodies of §6.6, the 4 MB request limit, and 429 + Retry-After through fault injection.
 */
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { SandboxContext } from '../context.js';
import type { Identity } from '../directory.js';
import { isGraphAudience } from '../tokens.js';
import { headerAddress, headerValue } from './smtp.js';
import { identityLabel } from './auth.js';
import { listen } from './listener.js';
import type net from 'node:net';

const MAX_REQUEST = 4 * 1024 * 1024;

function graphError(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({
    error: { code, message, innerError: { date: new Date().toISOString().slice(0, 19), 'request-id': randomUUID(), 'client-request-id': randomUUID() } },
  });
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(body);
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer | 'too-large'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) over = true;
      else chunks.push(c);
    });
    req.on('end', () => resolve(over ? 'too-large' : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function recipientsOf(raw: Buffer): string[] {
  const out: string[] = [];
  for (const h of ['to', 'cc', 'bcc']) {
    const v = headerValue(raw, h);
    if (v) for (const m of v.matchAll(/([^\s,;<>"]+@[^\s,;<>"]+)/g)) out.push(m[1]!);
  }
  return out;
}

function jsonToMime(message: any, from: string): Buffer {
  const addr = (list: any[] | undefined) => (list ?? []).map((r) => r?.emailAddress?.address).filter(Boolean).join(', ');
  const lines = [
    `From: ${message.from?.emailAddress?.address ?? from}`,
    `To: ${addr(message.toRecipients)}`,
    ...(message.ccRecipients?.length ? [`Cc: ${addr(message.ccRecipients)}`] : []),
    ...(message.bccRecipients?.length ? [`Bcc: ${addr(message.bccRecipients)}`] : []),
    `Subject: ${message.subject ?? ''}`,
    `Message-ID: <${randomUUID()}@graph.sandbox>`,
    'MIME-Version: 1.0',
    `Content-Type: ${String(message.body?.contentType ?? 'Text').toLowerCase() === 'html' ? 'text/html' : 'text/plain'}; charset=utf-8`,
    '',
    String(message.body?.content ?? ''),
  ];
  return Buffer.from(lines.join('\r\n'), 'utf8');
}

export function startGraphServer(ctx: SandboxContext, host: string, port: number): Promise<{ port: number; stop(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = https.createServer({ key: ctx.tls.key, cert: ctx.tls.cert }, (req, res) => {
    handle(req, res).catch((err) => graphError(res, 500, 'UnknownError', String(err)));
  });
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://graph.microsoft.com');
    const m = /^\/v1\.0\/(?:me|users\/([^/]+))\/sendMail$/.exec(url.pathname);
    if (req.method !== 'POST' || !m) {
      graphError(res, 400, 'BadRequest', 'Resource not found for the segment.');
      return;
    }
    const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    const check = auth ? ctx.verifyAccessToken(auth[1]!) : undefined;
    if (!check || !check.ok) {
      graphError(res, 401, 'InvalidAuthenticationToken', check && !check.ok && check.reason === 'expired' ? 'Access token has expired or is not yet valid.' : 'CompactToken parsing failed with error code: 80049217');
      return;
    }
    const c = check.claims;
    if (!isGraphAudience(c.aud)) {
      graphError(res, 401, 'InvalidAuthenticationToken', 'Access token validation failure. Invalid audience.');
      return;
    }
    const isApp = !c.scp;
    const perms = isApp ? c.roles ?? [] : (c.scp ?? '').split(' ');
    if (!perms.includes('Mail.Send')) {
      graphError(res, 403, isApp ? 'NoPermissionsInAccessToken' : 'ErrorAccessDenied', isApp ? 'The token contains no permissions, or permissions can not be understood.' : 'Access is denied. Check credentials and try again.');
      return;
    }
    const identity: Identity = isApp ? { kind: 'app', appId: c.appid, oid: c.oid, tid: c.tid } : { kind: 'user', upn: (c.upn ?? '').toLowerCase(), oid: c.oid, tid: c.tid };
    const target = decodeURIComponent(m[1] ?? (identity.kind === 'user' ? identity.upn : '')).toLowerCase();
    const user = ctx.directory.user(target);
    if (!user) {
      graphError(res, 404, 'ErrorInvalidUser', `The requested user '${target}' is invalid.`);
      return;
    }
    if (user.noMailbox) {
      graphError(res, 404, 'MailboxNotEnabledForRESTAPI', 'The mailbox is either inactive, soft-deleted, or is hosted on-premise.');
      return;
    }
    // Application Mail.Send may send as any mailbox (no application access policy in the sandbox).
    if (identity.kind === 'user' && identity.upn !== target && !ctx.directory.hasFullAccess(identity, target)) {
      graphError(res, 403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.');
      return;
    }
    const fault = ctx.faults.take('graph.sendMail', target);
    if (fault?.kind === 'http') {
      const headers: Record<string, string> = fault.retryAfter !== undefined ? { 'retry-after': String(fault.retryAfter) } : {};
      if (fault.status === 429) {
        res.writeHead(429, { 'content-type': 'application/json', ...headers });
        res.end(JSON.stringify({ error: { code: 'TooManyRequests', innerError: { code: '429', date: new Date().toISOString().slice(0, 19), message: 'Please retry after', 'request-id': randomUUID(), status: '429' }, message: 'Please retry again later.' } }));
      } else graphError(res, fault.status, fault.status >= 500 ? 'ServiceNotAvailable' : 'BadRequest', 'Injected fault', headers);
      return;
    }
    if (fault?.kind === 'drop') {
      req.socket.destroy();
      return;
    }
    const body = await readBody(req, MAX_REQUEST);
    if (body === 'too-large') {
      graphError(res, 400, 'BadRequest', 'The maximum request length supported is 4MB.');
      return;
    }
    let raw: Buffer;
    if ((req.headers['content-type'] ?? '').startsWith('text/plain')) {
      const text = body.toString('ascii').replace(/\s+/g, '');
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0 || text.length === 0) {
        graphError(res, 400, 'ErrorMimeContentInvalidBase64String', 'Invalid base64 string for MIME content.');
        return;
      }
      raw = Buffer.from(text, 'base64');
    } else {
      let json: any;
      try {
        json = JSON.parse(body.toString('utf8'));
      } catch {
        graphError(res, 400, 'BadRequest', 'Unable to read JSON request payload.');
        return;
      }
      if (!json?.message) {
        graphError(res, 400, 'ErrorInvalidArgument', 'The message is missing.');
        return;
      }
      raw = jsonToMime(json.message, target);
    }
    const from = headerAddress(raw, 'from') ?? target;
    if (from.toLowerCase() !== target && !ctx.directory.canSendAs(identity.kind === 'user' ? { kind: 'user', upn: target, oid: '', tid: c.tid } : identity, from)) {
      graphError(res, 403, 'ErrorSendAsDenied', 'The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message.');
      return;
    }
    const to = recipientsOf(raw);
    if (to.length === 0) {
      graphError(res, 400, 'ErrorInvalidRecipients', 'At least one recipient is not valid., A message can\'t be sent because it contains no recipients.');
      return;
    }
    const messageId = headerValue(raw, 'message-id')?.replace(/[<>]/g, '');
    ctx.mail.recordOutbound({ via: 'graph', from: target, to, raw, identity: identityLabel(identity), messageId });
    for (const r of to) if (ctx.directory.user(r)) ctx.mail.append(r, raw);
    res.writeHead(202, { 'request-id': randomUUID() });
    res.end();
  }

  return listen(server, host, port, sockets);
}
