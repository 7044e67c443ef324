/**
 * A line-oriented client socket for POP3, SMTP and IMAP probes: CRLF framing over raw bytes
 * (latin1, so message octets survive unchanged), an in-place STARTTLS/STLS upgrade, timeouts, and
 * a transcript hook that sees every line with SASL payloads redacted. Hand-written because the
 * POP3 client (no npm POP3 client speaks AUTH XOAUTH2) and the `check` probes need every raw line.
 */
import net from 'node:net';
import tls from 'node:tls';
import { TransportError } from '../core/errors.js';
import { redactText } from '../core/redact.js';
import { trustedCas } from '../core/tls.js';

export interface LineSocketOptions {
  host: string;
  port: number;
  /** Implicit TLS from the first byte (993/995); otherwise plain until upgrade(). */
  implicitTls?: boolean;
  caFile?: string;
  timeoutMs?: number;
  /** Sees every line: 'C' client, 'S' server. Secrets are already replaced. */
  transcript?: (direction: 'C' | 'S', line: string) => void;
  /**
   * Check mode: complete the handshake even if verification fails, so the caller can report why;
   * the caller must then stop before sending credentials. Default: verification failures throw.
   */
  reportUnverified?: boolean;
}

export interface TlsDetails {
  protocol: string | null;
  cipher: string;
  authorized: boolean;
  authorizationError?: string;
  subject?: string;
  issuer?: string;
  validTo?: string;
  daysLeft?: number;
  altNames?: string;
}

/** SNI must be a host name, never an IP literal. */
export function serverName(host: string): string | undefined {
  return net.isIP(host) ? undefined : host;
}

export class LineSocket {
  private buffer: Buffer = Buffer.alloc(0);
  private waiter?: () => void;
  private closed = false;
  private error?: Error;

  private constructor(
    private socket: net.Socket,
    private readonly options: LineSocketOptions,
  ) {
    this.attach(socket);
  }

  static async connect(options: LineSocketOptions): Promise<LineSocket> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const onError = (e: Error) => reject(networkError(options, e));
      const s = options.implicitTls
        ? tls.connect({ host: options.host, port: options.port, servername: serverName(options.host), ca: trustedCas(options.caFile), minVersion: 'TLSv1.2', rejectUnauthorized: !options.reportUnverified }, () => resolve(s))
        : net.connect({ host: options.host, port: options.port }, () => resolve(s));
      s.once('error', onError);
      s.setTimeout(timeoutMs, () => s.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    });
    return new LineSocket(socket, options);
  }

  get secure(): boolean {
    return this.socket instanceof tls.TLSSocket;
  }

  private attach(s: net.Socket): void {
    s.on('data', (d: Buffer) => {
      this.buffer = this.buffer.length ? Buffer.concat([this.buffer, d]) : d;
      this.wake();
    });
    s.on('error', (e) => {
      this.error = networkError(this.options, e);
      this.wake();
    });
    s.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  private async more(): Promise<void> {
    if (this.error) throw this.error;
    if (this.closed) throw new TransportError('NETWORK', `${this.options.host}:${this.options.port} closed the connection`, { temporary: true });
    await new Promise<void>((resolve) => (this.waiter = resolve));
  }

  /** One line without its CRLF, as latin1 (byte-preserving). */
  async readLine(): Promise<string> {
    for (;;) {
      const i = this.buffer.indexOf(0x0a);
      if (i >= 0) {
        const line = this.buffer.subarray(0, i).toString('latin1').replace(/\r$/, '');
        this.buffer = this.buffer.subarray(i + 1);
        this.options.transcript?.('S', redactText(line));
        return line;
      }
      await this.more();
    }
  }

  /**
   * A POP3 multi-line body up to the "." line, dot-unstuffed, lines joined with CRLF. Not put in
   * the transcript: message content is data, not protocol.
   */
  async readDotBody(): Promise<Buffer> {
    const lines: Buffer[] = [];
    for (;;) {
      const i = this.buffer.indexOf(0x0a);
      if (i < 0) {
        await this.more();
        continue;
      }
      let line = this.buffer.subarray(0, i);
      this.buffer = this.buffer.subarray(i + 1);
      if (line.length && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
      if (line.length === 1 && line[0] === 0x2e) break;
      if (line.length && line[0] === 0x2e) line = line.subarray(1);
      lines.push(Buffer.from(line), Buffer.from('\r\n'));
    }
    return Buffer.concat(lines);
  }

  /** Write one command line; `secret` lines appear in the transcript only as a placeholder. */
  writeLine(line: string, opts: { secret?: string } = {}): void {
    this.options.transcript?.('C', opts.secret ?? redactText(line));
    this.socket.write(`${line}\r\n`, 'latin1');
  }

  /** Upgrade the plain connection to TLS in place (after the server's STARTTLS/STLS go-ahead). */
  async upgrade(): Promise<void> {
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    plain.removeAllListeners('error');
    this.buffer = Buffer.alloc(0);
    const secure = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const t = tls.connect(
        { socket: plain, servername: serverName(this.options.host), ca: trustedCas(this.options.caFile), minVersion: 'TLSv1.2', rejectUnauthorized: !this.options.reportUnverified },
        () => resolve(t),
      );
      t.once('error', (e) => reject(networkError(this.options, e)));
    });
    this.socket = secure;
    this.closed = false;
    this.attach(secure);
  }

  tlsDetails(): TlsDetails | undefined {
    if (!(this.socket instanceof tls.TLSSocket)) return undefined;
    const s = this.socket;
    const cert = s.getPeerCertificate();
    const validTo = cert?.valid_to;
    const daysLeft = validTo ? Math.floor((Date.parse(validTo) - Date.now()) / 86_400_000) : undefined;
    return {
      protocol: s.getProtocol(),
      cipher: s.getCipher()?.name ?? '',
      authorized: s.authorized,
      authorizationError: s.authorizationError ? String(s.authorizationError) : undefined,
      subject: first(cert?.subject?.CN),
      issuer: first(cert?.issuer?.CN ?? cert?.issuer?.O),
      validTo,
      daysLeft,
      altNames: cert?.subjectaltname,
    };
  }

  close(): void {
    this.socket.destroy();
  }
}

const first = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

function networkError(o: LineSocketOptions, e: Error & { code?: string }): TransportError {
  const tlsProblem = /certificate|self[- ]signed|CERT_|SSL|TLS|unable to verify/i.test(`${e.code ?? ''} ${e.message}`);
  return new TransportError(tlsProblem ? 'TLS' : 'NETWORK', `${o.host}:${o.port}: ${e.message}${e.code ? ` (${e.code})` : ''}`, {
    temporary: !tlsProblem,
    cause: e,
    hint: tlsProblem ? 'Check the host name and --ca-file; never disable certificate verification in production.' : 'Check the host, port, firewall and proxy.',
  });
}
