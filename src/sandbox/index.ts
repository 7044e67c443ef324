/**
 * The relay365 sandbox: a local emulator of the Microsoft side (identity platform, Exchange Online
 * SMTP/HVE/POP3, Graph sendMail) faithful to the fact sheet, for tests and offline trials.
 * Everything listens on 127.0.0.1 by default; port 0 picks free ports; the chosen endpoints are
 * written to `<stateDir>/sandbox.json`.
 */
import https from 'node:https';
import type net from 'node:net';
import { mkdirSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCertificate } from './ca.js';
import { loadOrCreateTls } from './ca.js';
import { Directory, defaultDirectoryObject, APP_IDS, DEFAULT_TENANT_ID } from './directory.js';
import { FaultInjector } from './faults.js';
import { TokenSigner } from './tokens.js';
import { IdentityPlatform, type IdentityOptions } from './identity.js';
import { DEFAULT_LIMITS, type MailLimits, type SandboxContext } from './context.js';
import { MailStore } from './mail/store.js';
import { startSmtpServer } from './mail/smtp.js';
import { startPop3Server } from './mail/pop3.js';
import { listen } from './mail/listener.js';
import { startGraphServer } from './mail/graph.js';
import { startImapServer } from './mail/imap.js';

export { Directory, APP_IDS, DEFAULT_TENANT_ID, FaultInjector, MailStore };
export type { Fault, FaultAction, FaultStage } from './faults.js';
export type { SandboxContext, MailLimits } from './context.js';

export interface HostPort {
  host: string;
  port: number;
}

export interface SandboxEndpoints {
  authorityHost: string;
  admin: string;
  smtp: HostPort;
  smtpHve: HostPort;
  imap: HostPort;
  imapStarttls: HostPort;
  pop3: HostPort;
  pop3Stls: HostPort;
  graph: string;
}

export interface SandboxOptions {
  stateDir: string;
  /** A directory object, or a YAML file path; default: the built-in directory. */
  directory?: unknown;
  host?: string;
  ports?: Partial<Record<'identity' | 'smtp' | 'smtpHve' | 'imap' | 'imapStarttls' | 'pop3' | 'pop3Stls' | 'graph', number>>;
  tokenLifetimeSeconds?: number;
  deviceCodeLifetimeSeconds?: number;
  deviceInterval?: number;
  verificationUri?: string;
  limits?: Partial<MailLimits>;
  hostname?: string;
}

export interface Sandbox {
  endpoints: SandboxEndpoints;
  caFile: string;
  directory: Directory;
  mail: MailStore;
  faults: FaultInjector;
  identity: IdentityPlatform;
  /** The daemon app's certificate and key (PEM) for certificate-credential tests. */
  daemonCertificate: { certPem: string; keyPem: string; certFile: string; keyFile: string };
  tenantId: string;
  approveDeviceCode(userCode: string, upn: string): void;
  /** Complete an authorization-code request as `upn` without a browser; returns the redirect URL. */
  authorize(authorizeUrl: string, upn: string): string;
  stop(): Promise<void>;
}

export async function startSandbox(options: SandboxOptions): Promise<Sandbox> {
  const stateDir = options.stateDir;
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const host = options.host ?? '127.0.0.1';
  const tls = loadOrCreateTls(stateDir);
  const daemonCertificate = loadOrCreateDaemonCert(stateDir);
  const directory =
    typeof options.directory === 'string'
      ? Directory.fromFile(options.directory)
      : Directory.fromObject(options.directory ?? defaultDirectoryObject(daemonCertificate.certPem));
  const signer = new TokenSigner(stateDir);
  const faults = new FaultInjector();
  const mail = new MailStore();
  const ctx: SandboxContext = {
    directory,
    verifyAccessToken: (t) => signer.verify(t, Date.now()),
    mail,
    faults,
    tls,
    hostname: options.hostname ?? 'SN2PR00CA0018.namprd00.prod.outlook.com',
    now: () => Date.now(),
    limits: { ...DEFAULT_LIMITS, ...options.limits },
  };
  const identityOptions: IdentityOptions = {
    tokenLifetimeSeconds: options.tokenLifetimeSeconds ?? 3599,
    deviceCodeLifetimeSeconds: options.deviceCodeLifetimeSeconds ?? 900,
    deviceInterval: options.deviceInterval ?? 5,
    slowDown: false,
    verificationUri: options.verificationUri,
  };
  const identity = new IdentityPlatform(ctx, signer, identityOptions);
  const sockets = new Set<net.Socket>();
  const idServer = https.createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    identity.handle(req, res).catch(() => res.destroy());
  });
  idServer.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const ports = options.ports ?? {};
  const stops: Array<() => Promise<void>> = [];
  try {
    const id = await listen(idServer, host, ports.identity ?? 0, sockets);
    stops.push(id.stop);
    const urlHost = host.includes(':') ? `[${host}]` : host;
    identity.baseUrl = `https://${urlHost}:${id.port}`;
    const smtp = await startSmtpServer(ctx, 'submission', host, ports.smtp ?? 0);
    stops.push(smtp.stop);
    const hve = await startSmtpServer(ctx, 'hve', host, ports.smtpHve ?? 0);
    stops.push(hve.stop);
    const imap = await startImapServer(ctx, host, ports.imap ?? 0, true);
    stops.push(imap.stop);
    const imapStarttls = await startImapServer(ctx, host, ports.imapStarttls ?? 0, false);
    stops.push(imapStarttls.stop);
    const pop3 = await startPop3Server(ctx, host, ports.pop3 ?? 0, true);
    stops.push(pop3.stop);
    const pop3Stls = await startPop3Server(ctx, host, ports.pop3Stls ?? 0, false);
    stops.push(pop3Stls.stop);
    const graph = await startGraphServer(ctx, host, ports.graph ?? 0);
    stops.push(graph.stop);
    const endpoints: SandboxEndpoints = {
      authorityHost: identity.baseUrl,
      admin: `${identity.baseUrl}/sandbox/admin`,
      smtp: { host, port: smtp.port },
      smtpHve: { host, port: hve.port },
      imap: { host, port: imap.port },
      imapStarttls: { host, port: imapStarttls.port },
      pop3: { host, port: pop3.port },
      pop3Stls: { host, port: pop3Stls.port },
      graph: `https://${urlHost}:${graph.port}`,
    };
    writeFileSync(join(stateDir, 'sandbox.json'), `${JSON.stringify({ pid: process.pid, endpoints, caFile: tls.caFile, tenantId: directory.tenants[0]!.id, apps: APP_IDS }, null, 2)}\n`, { mode: 0o600 });
    return {
      endpoints,
      caFile: tls.caFile,
      directory,
      mail,
      faults,
      identity,
      daemonCertificate,
      tenantId: directory.tenants[0]!.id,
      approveDeviceCode: (code, upn) => identity.approveDeviceCode(code, upn),
      authorize: (url, upn) => identity.authorizeAs(url, upn),
      stop: async () => {
        await Promise.all(stops.map((s) => s()));
      },
    };
  } catch (err) {
    await Promise.all(stops.map((s) => s()));
    throw err;
  }
}

function loadOrCreateDaemonCert(stateDir: string): Sandbox['daemonCertificate'] {
  const certFile = join(stateDir, 'daemon-app.pem');
  const keyFile = join(stateDir, 'daemon-app.key');
  if (!existsSync(certFile) || !existsSync(keyFile)) {
    const c = createCertificate({ commonName: 'relay365-daemon', days: 365 });
    writeFileSync(keyFile, c.keyPem, { mode: 0o600 });
    writeFileSync(certFile, c.certPem, { mode: 0o644 });
  }
  return { certPem: readFileSync(certFile, 'utf8'), keyPem: readFileSync(keyFile, 'utf8'), certFile, keyFile };
}
