/**
 * Microsoft Graph sendMail transport: POST /v1.0/users/{sender}/sendMail with the MIME message
 * base64-encoded (fact sheet §6.3). 429/503 are honoured with Retry-After (bounded); Graph error
 * codes map to typed errors (§6.6). Messages whose base64 exceeds the 4 MB request limit are
 * refused with a clear error (upload sessions are not implemented yet).
 */
import { TransportError } from '../core/errors.js';
import { makeFetch } from '../oauth/http.js';
import type { TokenProvider } from '../oauth/types.js';
import type { DeliveryResult, Envelope, MessageSource, Transport } from './types.js';

export interface GraphTransportOptions {
  account: string;
  /** Graph base URL, default https://graph.microsoft.com */
  baseUrl?: string;
  caFile?: string;
  maxRetries?: number;
}

const MAX_REQUEST = 4 * 1024 * 1024;

const HINTS: Record<string, string> = {
  ErrorSendAsDenied: 'The mailbox may not send as the From address: grant SendAs or send from the account mailbox.',
  ErrorAccessDenied: 'The token lacks Mail.Send for this mailbox (delegated: only your own mailbox; application: Mail.Send with admin consent).',
  NoPermissionsInAccessToken: 'The app-only token has no roles: grant the Graph application permission Mail.Send and admin consent.',
  InvalidAuthenticationToken: 'The token is expired or not for Graph (audience https://graph.microsoft.com).',
  MailboxNotEnabledForRESTAPI: 'The mailbox has no Exchange Online licence or is on-premises.',
  ErrorMimeContentInvalidBase64String: 'The MIME content was not valid base64.',
};

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
      if (Math.ceil(size / 3) * 4 > MAX_REQUEST) {
        throw new TransportError('GRAPH_REJECTED', `${this.name}: the message is larger than Graph's 4 MB sendMail request limit`, { temporary: false, hint: 'Use an SMTP route for large messages.' });
      }
      chunks.push(chunk as Buffer);
    }
    const body = Buffer.concat(chunks).toString('base64');
    const sender = envelope.from || this.options.account;
    const url = `${(this.options.baseUrl ?? 'https://graph.microsoft.com').replace(/\/+$/, '')}/v1.0/users/${encodeURIComponent(sender)}/sendMail`;
    let token = await this.deps.tokens.getAccessToken(this.options.account, { purpose: 'graph' });
    const maxRetries = this.options.maxRetries ?? 3;
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await this.fetch(url, { method: 'POST', headers: { authorization: `Bearer ${token.token}`, 'content-type': 'text/plain' }, body });
      } catch (err) {
        throw new TransportError('NETWORK', `${this.name}: ${(err as Error).message}`, { temporary: true, cause: err });
      }
      if (res.status === 202) {
        await res.arrayBuffer();
        return { accepted: [...envelope.to], rejected: [], response: '202 Accepted', messageId: res.headers.get('request-id') ?? undefined, route: this.name, durationMs: Date.now() - started };
      }
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
      if (res.status === 401 && code === 'InvalidAuthenticationToken' && attempt === 0) {
        token = await this.deps.tokens.tokenRejected(this.options.account, token.token, { purpose: 'graph' });
        continue;
      }
      const temporary = res.status === 429 || res.status >= 500;
      throw new TransportError(temporary ? 'GRAPH_TEMPORARY' : 'GRAPH_REJECTED', `${this.name}: ${res.status} ${code}: ${msg}`, {
        temporary,
        hint: HINTS[code],
        details: { status: res.status, graphCode: code, retryAfter: Number.isFinite(retryAfter) ? retryAfter : undefined },
      });
    }
  }

  async close(): Promise<void> {}
}
