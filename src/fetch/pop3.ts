/**
 * A small POP3 client (RFC 1939, STLS from RFC 2595, AUTH from RFC 5034) with SASL XOAUTH2.
 * Hand-written because no npm POP3 client supports AUTH XOAUTH2. It does only what `fetch` needs:
 * STLS, AUTH XOAUTH2, UIDL, RETR, DELE, QUIT. Deletions take effect at QUIT (RFC 1939), so
 * a connection that dies before QUIT deletes nothing.
 */
import { TransportError } from '../core/errors.js';
import { explainReply } from '../core/catalogue.js';
import { xoauth2 } from '../sasl/index.js';
import { LineSocket } from './line-socket.js';

export interface Pop3Options {
  host: string;
  port: number;
  /** implicit: TLS from the start (995); starttls: plain (110) then STLS. */
  tls: 'implicit' | 'starttls';
  caFile?: string;
  timeoutMs?: number;
  transcript?: (direction: 'C' | 'S', line: string) => void;
}

export class Pop3Client {
  private constructor(private readonly sock: LineSocket) {}

  static async connect(options: Pop3Options): Promise<Pop3Client> {
    const sock = await LineSocket.connect({ host: options.host, port: options.port, implicitTls: options.tls === 'implicit', caFile: options.caFile, timeoutMs: options.timeoutMs, transcript: options.transcript });
    const client = new Pop3Client(sock);
    try {
      client.expectOk(await sock.readLine(), 'greeting');
      if (options.tls === 'starttls') {
        await client.command('STLS');
        await sock.upgrade();
      }
      return client;
    } catch (e) {
      sock.close();
      throw e;
    }
  }

  private expectOk(line: string, what: string): string {
    if (line.startsWith('+OK')) return line;
    throw popError(line, what);
  }

  /** Send a command and return its +OK line; -ERR throws. */
  async command(line: string, secret?: string): Promise<string> {
    this.sock.writeLine(line, secret ? { secret } : {});
    return this.expectOk(await this.sock.readLine(), line.split(' ')[0]!);
  }

  /** AUTH XOAUTH2 in the two-step form Microsoft documents (fact sheet §3.4). */
  async authXoauth2(user: string, token: string): Promise<string> {
    this.sock.writeLine('AUTH XOAUTH2');
    const go = await this.sock.readLine();
    if (!go.startsWith('+') || go.startsWith('+OK')) throw popError(go, 'AUTH');
    this.sock.writeLine(xoauth2(user, token), { secret: '<XOAUTH2 initial response>' });
    let reply = await this.sock.readLine();
    // Gmail-style error challenge: answer with an empty line, then read the final reply.
    if (reply.startsWith('+ ') && reply.length > 2) {
      this.sock.writeLine('');
      reply = await this.sock.readLine();
    }
    if (!reply.startsWith('+OK')) throw popError(reply, 'AUTH', user);
    return reply;
  }

  /** Message number → unique id, for every message not marked deleted. */
  async uidl(): Promise<Array<{ n: number; uid: string }>> {
    await this.command('UIDL');
    const body = (await this.sock.readDotBody()).toString('latin1');
    return body
      .split('\r\n')
      .filter(Boolean)
      .map((l) => {
        const [n, uid] = l.split(' ');
        return { n: Number(n), uid: uid ?? '' };
      });
  }

  async retr(n: number): Promise<Buffer> {
    await this.command(`RETR ${n}`);
    return this.sock.readDotBody();
  }

  async dele(n: number): Promise<void> {
    await this.command(`DELE ${n}`);
  }

  /** Ends the session; this is when the server removes messages marked with DELE. */
  async quit(): Promise<void> {
    try {
      await this.command('QUIT');
    } finally {
      this.sock.close();
    }
  }

  close(): void {
    this.sock.close();
  }
}

function popError(line: string, what: string, user?: string): TransportError {
  const entry = explainReply(line, 'pop');
  const auth = what === 'AUTH';
  return new TransportError(auth ? 'POP_AUTH' : 'FETCH_FAILED', `POP3 ${what}${user ? ` as ${user}` : ''} failed: ${line}`, {
    temporary: entry ? entry.temporary : !auth,
    hint: entry ? `${entry.en.cause} ${entry.en.fix}` : undefined,
    details: entry ? { catalogue: entry.id } : undefined,
  });
}
