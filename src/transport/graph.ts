/**
 * Microsoft Graph transport (fact sheet §6).
 *
 * Messages whose base64 fits Graph's 4 MB request limit go in one
 * `POST /v1.0/users/{sender}/sendMail` as base64 MIME (§6.3), which keeps the MIME structure as is.
 * Larger ones take the draft route (§6.4): the MIME is parsed, a draft is created from its
 * headers, body and recipients (JSON), attachments under 3 MB are added with one POST each and
 * larger ones through an upload session in 320 KiB-multiple fragments, then the draft is sent.
 *
 * Graph has no SMTP envelope: it delivers to the recipients written in the message. So the
 * envelope decides who gets it — envelope recipients missing from To/Cc become Bcc (Exchange
 * strips Bcc on delivery), and on the draft route header recipients outside the envelope are left
 * out, so a partial retry never sends a second copy to someone who already has it.
 *
 * Every request honours 429/503/504 Retry-After (bounded) and refreshes the token once on 401;
 * Graph error codes map to typed errors (§6.6).
 */
import type { AddressObject, ParsedMail } from 'mailparser';
import { TransportError } from '../core/errors.js';
import { makeFetch } from '../oauth/http.js';
import type { AccessToken, TokenProvider } from '../oauth/types.js';
import type { DeliveryResult, Envelope, MessageSource, Transport } from './types.js';

export interface GraphTransportOptions {
  account: string;
  /** Graph base URL, default https://graph.microsoft.com */
  baseUrl?: string;
  caFile?: string;
  maxRetries?: number;
}

const MAX_REQUEST = 4 * 1024 * 1024;
/** Graph's ceiling for one attachment through an upload session, so also the most the draft route can carry. */
const MAX_MESSAGE = 150 * 1024 * 1024;
/** Graph: files under 3 MB are attached with one POST (whose base64 JSON then stays under 4 MB). */
const INLINE_ATTACHMENT_LIMIT = 3_000_000;
/** Fragments are multiples of 320 KiB (what the Graph SDKs require) and stay under the 4 MB per-PUT guidance. */
const FRAGMENT_SIZE = 10 * 320 * 1024;

const HINTS: Record<string, string> = {
  ErrorSendAsDenied: 'The mailbox may not send as the From address: grant SendAs or send from the account mailbox.',
  ErrorAccessDenied: 'The token lacks Mail.Send for this mailbox (delegated: only your own mailbox; application: Mail.Send with admin consent). Messages over 4 MB go through a draft, which Microsoft 365 allows only with Mail.ReadWrite.',
  NoPermissionsInAccessToken: 'The app-only token has no roles: grant the Graph application permission Mail.Send and admin consent.',
  InvalidAuthenticationToken: 'The token is expired or not for Graph (audience https://graph.microsoft.com).',
  MailboxNotEnabledForRESTAPI: 'The mailbox has no Exchange Online licence or is on-premises.',
  ErrorMimeContentInvalidBase64String: 'The MIME content was not valid base64.',
  ErrorMessageSizeExceeded: 'The message is larger than the mailbox may send (Exchange default 35 MB).',
};

interface Call {
  method: 'POST' | 'PUT' | 'GET' | 'DELETE';
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  /** The pre-authenticated upload URL must not see the bearer token. */
  bearer?: boolean;
  /** For error messages: which step of the delivery failed. */
  step: string;
}

interface AuthState {
  token: AccessToken;
}

export class GraphTransport implements Transport {
  readonly name: string;
  private readonly fetch: typeof fetch;

  constructor(
    private readonly options: GraphTransportOptions,
    private readonly deps: { tokens: TokenProvider },
  ) {
    this.name = `graph:${options.account}`;
    this.fetch = makeFetch({ caFile: options.caFile, timeoutMs: 120_000 });
  }

  async deliver(envelope: Envelope, message: MessageSource): Promise<DeliveryResult> {
    const started = Date.now();
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of message()) {
      size += (chunk as Buffer).length;
      if (size > MAX_MESSAGE) {
        throw new TransportError('GRAPH_REJECTED', `${this.name}: the message is larger than the 150 MB Graph can take`, { temporary: false, hint: 'Use an SMTP route for this message, or send smaller attachments.' });
      }
      chunks.push(chunk as Buffer);
    }
    const raw = withEnvelopeBcc(Buffer.concat(chunks), envelope.to);
    const sender = envelope.from || this.options.account;
    const mailbox = `${(this.options.baseUrl ?? 'https://graph.microsoft.com').replace(/\/+$/, '')}/v1.0/users/${encodeURIComponent(sender)}`;
    const auth: AuthState = { token: await this.deps.tokens.getAccessToken(this.options.account, { purpose: 'graph' }) };
    const res =
      Math.ceil(raw.length / 3) * 4 <= MAX_REQUEST
        ? await this.call(auth, `${mailbox}/sendMail`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: raw.toString('base64'), step: 'sendMail' }, [202])
        : await this.sendLarge(auth, mailbox, raw, envelope);
    await res.arrayBuffer();
    return { accepted: [...envelope.to], rejected: [], response: '202 Accepted', messageId: res.headers.get('request-id') ?? undefined, route: this.name, durationMs: Date.now() - started };
  }

  /** Draft → attachments (inline POST or upload session) → send. Returns the send response. */
  private async sendLarge(auth: AuthState, mailbox: string, raw: Buffer, envelope: Envelope): Promise<Response> {
    // Only messages over the 4 MB request limit are parsed; mailparser is loaded for them alone.
    const { simpleParser } = await import('mailparser');
    const parsed = await simpleParser(raw, { keepCidLinks: true, skipTextToHtml: true, skipImageLinks: true });
    const created = await this.call(auth, `${mailbox}/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(draftFrom(parsed, envelope.to)), step: 'create draft' }, [201]);
    const draftId = String(((await created.json()) as { id?: unknown }).id ?? '');
    if (!draftId) throw new TransportError('GRAPH_REJECTED', `${this.name}: Graph created a draft without an id`, { temporary: true });
    const draft = `${mailbox}/messages/${encodeURIComponent(draftId)}`;
    try {
      for (const [i, a] of parsed.attachments.entries()) {
        const item = {
          name: a.filename ?? (a.contentType === 'message/rfc822' ? `message-${i + 1}.eml` : `attachment-${i + 1}`),
          contentType: a.contentType,
          isInline: a.contentDisposition === 'inline' || !!a.related,
          ...(a.cid ? { contentId: a.cid } : {}),
        };
        if (a.content.length < INLINE_ATTACHMENT_LIMIT) {
          const body = JSON.stringify({ '@odata.type': '#microsoft.graph.fileAttachment', ...item, contentBytes: a.content.toString('base64') });
          await (await this.call(auth, `${draft}/attachments`, { method: 'POST', headers: { 'content-type': 'application/json' }, body, step: `attach ${item.name}` }, [201])).arrayBuffer();
        } else {
          await this.upload(auth, draft, { ...item, size: a.content.length }, a.content);
        }
      }
      return await this.call(auth, `${draft}/send`, { method: 'POST', step: 'send draft' }, [202]);
    } catch (err) {
      // Leave no half-built draft in the mailbox; a retry starts from a fresh one.
      await this.call(auth, draft, { method: 'DELETE', step: 'delete draft' }, [204]).then((r) => r.arrayBuffer(), () => undefined);
      throw err;
    }
  }

  private async upload(auth: AuthState, draft: string, item: { name: string; contentType: string; isInline: boolean; contentId?: string; size: number }, content: Buffer): Promise<void> {
    const created = await this.call(auth, `${draft}/attachments/createUploadSession`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ AttachmentItem: { attachmentType: 'file', ...item } }), step: `upload session for ${item.name}` }, [201]);
    const session = (await created.json()) as { uploadUrl?: string };
    const uploadUrl = session.uploadUrl;
    if (!uploadUrl) throw new TransportError('GRAPH_REJECTED', `${this.name}: the upload session for ${item.name} has no uploadUrl`, { temporary: true });
    let start = 0;
    let resyncs = 0;
    for (;;) {
      const end = Math.min(start + FRAGMENT_SIZE, content.length) - 1;
      let res: Response;
      try {
        res = await this.call(auth, uploadUrl, { method: 'PUT', bearer: false, headers: { 'content-type': 'application/octet-stream', 'content-range': `bytes ${start}-${end}/${content.length}` }, body: content.subarray(start, end + 1), step: `upload ${item.name} bytes ${start}-${end}` }, [200, 201]);
      } catch (err) {
        // 416: the server's position differs from ours (e.g. an earlier PUT landed but its answer was lost): ask where to resume.
        if (err instanceof TransportError && (err.details as { status?: number } | undefined)?.status === 416 && resyncs++ < 3) {
          const status = await this.call(auth, uploadUrl, { method: 'GET', bearer: false, step: `upload status of ${item.name}` }, [200]);
          start = nextExpected((await status.json()) as { nextExpectedRanges?: string[] }, start);
          continue;
        }
        throw err;
      }
      if (res.status === 201) {
        await res.arrayBuffer();
        return;
      }
      start = nextExpected((await res.json()) as { nextExpectedRanges?: string[] }, end + 1);
      if (start >= content.length) throw new TransportError('GRAPH_TEMPORARY', `${this.name}: the upload of ${item.name} ended without 201 Created`, { temporary: true });
    }
  }

  /** One Graph request with Retry-After on 429/503/504 and one token refresh on 401. */
  private async call(auth: AuthState, url: string, call: Call, expect: number[]): Promise<Response> {
    const maxRetries = this.options.maxRetries ?? 3;
    let refreshed = false;
    for (let attempt = 0; ; attempt++) {
      const headers = { ...call.headers, ...(call.bearer === false ? {} : { authorization: `Bearer ${auth.token.token}` }) };
      let res: Response;
      try {
        res = await this.fetch(url, { method: call.method, headers, body: call.body });
      } catch (err) {
        throw new TransportError('NETWORK', `${this.name}: ${call.step}: ${(err as Error).message}`, { temporary: true, cause: err });
      }
      if (expect.includes(res.status)) return res;
      const text = await res.text();
      let code = `HTTP${res.status}`;
      let msg = text.slice(0, 300);
      try {
        const j = JSON.parse(text);
        code = j.error?.code ?? code;
        msg = j.error?.message ?? msg;
      } catch {
        // not JSON
      }
      const retryAfter = Number(res.headers.get('retry-after'));
      if ((res.status === 429 || res.status === 503 || res.status === 504) && attempt < maxRetries) {
        await new Promise((r) => setTimeout(r, Math.min(Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : 2 ** attempt * 1000, 60_000)));
        continue;
      }
      if (res.status === 401 && code === 'InvalidAuthenticationToken' && call.bearer !== false && !refreshed) {
        refreshed = true;
        auth.token = await this.deps.tokens.tokenRejected(this.options.account, auth.token.token, { purpose: 'graph' });
        continue;
      }
      const temporary = res.status === 429 || res.status >= 500;
      throw new TransportError(temporary ? 'GRAPH_TEMPORARY' : 'GRAPH_REJECTED', `${this.name}: ${call.step}: ${res.status} ${code}: ${msg}`, {
        temporary,
        hint: HINTS[code],
        details: { status: res.status, graphCode: code, step: call.step, retryAfter: Number.isFinite(retryAfter) ? retryAfter : undefined },
      });
    }
  }

  async close(): Promise<void> {}
}

function nextExpected(body: { nextExpectedRanges?: string[] }, fallback: number): number {
  const n = Number.parseInt(String(body.nextExpectedRanges?.[0] ?? ''), 10);
  return Number.isFinite(n) ? n : fallback;
}

type Recipient = { emailAddress: { address: string; name?: string } };

function addressList(obj: AddressObject | AddressObject[] | undefined): Array<{ address: string; name: string }> {
  const list = obj ? (Array.isArray(obj) ? obj : [obj]) : [];
  return list.flatMap((o) => o.value.flatMap((v) => (v.group ? v.group : [v]))).filter((v): v is { address: string; name: string } => !!v.address);
}

const recipient = (a: { address: string; name?: string }): Recipient => ({ emailAddress: a.name ? { address: a.address, name: a.name } : { address: a.address } });

/** The draft (Graph message JSON) for a parsed MIME message; recipients come from the envelope. */
export function draftFrom(parsed: ParsedMail, envelopeTo: string[]): Record<string, unknown> {
  const pending = new Map(envelopeTo.map((r) => [r.toLowerCase(), r]));
  const take = (obj: AddressObject | AddressObject[] | undefined): Recipient[] =>
    addressList(obj).flatMap((a) => {
      const key = a.address.toLowerCase();
      if (!pending.has(key)) return [];
      pending.delete(key);
      return [recipient(a)];
    });
  const toRecipients = take(parsed.to);
  const ccRecipients = take(parsed.cc);
  const bccNames = new Map(addressList(parsed.bcc).map((a) => [a.address.toLowerCase(), a.name]));
  const bccRecipients = [...pending.values()].map((address) => recipient({ address, name: bccNames.get(address.toLowerCase()) }));
  const from = addressList(parsed.from)[0];
  const headers = parsed.headerLines
    .filter((h) => /^x-/i.test(h.key))
    .map((h) => {
      const colon = h.line.indexOf(':');
      return { name: h.line.slice(0, colon).trim(), value: h.line.slice(colon + 1).replace(/\r?\n[ \t]+/g, ' ').trim() };
    })
    .filter((h) => h.value);
  const html = typeof parsed.html === 'string' && parsed.html ? parsed.html : undefined;
  return {
    subject: parsed.subject ?? '',
    body: html ? { contentType: 'HTML', content: html } : { contentType: 'Text', content: parsed.text ?? '' },
    ...(from ? { from: recipient(from) } : {}),
    toRecipients,
    ccRecipients,
    bccRecipients,
    ...(parsed.replyTo ? { replyTo: addressList(parsed.replyTo).map(recipient) } : {}),
    ...(parsed.messageId ? { internetMessageId: parsed.messageId } : {}),
    ...(headers.length ? { internetMessageHeaders: headers } : {}),
  };
}

/**
 * sendMail (MIME) delivers to the To/Cc/Bcc headers only, so envelope recipients that no header
 * names (Bcc stripped upstream, alias expansion) are added as one Bcc field, merged with any
 * existing Bcc field since a message may carry only one.
 */
export function withEnvelopeBcc(raw: Buffer, envelopeTo: string[]): Buffer {
  // Only the header block is decoded; the body (up to 150 MB) is passed through as bytes.
  const blank = [raw.indexOf('\n\n'), raw.indexOf('\n\r\n')].filter((i) => i >= 0).reduce((a, b) => Math.min(a, b), Infinity);
  const cut = Number.isFinite(blank) ? blank + 1 : raw.length;
  const lines = raw.toString('latin1', 0, cut).split(/(?<=\n)/);
  const fields: Array<{ name: string; lines: string[] }> = [];
  for (const line of lines) {
    if (/^[ \t]/.test(line) && fields.length) fields[fields.length - 1]!.lines.push(line);
    else fields.push({ name: line.slice(0, Math.max(0, line.indexOf(':'))).trim().toLowerCase(), lines: [line] });
  }
  const addrs = (names: string[]) => fields.filter((f) => names.includes(f.name)).flatMap((f) => [...f.lines.join('').slice(f.name.length + 1).matchAll(/([^\s,;<>"]+@[^\s,;<>"]+)/g)].map((m) => m[1]!));
  const named = new Set(addrs(['to', 'cc', 'bcc']).map((a) => a.toLowerCase()));
  const missing = envelopeTo.filter((r) => !named.has(r.toLowerCase()));
  if (missing.length === 0) return raw;
  const eol = !Number.isFinite(blank) || raw[blank - 1] === 0x0d ? '\r\n' : '\n';
  const bcc = [...addrs(['bcc']), ...missing];
  const kept = fields.filter((f) => f.name !== 'bcc').flatMap((f) => f.lines);
  const head = `Bcc: ${bcc.join(',\r\n ').replace(/\r\n/g, eol)}${eol}`;
  return Buffer.concat([Buffer.from(head + kept.join(''), 'latin1'), raw.subarray(cut)]);
}
