/**
 * Shared plumbing of the sandbox's line-based mail servers (IMAP, POP3): implicit-TLS or plain
 * listeners, an in-place STARTTLS/STLS upgrade, line framing, and stopping every socket.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { SandboxContext } from '../context.js';
import { LineReader } from './auth.js';

export interface LineConnection {
  /** The current socket (the TLS socket after an upgrade). */
  readonly socket: net.Socket;
  readonly secure: boolean;
  write(line: string): void;
  /** Switch to TLS in place (after the STARTTLS/STLS go-ahead was written). */
  upgrade(): void;
  /** Called once when the connection closes. */
  onClose(fn: () => void): void;
}

export function startLineServer(
  ctx: SandboxContext,
  host: string,
  port: number,
  implicitTls: boolean,
  greeting: string,
  setup: (conn: LineConnection) => (line: string) => void,
): Promise<{ port: number; stop(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const secureContext = tls.createSecureContext({ key: ctx.tls.key, cert: ctx.tls.cert, minVersion: 'TLSv1.2' });
  const onConnection = (raw: net.Socket, startSecure: boolean) => {
    sockets.add(raw);
    raw.on('close', () => sockets.delete(raw));
    raw.on('error', () => {});
    let socket = raw;
    let secure = startSecure;
    const conn: LineConnection = {
      get socket() {
        return socket;
      },
      get secure() {
        return secure;
      },
      write: (line) => {
        if (!socket.destroyed) socket.write(`${line}\r\n`);
      },
      upgrade: () => {
        raw.removeAllListeners('data');
        reader.reset();
        const t = new tls.TLSSocket(raw, { isServer: true, secureContext });
        t.on('error', () => raw.destroy());
        t.on('data', (c: Buffer) => reader.push(c));
        t.on('secure', () => {
          socket = t;
          secure = true;
        });
      },
      onClose: (fn) => raw.once('close', fn),
    };
    const reader = new LineReader(setup(conn));
    raw.on('data', (c: Buffer) => reader.push(c));
    conn.write(greeting);
  };
  const server = implicitTls
    ? tls.createServer({ key: ctx.tls.key, cert: ctx.tls.cert, minVersion: 'TLSv1.2' }, (s) => onConnection(s, true))
    : net.createServer((s) => onConnection(s, false));
  return listen(server, host, port, sockets);
}

export function listen(server: net.Server, host: string, port: number, sockets: Set<net.Socket>): Promise<{ port: number; stop(): Promise<void> }> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () =>
      resolve({
        port: (server.address() as net.AddressInfo).port,
        stop: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      }),
    );
  });
}
