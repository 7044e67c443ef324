/**
 * Test helpers that talk to the sandbox with plain sockets and plain HTTPS — deliberately not
 * through relay365's client code, so the sandbox's conformance is checked independently.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { Agent, request } from 'undici';
import { startSandbox, type Sandbox, type SandboxOptions } from '../../src/sandbox/index.js';
import { tempDir } from './cli.js';

export async function sandbox(options: Partial<SandboxOptions> = {}): Promise<Sandbox> {
  return startSandbox({ stateDir: tempDir('relay365-sandbox-'), deviceInterval: 1, ...options });
}

export const TENANT = 'contoso.onmicrosoft.com';

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}

export async function https(sb: Sandbox, url: string, init: { method?: string; form?: Record<string, string>; json?: unknown; body?: string; headers?: Record<string, string> } = {}): Promise<HttpResult> {
  const dispatcher = new Agent({ connect: { ca: readFileSync(sb.caFile, 'utf8') } });
  const headers: Record<string, string> = { ...init.headers };
  let body: string | undefined = init.body;
  if (init.form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(init.form).toString();
  } else if (init.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(init.json);
  }
  const res = await request(url, { method: (init.method ?? (body !== undefined ? 'POST' : 'GET')) as 'GET', headers, body, dispatcher });
  const text = await res.body.text();
  await dispatcher.close();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers: res.headers, text, json };
}

export function tokenUrl(sb: Sandbox, tenant = TENANT): string {
  return `${sb.endpoints.authorityHost}/${tenant}/oauth2/v2.0/token`;
}

export async function appToken(sb: Sandbox, scope = 'https://outlook.office365.com/.default', clientId = '11111111-0000-4000-8000-000000000003', secret = 'sandbox-daemon-secret'): Promise<string> {
  const r = await https(sb, tokenUrl(sb), { form: { client_id: clientId, client_secret: secret, grant_type: 'client_credentials', scope } });
  if (r.status !== 200) throw new Error(`token request failed: ${r.text}`);
  return r.json.access_token;
}

export async function userToken(sb: Sandbox, upn: string, password: string, scope = 'https://outlook.office.com/SMTP.Send offline_access'): Promise<{ access_token: string; refresh_token?: string }> {
  const r = await https(sb, tokenUrl(sb), { form: { client_id: '11111111-0000-4000-8000-000000000001', grant_type: 'password', username: upn, password, scope } });
  if (r.status !== 200) throw new Error(`ROPC failed: ${r.text}`);
  return r.json;
}

export function xoauth2(user: string, token: string): string {
  return Buffer.from(`user=${user}\x01auth=Bearer ${token}\x01\x01`).toString('base64');
}

/** A scripted line-protocol client over a raw socket (SMTP/POP3), with STARTTLS upgrade. */
export class RawClient {
  private buffer = '';
  private waiters: Array<() => void> = [];
  socket!: net.Socket;

  static async connect(port: number, opts: { tls?: boolean; ca?: string } = {}): Promise<RawClient> {
    const c = new RawClient();
    await new Promise<void>((resolve, reject) => {
      c.socket = opts.tls ? tls.connect({ port, host: '127.0.0.1', ca: opts.ca, servername: 'localhost' }, resolve) : net.connect(port, '127.0.0.1', resolve);
      c.socket.once('error', reject);
    });
    c.attach();
    return c;
  }

  private attach(): void {
    this.socket.on('data', (d: Buffer) => {
      this.buffer += d.toString('latin1');
      for (const w of this.waiters.splice(0)) w();
    });
    this.socket.on('close', () => {
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** Read one SMTP reply (possibly multi-line), returned as lines. */
  async smtpReply(timeoutMs = 5000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lines = this.buffer.split('\r\n');
      for (let i = 0; i < lines.length - 1; i++) {
        if (/^\d{3} /.test(lines[i]!) || /^\d{3}$/.test(lines[i]!)) {
          const reply = lines.slice(0, i + 1);
          this.buffer = lines.slice(i + 1).join('\r\n');
          return reply;
        }
      }
      await this.wait(deadline);
    }
  }

  /** Read one line. */
  async line(timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.buffer.indexOf('\r\n');
      if (i >= 0) {
        const l = this.buffer.slice(0, i);
        this.buffer = this.buffer.slice(i + 2);
        return l;
      }
      await this.wait(deadline);
    }
  }

  /** Read lines until one matches. */
  async until(re: RegExp, timeoutMs = 5000): Promise<string[]> {
    const out: string[] = [];
    for (;;) {
      const l = await this.line(timeoutMs);
      out.push(l);
      if (re.test(l)) return out;
    }
  }

  private wait(deadline: number): Promise<void> {
    if (this.socket.destroyed && this.buffer.indexOf('\r\n') < 0) throw new Error(`connection closed; pending: ${JSON.stringify(this.buffer)}`);
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`timeout; pending: ${JSON.stringify(this.buffer)}`);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timeout; pending: ${JSON.stringify(this.buffer)}`)), left);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  send(line: string): void {
    this.socket.write(`${line}\r\n`);
  }

  async cmd(line: string): Promise<string[]> {
    this.send(line);
    return this.smtpReply();
  }

  async starttls(ca: string, options: tls.ConnectionOptions = {}): Promise<void> {
    this.socket.removeAllListeners('data');
    this.socket.removeAllListeners('close');
    this.buffer = '';
    const secure = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ socket: this.socket, ca, servername: 'localhost', ...options }, () => resolve(s));
      s.once('error', reject);
    });
    this.socket = secure;
    this.attach();
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Connect, EHLO, STARTTLS, EHLO, AUTH XOAUTH2 → the AUTH reply. */
export async function smtpAuthenticated(sb: Sandbox, user: string, token: string, port = sb.endpoints.smtp.port): Promise<{ client: RawClient; auth: string[] }> {
  const ca = readFileSync(sb.caFile, 'utf8');
  const client = await RawClient.connect(port);
  await client.smtpReply();
  await client.cmd('EHLO client.example.org');
  await client.cmd('STARTTLS');
  await client.starttls(ca);
  await client.cmd('EHLO client.example.org');
  const auth = await client.cmd(`AUTH XOAUTH2 ${xoauth2(user, token)}`);
  return { client, auth };
}
