/**
 * The sandbox's Microsoft Graph mail endpoints (fact sheet §6): `sendMail` with JSON and MIME
 * bodies, and the large-message path: draft creation (`POST /messages`, JSON or MIME), small file
 * attachments (`POST /messages/{id}/attachments`), upload sessions
 * (`POST /messages/{id}/attachments/createUploadSession` + `PUT {uploadUrl}` byte ranges) and
 * `POST /messages/{id}/send`. Errors use Graph's JSON error shape; the 4 MB request limit applies
 * to every request except the upload URL; 429 + Retry-After comes from fault injection.
 *
 * Emulator design choices (not verified against Exchange Online): the upload-range error codes
 * and texts are OneDrive's (invalidRequest / invalidRange), upload sessions live 6 hours, and a
 * fragment may be at most 60 MiB.
 */
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes, randomUUID } from 'node:crypto';
import { simpleParser, type AddressObject } from 'mailparser';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import type { SandboxContext } from '../context.js';
import type { Identity } from '../directory.js';
import type { MailStore } from './store.js';
import { isGraphAudience } from '../tokens.js';
import { headerAddress, headerValue } from './smtp.js';
import { identityLabel } from './auth.js';
import { listen } from './listener.js';
import type net from 'node:net';

const MAX_REQUEST = 4 * 1024 * 1024;
/** Graph's documented ceiling for one file attachment added through an upload session. */
const MAX_ATTACHMENT = 150 * 1024 * 1024;
const MAX_FRAGMENT = 60 * 1024 * 1024;
const SESSION_LIFETIME_MS = 6 * 3600_000;
/** Drafts and upload sessions write to the mailbox: Graph wants Mail.ReadWrite for them, Mail.Send only sends. */
const DRAFT_PERMISSIONS = ['Mail.ReadWrite'];

/** One line per Graph request the sandbox answered, so tests can check which API path a client took. */
export interface GraphRequestRecord {
  op: 'sendMail' | 'createMessage' | 'addAttachment' | 'createUploadSession' | 'uploadFragment' | 'uploadStatus' | 'cancelUpload' | 'send' | 'deleteMessage' | 'unknown';
  status: number;
  mailbox?: string;
  /** For uploadFragment: the Content-Range header as sent. */
  range?: string;
  bytes?: number;
  /** Whether the request carried an Authorization header (the upload URL must not get one). */
  authorization: boolean;
}

const requestLogs = new WeakMap<MailStore, GraphRequestRecord[]>();

/** The Graph requests a sandbox answered (keyed by its mail store, which tests can reach). */
export function graphRequests(store: MailStore): GraphRequestRecord[] {
  let log = requestLogs.get(store);
  if (!log) requestLogs.set(store, (log = []));
  return log;
}

interface DraftAttachment {
  id: string;
  name: string;
  contentType: string;
  content: Buffer;
  isInline: boolean;
  contentId?: string;
}

interface Draft {
  id: string;
  owner: string;
  message: any;
  /** Set when the draft was created from MIME and not changed since: sent as is, for fidelity. */
  mime?: Buffer;
  attachments: DraftAttachment[];
  created: string;
}

interface UploadSession {
  id: string;
  token: string;
  draftId: string;
  owner: string;
  name: string;
  contentType: string;
  isInline: boolean;
  contentId?: string;
  size: number;
  next: number;
  parts: Buffer[];
  expires: number;
}

function graphError(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({
    error: { code, message, innerError: { date: new Date().toISOString().slice(0, 19), 'request-id': randomUUID(), 'client-request-id': randomUUID() } },
  });
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', 'request-id': randomUUID(), ...headers });
  res.end(JSON.stringify(body));
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

/** Exchange item ids look like URL-safe base64 with padding; the '=' makes clients encode path segments. */
function itemId(): string {
  return `AAMkAD${randomBytes(30).toString('base64url')}=`;
}

function recipientsOf(raw: Buffer): string[] {
  const out: string[] = [];
  for (const h of ['to', 'cc', 'bcc']) {
    const v = headerValue(raw, h);
    if (v) for (const m of v.matchAll(/([^\s,;<>"]+@[^\s,;<>"]+)/g)) out.push(m[1]!);
  }
  return out;
}

/** Exchange removes Bcc from what recipients receive; the outbound log keeps the submitted bytes. */
export function withoutBcc(raw: Buffer): Buffer {
  const text = raw.toString('latin1');
  const blank = /\r?\n\r?\n/.exec(text);
  if (!blank) return raw;
  // Split after the last header line's own line break, so every header line keeps its ending.
  const cut = blank.index + (blank[0].startsWith('\r\n') ? 2 : 1);
  const kept: string[] = [];
  let dropping = false;
  for (const line of text.slice(0, cut).split(/(?<=\n)/)) {
    if (!/^[ \t]/.test(line)) dropping = /^bcc:/i.test(line);
    if (!dropping) kept.push(line);
  }
  return Buffer.from(kept.join('') + text.slice(cut), 'latin1');
}

const addressesOf = (list: any): Array<{ name?: string; address: string }> =>
  (Array.isArray(list) ? list : [])
    .map((r: any) => ({ name: r?.emailAddress?.name || undefined, address: String(r?.emailAddress?.address ?? '') }))
    .filter((a) => a.address.includes('@'));

function graphRecipients(obj: AddressObject | AddressObject[] | undefined): any[] {
  const list = obj ? (Array.isArray(obj) ? obj : [obj]) : [];
  return list.flatMap((o) => o.value).filter((v) => v.address).map((v) => ({ emailAddress: { name: v.name || v.address, address: v.address } }));
}

/** A Graph message (JSON) plus attachments → the RFC 5322 bytes Exchange would transmit. */
async function buildMime(message: any, attachments: DraftAttachment[], fallbackFrom: string): Promise<Buffer> {
  const from = addressesOf(message.from ? [message.from] : [])[0] ?? { address: fallbackFrom };
  const html = String(message.body?.contentType ?? 'Text').toLowerCase() === 'html';
  const composer = new MailComposer({
    from,
    to: addressesOf(message.toRecipients),
    cc: addressesOf(message.ccRecipients),
    // Bcc recipients are delivered to but never written into the message (MailComposer drops it).
    replyTo: addressesOf(message.replyTo),
    subject: String(message.subject ?? ''),
    messageId: message.internetMessageId || `<${randomUUID()}@graph.sandbox>`,
    date: new Date(),
    headers: Object.fromEntries((message.internetMessageHeaders ?? []).map((h: any) => [String(h.name), String(h.value)])),
    ...(html ? { html: String(message.body?.content ?? '') } : { text: String(message.body?.content ?? '') }),
    attachments: attachments.map((a) => ({ filename: a.name, content: a.content, contentType: a.contentType, cid: a.contentId, contentDisposition: a.isInline ? 'inline' : 'attachment' })),
  });
  return new Promise((resolve, reject) => composer.compile().build((err: Error | null, msg: Buffer) => (err ? reject(err) : resolve(msg))));
}

/** Draft/sendMail JSON checks Graph makes before accepting a message. */
function invalidMessage(message: any): { code: string; message: string } | undefined {
  for (const h of message.internetMessageHeaders ?? []) {
    if (!/^x-/i.test(String(h?.name ?? ''))) return { code: 'InvalidInternetMessageHeader', message: `The internet message header name '${h?.name}' should start with 'x-' or 'X-'.` };
  }
  return undefined;
}

function fileAttachmentJson(a: DraftAttachment): any {
  return {
    '@odata.type': '#microsoft.graph.fileAttachment',
    id: a.id,
    lastModifiedDateTime: new Date().toISOString(),
    name: a.name,
    contentType: a.contentType,
    size: a.content.length,
    isInline: a.isInline,
    contentId: a.contentId ?? null,
  };
}

export function startGraphServer(ctx: SandboxContext, host: string, port: number): Promise<{ port: number; stop(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const drafts = new Map<string, Draft>();
  const sessions = new Map<string, UploadSession>();
  const log = graphRequests(ctx.mail);
  const server = https.createServer({ key: ctx.tls.key, cert: ctx.tls.cert }, (req, res) => {
    let record: GraphRequestRecord | undefined;
    const note = (r: Omit<GraphRequestRecord, 'status' | 'authorization'>) => {
      record = { ...r, status: 0, authorization: !!req.headers.authorization };
      log.push(record);
    };
    res.on('finish', () => {
      if (record) record.status = res.statusCode;
    });
    handle(req, res, note).catch((err) => {
      if (!res.headersSent) graphError(res, 500, 'UnknownError', String(err));
      else res.destroy();
    });
  });
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  type Note = (r: Omit<GraphRequestRecord, 'status' | 'authorization'>) => void;
  interface Caller {
    identity: Identity;
    target: string;
    tid: string;
    perms: string[];
    isApp: boolean;
  }

  /** Token, audience, mailbox and delegation checks shared by every mailbox-scoped request. */
  function authenticate(req: IncomingMessage, res: ServerResponse, userSegment: string | undefined): Caller | undefined {
    const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    const check = auth ? ctx.verifyAccessToken(auth[1]!) : undefined;
    if (!check || !check.ok) {
      graphError(res, 401, 'InvalidAuthenticationToken', check && !check.ok && check.reason === 'expired' ? 'Access token has expired or is not yet valid.' : 'CompactToken parsing failed with error code: 80049217');
      return undefined;
    }
    const c = check.claims;
    if (!isGraphAudience(c.aud)) {
      graphError(res, 401, 'InvalidAuthenticationToken', 'Access token validation failure. Invalid audience.');
      return undefined;
    }
    const isApp = !c.scp;
    const perms = isApp ? c.roles ?? [] : (c.scp ?? '').split(' ');
    const identity: Identity = isApp ? { kind: 'app', appId: c.appid, oid: c.oid, tid: c.tid } : { kind: 'user', upn: (c.upn ?? '').toLowerCase(), oid: c.oid, tid: c.tid };
    const target = decodeURIComponent(userSegment ?? (identity.kind === 'user' ? identity.upn : '')).toLowerCase();
    return { identity, target, tid: c.tid, perms, isApp };
  }

  function authorize(res: ServerResponse, caller: Caller, accepted: string[]): boolean {
    if (!accepted.some((p) => caller.perms.includes(p))) {
      graphError(res, 403, caller.isApp ? 'NoPermissionsInAccessToken' : 'ErrorAccessDenied', caller.isApp ? 'The token contains no permissions, or permissions can not be understood.' : 'Access is denied. Check credentials and try again.');
      return false;
    }
    const user = ctx.directory.user(caller.target);
    if (!user) {
      graphError(res, 404, 'ErrorInvalidUser', `The requested user '${caller.target}' is invalid.`);
      return false;
    }
    if (user.noMailbox) {
      graphError(res, 404, 'MailboxNotEnabledForRESTAPI', 'The mailbox is either inactive, soft-deleted, or is hosted on-premise.');
      return false;
    }
    // Application permissions reach any mailbox (no application access policy in the sandbox).
    if (caller.identity.kind === 'user' && caller.identity.upn !== caller.target && !ctx.directory.hasFullAccess(caller.identity, caller.target)) {
      graphError(res, 403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.');
      return false;
    }
    return true;
  }

  /** Throttling and connection faults apply to every mail-submission request, upload URL included. */
  function injectedFault(req: IncomingMessage, res: ServerResponse, subject: string): boolean {
    const fault = ctx.faults.take('graph.sendMail', subject);
    if (fault?.kind === 'http') {
      const headers: Record<string, string> = fault.retryAfter !== undefined ? { 'retry-after': String(fault.retryAfter) } : {};
      if (fault.body !== undefined) {
        res.writeHead(fault.status, { 'content-type': 'application/json', ...headers });
        res.end(JSON.stringify(fault.body));
      } else if (fault.status === 429) {
        res.writeHead(429, { 'content-type': 'application/json', ...headers });
        res.end(JSON.stringify({ error: { code: 'TooManyRequests', innerError: { code: '429', date: new Date().toISOString().slice(0, 19), message: 'Please retry after', 'request-id': randomUUID(), status: '429' }, message: 'Please retry again later.' } }));
      } else graphError(res, fault.status, fault.status >= 500 ? 'ServiceNotAvailable' : 'BadRequest', 'Injected fault', headers);
      return true;
    }
    if (fault?.kind === 'drop') {
      req.socket.destroy();
      return true;
    }
    return false;
  }

  async function readJson(req: IncomingMessage, res: ServerResponse): Promise<any> {
    const body = await readBody(req, MAX_REQUEST);
    if (body === 'too-large') {
      graphError(res, 400, 'BadRequest', 'The maximum request length supported is 4MB.');
      return undefined;
    }
    try {
      return JSON.parse(body.toString('utf8') || 'null');
    } catch {
      graphError(res, 400, 'BadRequest', 'Unable to read JSON request payload.');
      return undefined;
    }
  }

  /** `text/plain` bodies are base64 MIME (fact sheet §6.3). */
  function decodeMime(body: Buffer, res: ServerResponse): Buffer | undefined {
    const text = body.toString('ascii').replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0 || text.length === 0) {
      graphError(res, 400, 'ErrorMimeContentInvalidBase64String', 'Invalid base64 string for MIME content.');
      return undefined;
    }
    return Buffer.from(text, 'base64');
  }

  /** Checks SendAs and recipients, then logs and delivers; answers 202. Shared by sendMail and draft send. */
  function submit(res: ServerResponse, caller: Caller, raw: Buffer, to: string[]): void {
    const from = headerAddress(raw, 'from') ?? caller.target;
    const sendAsIdentity: Identity = caller.identity.kind === 'user' ? { kind: 'user', upn: caller.target, oid: '', tid: caller.tid } : caller.identity;
    if (from.toLowerCase() !== caller.target && !ctx.directory.canSendAs(sendAsIdentity, from)) {
      graphError(res, 403, 'ErrorSendAsDenied', 'The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message.');
      return;
    }
    if (to.length === 0) {
      graphError(res, 400, 'ErrorInvalidRecipients', "At least one recipient is not valid., A message can't be sent because it contains no recipients.");
      return;
    }
    if (raw.length > ctx.limits.maxMessageBytes) {
      graphError(res, 400, 'ErrorMessageSizeExceeded', 'The message exceeds the maximum supported size.');
      return;
    }
    const messageId = headerValue(raw, 'message-id')?.replace(/[<>]/g, '');
    ctx.mail.recordOutbound({ via: 'graph', from: caller.target, to, raw, identity: identityLabel(caller.identity), messageId });
    const delivered = withoutBcc(raw);
    for (const r of to) if (ctx.directory.user(r)) ctx.mail.append(r, delivered);
    res.writeHead(202, { 'request-id': randomUUID() });
    res.end();
  }

  function draftJson(d: Draft): any {
    return {
      '@odata.context': `https://graph.microsoft.com/v1.0/$metadata#users('${d.owner}')/messages/$entity`,
      id: d.id,
      createdDateTime: d.created,
      lastModifiedDateTime: new Date().toISOString(),
      isDraft: true,
      hasAttachments: d.attachments.some((a) => !a.isInline),
      subject: d.message.subject ?? '',
      body: d.message.body ?? { contentType: 'Text', content: '' },
      from: d.message.from ?? null,
      toRecipients: d.message.toRecipients ?? [],
      ccRecipients: d.message.ccRecipients ?? [],
      bccRecipients: d.message.bccRecipients ?? [],
      replyTo: d.message.replyTo ?? [],
      internetMessageId: d.message.internetMessageId ?? null,
    };
  }

  async function handle(req: IncomingMessage, res: ServerResponse, note: Note): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://graph.microsoft.com');

    const upload = /^\/upload\/([^/]+)$/.exec(url.pathname);
    if (upload) return handleUpload(req, res, note, upload[1]!, url);

    const m = /^\/v1\.0\/(?:me|users\/([^/]+))\/(sendMail|messages)(?:\/([^/]+)(?:\/(send|attachments)(?:\/(createUploadSession))?)?)?$/.exec(url.pathname);
    const op: GraphRequestRecord['op'] | undefined = !m
      ? undefined
      : m[2] === 'sendMail'
        ? (m[3] === undefined ? 'sendMail' : undefined)
        : m[3] === undefined
          ? 'createMessage'
          : m[4] === undefined
            ? (req.method === 'DELETE' ? 'deleteMessage' : undefined)
            : m[4] === 'send'
              ? (m[5] === undefined ? 'send' : undefined)
              : m[5]
                ? 'createUploadSession'
                : 'addAttachment';
    const method = op === 'deleteMessage' ? 'DELETE' : 'POST';
    if (!m || !op || req.method !== method) {
      note({ op: 'unknown' });
      graphError(res, 400, 'BadRequest', `Resource not found for the segment '${url.pathname.split('/').pop()}'.`);
      return;
    }
    const caller = authenticate(req, res, m[1]);
    note({ op, mailbox: caller?.target });
    if (!caller) return;
    const sending = op === 'sendMail' || op === 'send';
    if (!authorize(res, caller, sending ? ['Mail.Send'] : DRAFT_PERMISSIONS)) return;
    if (injectedFault(req, res, caller.target)) return;

    if (op === 'sendMail') return sendMail(req, res, caller);
    if (op === 'createMessage') return createMessage(req, res, caller);

    const draftId = decodeURIComponent(m[3]!);
    const draft = drafts.get(draftId);
    if (!draft || draft.owner !== caller.target) {
      graphError(res, 404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
      return;
    }
    if (op === 'deleteMessage') {
      drafts.delete(draftId);
      for (const [id, s] of sessions) if (s.draftId === draftId) sessions.delete(id);
      res.writeHead(204);
      res.end();
      return;
    }
    if (op === 'addAttachment') return addAttachment(req, res, draft);
    if (op === 'createUploadSession') return createUploadSession(req, res, draft);
    return sendDraft(req, res, caller, draft);
  }

  async function sendMail(req: IncomingMessage, res: ServerResponse, caller: Caller): Promise<void> {
    if ((req.headers['content-type'] ?? '').startsWith('text/plain')) {
      const body = await readBody(req, MAX_REQUEST);
      if (body === 'too-large') {
        graphError(res, 400, 'BadRequest', 'The maximum request length supported is 4MB.');
        return;
      }
      const raw = decodeMime(body, res);
      if (raw) submit(res, caller, raw, recipientsOf(raw));
      return;
    }
    const json = await readJson(req, res);
    if (json === undefined) return;
    if (!json?.message) {
      graphError(res, 400, 'ErrorInvalidArgument', 'The message is missing.');
      return;
    }
    const invalid = invalidMessage(json.message);
    if (invalid) {
      graphError(res, 400, invalid.code, invalid.message);
      return;
    }
    const attachments: DraftAttachment[] = [];
    for (const a of json.message.attachments ?? []) {
      const parsed = parseFileAttachment(a, res);
      if (!parsed) return;
      attachments.push(parsed);
    }
    const raw = await buildMime(json.message, attachments, caller.target);
    const to = ['toRecipients', 'ccRecipients', 'bccRecipients'].flatMap((k) => addressesOf(json.message[k]).map((a) => a.address));
    submit(res, caller, raw, to);
  }

  async function createMessage(req: IncomingMessage, res: ServerResponse, caller: Caller): Promise<void> {
    const draft: Draft = { id: itemId(), owner: caller.target, message: {}, attachments: [], created: new Date().toISOString() };
    if ((req.headers['content-type'] ?? '').startsWith('text/plain')) {
      const body = await readBody(req, MAX_REQUEST);
      if (body === 'too-large') {
        graphError(res, 400, 'BadRequest', 'The maximum request length supported is 4MB.');
        return;
      }
      const raw = decodeMime(body, res);
      if (!raw) return;
      const parsed = await simpleParser(raw, { keepCidLinks: true });
      draft.mime = raw;
      draft.message = {
        subject: parsed.subject ?? '',
        body: parsed.html ? { contentType: 'HTML', content: parsed.html } : { contentType: 'Text', content: parsed.text ?? '' },
        from: graphRecipients(parsed.from)[0],
        toRecipients: graphRecipients(parsed.to),
        ccRecipients: graphRecipients(parsed.cc),
        bccRecipients: graphRecipients(parsed.bcc),
        replyTo: graphRecipients(parsed.replyTo),
        internetMessageId: parsed.messageId,
      };
      draft.attachments = parsed.attachments.map((a) => ({ id: itemId(), name: a.filename ?? 'attachment', contentType: a.contentType, content: a.content, isInline: a.contentDisposition === 'inline' || !!a.related, contentId: a.cid }));
    } else {
      const json = await readJson(req, res);
      if (json === undefined) return;
      const message = json ?? {};
      const invalid = invalidMessage(message);
      if (invalid) {
        graphError(res, 400, invalid.code, invalid.message);
        return;
      }
      for (const a of message.attachments ?? []) {
        const parsed = parseFileAttachment(a, res);
        if (!parsed) return;
        draft.attachments.push(parsed);
      }
      const { attachments: _omit, ...fields } = message;
      draft.message = fields;
    }
    drafts.set(draft.id, draft);
    sendJson(res, 201, draftJson(draft));
  }

  function parseFileAttachment(a: any, res: ServerResponse): DraftAttachment | undefined {
    if (a?.['@odata.type'] !== '#microsoft.graph.fileAttachment') {
      graphError(res, 400, 'ErrorInvalidRequest', 'The sandbox accepts only #microsoft.graph.fileAttachment attachments.');
      return undefined;
    }
    const b64 = String(a.contentBytes ?? '');
    if (!a.name || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) {
      graphError(res, 400, 'ErrorInvalidRequest', 'The attachment needs a name and base64 contentBytes.');
      return undefined;
    }
    return { id: itemId(), name: String(a.name), contentType: String(a.contentType ?? 'application/octet-stream'), content: Buffer.from(b64, 'base64'), isInline: !!a.isInline, contentId: a.contentId ?? undefined };
  }

  async function addAttachment(req: IncomingMessage, res: ServerResponse, draft: Draft): Promise<void> {
    const json = await readJson(req, res);
    if (json === undefined) return;
    const att = parseFileAttachment(json, res);
    if (!att) return;
    draft.attachments.push(att);
    draft.mime = undefined;
    sendJson(res, 201, { '@odata.context': `https://graph.microsoft.com/v1.0/$metadata#users('${draft.owner}')/messages('${draft.id}')/attachments/$entity`, ...fileAttachmentJson(att) });
  }

  async function createUploadSession(req: IncomingMessage, res: ServerResponse, draft: Draft): Promise<void> {
    const json = await readJson(req, res);
    if (json === undefined) return;
    const item = json?.AttachmentItem;
    if (!item || item.attachmentType !== 'file' || !item.name) {
      graphError(res, 400, 'ErrorInvalidRequest', "AttachmentItem with attachmentType 'file' and a name is required.");
      return;
    }
    if (!Number.isSafeInteger(item.size) || item.size <= 0) {
      graphError(res, 400, 'ErrorInvalidRequest', 'AttachmentItem.size must be a positive number of bytes.');
      return;
    }
    if (item.size > MAX_ATTACHMENT) {
      graphError(res, 400, 'ErrorAttachmentSizeLimitExceeded', 'The attachment is larger than the 150 MB limit.');
      return;
    }
    const session: UploadSession = {
      id: itemId().replace(/=$/, ''),
      token: randomBytes(24).toString('base64url'),
      draftId: draft.id,
      owner: draft.owner,
      name: String(item.name),
      contentType: String(item.contentType ?? 'application/octet-stream'),
      isInline: !!item.isInline,
      contentId: item.contentId ?? undefined,
      size: item.size,
      next: 0,
      parts: [],
      expires: ctx.now() + SESSION_LIFETIME_MS,
    };
    sessions.set(session.id, session);
    const origin = `https://${req.headers.host ?? `${host}:${port}`}`;
    sendJson(res, 201, {
      '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#microsoft.graph.uploadSession',
      uploadUrl: `${origin}/upload/${session.id}?authtoken=${session.token}`,
      expirationDateTime: new Date(session.expires).toISOString(),
      nextExpectedRanges: ['0-'],
    });
  }

  async function handleUpload(req: IncomingMessage, res: ServerResponse, note: Note, id: string, url: URL): Promise<void> {
    const op: GraphRequestRecord['op'] = req.method === 'PUT' ? 'uploadFragment' : req.method === 'GET' ? 'uploadStatus' : req.method === 'DELETE' ? 'cancelUpload' : 'unknown';
    const session = sessions.get(id);
    note({ op, mailbox: session?.owner, range: req.headers['content-range'] });
    if (op === 'unknown') {
      graphError(res, 405, 'ErrorInvalidRequest', 'The upload URL accepts PUT, GET and DELETE.');
      return;
    }
    if (!session || session.expires <= ctx.now() || !drafts.has(session.draftId)) {
      if (session) sessions.delete(id);
      graphError(res, 404, 'ErrorItemNotFound', 'The upload session was not found or has expired.');
      return;
    }
    if (url.searchParams.get('authtoken') !== session.token) {
      graphError(res, 401, 'InvalidAuthenticationToken', 'The upload URL token is missing or invalid.');
      return;
    }
    // The upload URL is pre-authorised; a bearer token sent here means the client leaks it to the upload host.
    if (req.headers.authorization) {
      graphError(res, 401, 'InvalidAuthenticationToken', 'Do not send an Authorization header to the pre-authenticated upload URL.');
      return;
    }
    const status = () => ({ expirationDateTime: new Date(session.expires).toISOString(), nextExpectedRanges: [`${session.next}`] });
    if (op === 'uploadStatus') {
      sendJson(res, 200, status());
      return;
    }
    if (op === 'cancelUpload') {
      sessions.delete(id);
      res.writeHead(204);
      res.end();
      return;
    }
    if (injectedFault(req, res, session.owner)) return;
    const body = await readBody(req, MAX_FRAGMENT);
    if (body === 'too-large') {
      graphError(res, 413, 'invalidRequest', 'The fragment is larger than 60 MiB.');
      return;
    }
    const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(String(req.headers['content-range'] ?? ''));
    if (!range) {
      graphError(res, 400, 'invalidRequest', "The Content-Range header is missing or malformed (expected 'bytes {start}-{end}/{total}').");
      return;
    }
    const [start, end, total] = [Number(range[1]), Number(range[2]), Number(range[3])];
    if (total !== session.size) {
      graphError(res, 400, 'invalidRequest', `The current upload session is for ${session.size} total bytes, but the current fragment declares a total of ${total}.`);
      return;
    }
    if (end < start || end >= total) {
      graphError(res, 400, 'invalidRequest', `The Content-Range ${start}-${end} is not inside the file of ${total} bytes.`);
      return;
    }
    if (end - start + 1 !== body.length) {
      graphError(res, 400, 'invalidRequest', 'The Content-Range header length does not match the provided number of bytes.');
      return;
    }
    if (start !== session.next) {
      graphError(res, 416, 'invalidRange', start < session.next ? 'Uploaded fragment overlaps with existing data.' : `The fragment does not start at the next expected byte ${session.next}.`);
      return;
    }
    session.parts.push(body);
    session.next = end + 1;
    if (session.next < session.size) {
      sendJson(res, 200, { '@odata.context': `https://graph.microsoft.com/v1.0/$metadata#users('${session.owner}')/messages('${session.draftId}')/attachmentSessions/$entity`, ...status() });
      return;
    }
    sessions.delete(id);
    const draft = drafts.get(session.draftId)!;
    const att: DraftAttachment = { id: itemId(), name: session.name, contentType: session.contentType, content: Buffer.concat(session.parts), isInline: session.isInline, contentId: session.contentId };
    draft.attachments.push(att);
    draft.mime = undefined;
    const origin = `https://${req.headers.host ?? `${host}:${port}`}`;
    res.writeHead(201, { location: `${origin}/v1.0/users('${encodeURIComponent(session.owner)}')/messages('${encodeURIComponent(draft.id)}')/attachments('${encodeURIComponent(att.id)}')`, 'content-length': '0', 'request-id': randomUUID() });
    res.end();
  }

  async function sendDraft(req: IncomingMessage, res: ServerResponse, caller: Caller, draft: Draft): Promise<void> {
    await readBody(req, MAX_REQUEST);
    const raw = draft.mime ?? (await buildMime(draft.message, draft.attachments, draft.owner));
    const to = ['toRecipients', 'ccRecipients', 'bccRecipients'].flatMap((k) => addressesOf(draft.message[k]).map((a) => a.address));
    submit(res, caller, raw, to);
    if (res.statusCode === 202) {
      drafts.delete(draft.id);
      for (const [id, s] of sessions) if (s.draftId === draft.id) sessions.delete(id);
    }
  }

  return listen(server, host, port, sockets);
}
