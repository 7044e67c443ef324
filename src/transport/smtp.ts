/**
 * SMTP transport on nodemailer: STARTTLS (587) by default, implicit TLS as an option, AUTH XOAUTH2
 * or OAUTHBEARER with tokens from the token manager, a per-account pool of at most 3 connections
 * (Exchange's concurrency limit), TLS ≥ 1.2 with verification always on unless explicitly
 * disabled. On `535 5.7.3` the token is reported as rejected and AUTH is retried once with a fresh
 * token. nodemailer's built-in XOAUTH2 only retries after a 334 challenge (Gmail), not after
 * Exchange's immediate 535, so the SASL exchange is a custom handler here.
 */
import nodemailer, { type Transporter } from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import { Relay365Error, TransportError } from '../core/errors.js';
import { redactText } from '../core/redact.js';
import { trustedCas } from '../core/tls.js';
import type { Logger } from '../core/log.js';
import type { TokenProvider } from '../oauth/types.js';
import { oauthbearer, xoauth2, OAUTHBEARER_ERROR_RESPONSE } from '../sasl/index.js';
import { parseReply, replyError } from './replies.js';
import { patchNodemailerDataStream } from './dot-stuffing.js';
import type { DeliveryResult, Envelope, MessageSource, Transport } from './types.js';

await patchNodemailerDataStream();
await patchPerRecipientDsn();

/** The envelope nodemailer's connection holds while it sends, with what relay365 adds to it. */
interface ConnectionEnvelope {
  dsn?: { notify?: string | null; orcpt?: string | null };
  /** NOTIFY/ORCPT per recipient (Envelope.dsn), read by the patched _sendRcpt. */
  relay365RecipientDsn?: { notify?: Map<string, string[]>; orcpt?: Map<string, string> };
}

/**
 * nodemailer's `dsn` option is per message (one NOTIFY and one ORCPT for every RCPT TO), while
 * RFC 3461 gives them per recipient, and a relay must pass each recipient's own on. Sending one
 * transaction per distinct ORCPT would cost a message per recipient (Postfix sends an ORCPT for
 * every one) against Exchange's 30 messages a minute; instead each recipient's values are put on
 * the connection's envelope just before its RCPT TO is written (_sendRcpt builds the command from
 * them synchronously). The ESM build is patched: it is the one the transports import.
 */
async function patchPerRecipientDsn(): Promise<void> {
  const url = new URL('./smtp-connection/index.js', import.meta.resolve('nodemailer'));
  const { default: SMTPConnection } = (await import(url.href)) as { default: { prototype: Record<string, unknown> } };
  if (SMTPConnection.prototype.__relay365RecipientDsn) return;
  const sendRcpt = SMTPConnection.prototype._sendRcpt as (this: { _envelope?: ConnectionEnvelope }, recipient: string, callback: unknown) => unknown;
  SMTPConnection.prototype._sendRcpt = function (this: { _envelope?: ConnectionEnvelope }, recipient: string, callback: unknown) {
    const envelope = this._envelope;
    const perRecipient = envelope?.relay365RecipientDsn;
    if (perRecipient && envelope.dsn) {
      envelope.dsn.notify = perRecipient.notify?.get(recipient)?.join(',') ?? null;
      envelope.dsn.orcpt = perRecipient.orcpt?.get(recipient) ?? null;
    }
    return sendRcpt.call(this, recipient, callback);
  };
  SMTPConnection.prototype.__relay365RecipientDsn = true;
}

export type SmtpSecurity = 'starttls' | 'implicit' | 'opportunistic' | 'none';

export interface SmtpTransportOptions {
  host: string;
  port: number;
  security?: SmtpSecurity;
  auth?: { kind: 'oauth'; account: string; mechanism?: 'XOAUTH2' | 'OAUTHBEARER'; minValiditySeconds?: number } | { kind: 'password'; user: string; pass: string };
  caFile?: string;
  /** Disables certificate verification. Only for lab set-ups; never in production. */
  dangerouslySkipTlsVerify?: boolean;
  maxConnections?: number;
  /** EHLO name. */
  name?: string;
  /** Receives every protocol line (already redacted) for --debug transcripts. */
  transcript?: (line: string) => void;
  timeoutMs?: number;
  pool?: boolean;
}

const CUSTOM_XOAUTH2 = 'RELAY365-XOAUTH2';
const CUSTOM_OAUTHBEARER = 'RELAY365-OAUTHBEARER';

export class SmtpTransport implements Transport {
  readonly name: string;
  private readonly transporter: Transporter<SMTPTransport.SentMessageInfo>;
  /** The last token failure inside AUTH (nodemailer re-wraps errors thrown by auth handlers). */
  private lastTokenError?: Relay365Error;

  constructor(
    private readonly options: SmtpTransportOptions,
    private readonly deps: { tokens?: TokenProvider; log?: Logger } = {},
  ) {
    const auth = options.auth;
    this.name = auth?.kind === 'oauth' ? `smtp:${auth.account}` : `smtp:${options.host}:${options.port}`;
    const security = options.security ?? 'starttls';
    const ca = trustedCas(options.caFile);
    const transcript = options.transcript;
    const logger = transcript
      ? {
          level: () => {},
          trace: () => {},
          debug: (_meta: unknown, msg: string, ...args: unknown[]) => transcript(redactText(formatLog(msg, args))),
          info: (_meta: unknown, msg: string, ...args: unknown[]) => transcript(redactText(formatLog(msg, args))),
          warn: (_meta: unknown, msg: string, ...args: unknown[]) => transcript(redactText(formatLog(msg, args))),
          error: (_meta: unknown, msg: string, ...args: unknown[]) => transcript(redactText(formatLog(msg, args))),
          fatal: () => {},
        }
      : false;
    const transportOptions: SMTPTransport.Options & { pool?: boolean; maxConnections?: number; maxMessages?: number; customAuth?: Record<string, unknown> } = {
      host: options.host,
      port: options.port,
      secure: security === 'implicit',
      // Credentials never cross the wire in clear: with AUTH configured, "opportunistic" means STARTTLS is required,
      // otherwise a server (or anyone stripping STARTTLS from its EHLO) would be handed the password.
      requireTLS: security === 'starttls' || (security === 'opportunistic' && !!auth),
      ignoreTLS: security === 'none',
      opportunisticTLS: security === 'opportunistic' && !auth,
      name: options.name,
      tls: {
        minVersion: 'TLSv1.2',
        ca,
        rejectUnauthorized: !options.dangerouslySkipTlsVerify,
        servername: /^[\d.:]+$/.test(options.host) ? undefined : options.host,
      },
      connectionTimeout: options.timeoutMs ?? 30_000,
      greetingTimeout: options.timeoutMs ?? 30_000,
      socketTimeout: (options.timeoutMs ?? 30_000) * 4,
      logger: logger as unknown as SMTPTransport.Options['logger'],
      debug: !!transcript,
      pool: options.pool ?? true,
      // Exchange Online allows 3 concurrent connections per mailbox (432 4.3.2 beyond); another MTA
      // behind a smarthost route has no such rule, so it gets Postfix's default concurrency.
      maxConnections: auth?.kind === 'oauth' ? Math.min(options.maxConnections ?? 3, 3) : (options.maxConnections ?? 20),
      maxMessages: 100,
    };
    if (auth?.kind === 'password') {
      transportOptions.auth = { user: auth.user, pass: auth.pass };
    } else if (auth?.kind === 'oauth') {
      if (!deps.tokens) throw new TransportError('INTERNAL', 'An OAuth SMTP route needs the token manager.');
      const method = auth.mechanism === 'OAUTHBEARER' ? CUSTOM_OAUTHBEARER : CUSTOM_XOAUTH2;
      transportOptions.auth = { type: 'custom', method, user: auth.account, pass: 'token' } as unknown as SMTPTransport.Options['auth'];
      transportOptions.customAuth = { [method]: (ctx: CustomAuthContext) => this.saslBearer(ctx, auth.mechanism ?? 'XOAUTH2', auth.account, auth.minValiditySeconds) };
    }
    this.transporter = nodemailer.createTransport(transportOptions);
  }

  private async saslBearer(ctx: CustomAuthContext, mechanism: 'XOAUTH2' | 'OAUTHBEARER', account: string, minValiditySeconds?: number): Promise<void> {
    const tokens = this.deps.tokens!;
    const attempt = async (token: string, user: string) => {
      const payload = mechanism === 'XOAUTH2' ? xoauth2(user, token) : oauthbearer(user, token, this.options.host, this.options.port);
      // RFC 4954 §4: an initial response that would push the AUTH line past SMTP's 512-octet limit
      // goes after an empty 334 instead. Bearer tokens always do; Exchange takes the long line as
      // well, but Dovecot's submission service answers "500 5.5.2 Line too long".
      const line = `AUTH ${mechanism} ${payload}`;
      let r = line.length + 2 <= 512 ? await ctx.sendCommand(line) : await ctx.sendCommand(`AUTH ${mechanism}`);
      if (line.length + 2 > 512) {
        if (r.status !== 334) return r;
        r = await ctx.sendCommand(payload);
      }
      // An error challenge (Gmail, RFC 7628) must be answered before the final reply arrives.
      if (r.status === 334) r = await ctx.sendCommand(mechanism === 'XOAUTH2' ? '' : OAUTHBEARER_ERROR_RESPONSE);
      return r;
    };
    const token = async (fn: () => ReturnType<TokenProvider['getAccessToken']>) => {
      try {
        return await fn();
      } catch (err) {
        this.lastTokenError = err instanceof Relay365Error ? err : undefined;
        // nodemailer stamps the error it is given with its own code (EAUTH): it gets a copy, so the
        // token error keeps ACCOUNT_NOT_FOUND, ACCOUNT_REAUTH_REQUIRED … for the failure policy
        // (stamped, a missing or expired account bounced every message instead of holding them).
        throw err instanceof Error ? new Error(err.message, { cause: err }) : err;
      }
    };
    let t = await token(() => tokens.getAccessToken(account, { purpose: 'smtp', minValiditySeconds }));
    let r = await attempt(t.token, t.username);
    // Exchange says 535 5.7.3 for a token it refuses, Dovecot and others 535 5.7.8: either way the
    // token may be stale (revoked, clock skew), so one fresh one is worth a try. 5.7.139 is a
    // policy, which no new token changes.
    if (r.status === 535 && (!r.code || r.code === '5.7.3' || r.code === '5.7.8')) {
      t = await token(() => tokens.tokenRejected(account, t.token, { purpose: 'smtp', minValiditySeconds }));
      r = await attempt(t.token, t.username);
    }
    if (r.status !== 235) {
      const err = new Error(r.response) as Error & { responseCode?: number; response?: string };
      err.responseCode = r.status;
      err.response = r.response;
      throw err;
    }
  }

  async deliver(envelope: Envelope, message: MessageSource): Promise<DeliveryResult> {
    const started = Date.now();
    try {
      const info = await this.sendRaw(envelope, message);
      const rejectedErrors = (info as unknown as { rejectedErrors?: Array<{ recipient?: string; response?: string; responseCode?: number }> }).rejectedErrors ?? [];
      const rejected = (info.rejected as string[]).map((rcpt) => {
        const e = rejectedErrors.find((x) => x.recipient === rcpt);
        const reply = parseReply(e?.response ?? '550 rejected', e?.responseCode);
        return { recipient: rcpt, reply, temporary: reply.code >= 400 && reply.code < 500 };
      });
      return {
        accepted: (info.accepted as string[]).map(String),
        rejected,
        response: info.response,
        messageId: /<([^>]+)>/.exec(info.response)?.[1],
        route: this.name,
        durationMs: Date.now() - started,
      };
    } catch (err) {
      throw this.translate(err);
    }
  }

  /**
   * Hands the queued bytes to nodemailer's transport (pool) directly, through its documented
   * transport interface `send(mail, callback)`: `sendMail()` would first compile the raw message
   * into a MIME tree (plugins, a random Message-ID, address parsing) only to stream the same bytes
   * out again, which was a third of delivery's CPU for small messages. `mail` has what nodemailer's
   * SMTP transports read from it: the envelope, the stream, DSN options, a header lookup for logs.
   */
  private sendRaw(envelope: Envelope, message: MessageSource): Promise<SMTPTransport.SentMessageInfo> {
    const transport = (this.transporter as unknown as { transporter: { send(mail: unknown, cb: (err: Error | null, info: SMTPTransport.SentMessageInfo) => void): void } }).transporter;
    const dsn = envelope.dsn;
    const mail = {
      data: dsn ? { dsn: { ret: dsn.ret, envid: dsn.envid } } : {},
      message: {
        getEnvelope: () => ({ from: envelope.from, to: [...envelope.to], ...(dsn?.notify || dsn?.orcpt ? { relay365RecipientDsn: { notify: dsn.notify, orcpt: dsn.orcpt } } : {}) }),
        messageId: () => '',
        getHeader: () => '',
        createReadStream: () => message(),
      },
    };
    return new Promise((resolve, reject) => transport.send(mail, (err, info) => (err ? reject(err) : resolve(info))));
  }

  private translate(err: unknown): TransportError {
    const tokenError = this.lastTokenError;
    this.lastTokenError = undefined;
    const context = `${this.name} (${this.options.host}:${this.options.port})`;
    if (tokenError && (err as { code?: string })?.code === 'EAUTH') {
      return new TransportError(tokenError.code, `${context}: ${tokenError.message}`, { temporary: tokenError.temporary, hint: tokenError.hint, aadsts: tokenError.aadsts, cause: tokenError });
    }
    return toTransportError(err, context);
  }

  /** Connect, negotiate and authenticate without sending (used by check and tests). */
  async verify(): Promise<void> {
    try {
      await this.transporter.verify();
    } catch (err) {
      throw this.translate(err);
    }
  }

  async close(): Promise<void> {
    this.transporter.close();
  }
}

interface CustomAuthContext {
  sendCommand(cmd: string): Promise<{ status: number; code?: string; text: string; response: string }>;
}

function formatLog(msg: string, args: unknown[]): string {
  let i = 0;
  return msg.replace(/%[sdj]/g, () => String(args[i++] ?? ''));
}

export function toTransportError(err: unknown, context: string): TransportError {
  if (err instanceof TransportError) return err;
  const e = err as Error & { code?: string; responseCode?: number; response?: string; cause?: unknown };
  if (e?.responseCode && e.response) {
    const replied = replyError(parseReply(e.response, e.responseCode), context);
    // A refusal during AUTH is an authentication problem whatever its code (e.g. a smarthost's 535 5.7.8).
    if (e.code === 'EAUTH' && replied.code !== 'SMTP_AUTH') {
      return new TransportError('SMTP_AUTH', replied.message, { smtp: replied.smtp, temporary: replied.temporary, hint: replied.temporary ? replied.hint : 'The server refused this route\'s credentials (the user name and password, or the OAuth token even after one refresh): check the account (relay365 check) and the server\'s settings.', cause: err });
    }
    return replied;
  }
  if (e?.code === 'ETLS' || /certificate|self.signed|SSL|TLS/i.test(e?.message ?? '')) {
    return new TransportError('TLS', `${context}: ${e.message}`, { temporary: false, cause: err });
  }
  if (e?.code === 'EAUTH') return new TransportError('SMTP_AUTH', `${context}: ${e.message}`, { temporary: false, cause: err });
  return new TransportError('NETWORK', `${context}: ${e?.message ?? String(err)}`, { temporary: true, cause: err });
}
