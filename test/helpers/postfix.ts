/**
 * A private, throw-away Debian Postfix instance for interop tests and benchmarks.
 *
 *   import { startPostfix, postfixMissing } from '../helpers/postfix.js';
 *
 *   test('…', { skip: postfixMissing() }, async () => {
 *     const pf = await startPostfix({ relayHost: { host: '127.0.0.1', port: relay.smtpPort } });
 *     try {
 *       await pf.sendmail(raw, ['bob@example.com'], 'alice@example.com'); // or SMTP to pf.port
 *       await pf.waitForEmptyQueue();                // everything relayed (or bounced)
 *       const got = await pf.waitForMessages(1);     // mail for pf.domains, read from Maildir
 *     } finally {
 *       await pf.stop();
 *     }
 *   });
 *
 * What it sets up, all under one temp directory (`pf.dir`):
 *   etc/    main.cf + master.cf (`postfix -c etc`); no chroot, no syslog (the log is `maillog`)
 *   spool/  queue_directory; data/ data_directory
 *   mail/   virtual(8) Maildirs, one per local domain: mail/<domain>/{new,cur}, delivered as
 *           `nobody`. Every address in `domains` is accepted (catch-all), and virtual(8) adds a
 *           Delivered-To: header, which `messages(recipient)` filters on.
 *   smtpd   on 127.0.0.1:`pf.port` (a free port picked at start), mynetworks = 127.0.0.0/8, so
 *           loopback clients may relay to `relayHost`; STARTTLS when `tls` gives a certificate.
 *
 * Requirements: the `postfix` package and root (master(8) must start as root; it drops to the
 * `postfix` user). /etc/postfix is not touched: `postfix -c DIR`, postqueue -c and sendmail -C
 * accept a non-default config directory from root without alternate_config_directories.
 * `postfixMissing()` says why a test must be skipped (a string for node:test's `skip`), or
 * undefined when everything is there.
 */
import { execFile, spawn } from 'node:child_process';
import { accessSync, chmodSync, chownSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { tempDir } from './cli.js';

const run = promisify(execFile);

export const POSTFIX_BIN = {
  postfix: '/usr/sbin/postfix',
  postqueue: '/usr/sbin/postqueue',
  sendmail: '/usr/sbin/sendmail',
  smtpSource: '/usr/sbin/smtp-source',
  smtpSink: '/usr/sbin/smtp-sink',
  master: '/usr/lib/postfix/sbin/master',
} as const;

function passwdEntry(file: string, name: string): string[] | undefined {
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .map((l) => l.split(':'))
      .find((f) => f[0] === name);
  } catch {
    return undefined;
  }
}

/** Why Postfix tests cannot run here (usable as node:test's `skip` message), or undefined. */
export function postfixMissing(): string | undefined {
  for (const bin of Object.values(POSTFIX_BIN)) {
    try {
      accessSync(bin, constants.X_OK);
    } catch {
      return `Postfix is not installed (${bin} missing; apt-get install postfix)`;
    }
  }
  if (process.getuid?.() !== 0) return 'Postfix tests need root (master(8) starts as root)';
  if (!passwdEntry('/etc/passwd', 'postfix') || !passwdEntry('/etc/group', 'postdrop')) return 'the postfix user or postdrop group is missing';
  if (!passwdEntry('/etc/passwd', 'nobody')) return 'the nobody user is missing (owner of the test Maildirs)';
  return undefined;
}

export function postfixAvailable(): boolean {
  return postfixMissing() === undefined;
}

/** A free TCP port on 127.0.0.1 (bound, then released for the child process to take). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface PostfixOptions {
  /** Domains delivered into Maildirs under `mail/` (catch-all). Default: ['local.test']. */
  domains?: string[];
  /** Send everything else here (relayhost = [host]:port, no MX lookup). Without it, other domains are looked up in DNS. */
  relayHost?: { host: string; port: number };
  /** myhostname (greeting, Received:, queue-id message IDs). Default: postfix.test. */
  hostname?: string;
  /** Offer STARTTLS on smtpd (smtpd_tls_security_level = may) with this certificate. */
  tls?: { certPem: string; keyPem: string };
  /** Extra main.cf parameters, written last (so they override the defaults here). */
  main?: Record<string, string | number>;
  /** Extra master.cf lines. */
  master?: string[];
}

export interface QueueEntry {
  queue_name: string;
  queue_id: string;
  sender: string;
  recipients: Array<{ address: string; delay_reason?: string }>;
}

export interface DeliveredMessage {
  /** The Maildir file. */
  file: string;
  /** From the Delivered-To: header that virtual(8) adds (lower case). */
  deliveredTo: string;
  raw: Buffer;
}

export interface Postfix {
  dir: string;
  configDir: string;
  queueDir: string;
  mailDir: string;
  /** maillog_file: everything Postfix logs. */
  logFile: string;
  host: '127.0.0.1';
  /** smtpd port. */
  port: number;
  domains: string[];
  /** Submit through sendmail(1) -C (pickup), like a local program would. */
  sendmail(raw: string | Buffer, recipients: string[], from?: string): Promise<void>;
  /** postqueue -j, parsed. */
  queue(): Promise<QueueEntry[]>;
  /** Resolves once the queue is empty; rejects after timeoutMs with the queue and the log tail. */
  waitForEmptyQueue(timeoutMs?: number): Promise<void>;
  /** Messages delivered into the local Maildirs, optionally only those for one recipient. */
  messages(recipient?: string): DeliveredMessage[];
  /** Waits until at least `count` messages (for `recipient`, if given) were delivered. */
  waitForMessages(count: number, options?: { recipient?: string; timeoutMs?: number }): Promise<DeliveredMessage[]>;
  /** The last lines of the log (for assertion messages). */
  logTail(lines?: number): string;
  /** postfix stop (graceful, then forced by postfix-script); removes the queue directory. */
  stop(): Promise<void>;
}

const MASTER_CF = [
  // service type private unpriv chroot wakeup maxproc command
  'pickup    unix  n - n 60    1 pickup',
  'cleanup   unix  n - n -     0 cleanup',
  'qmgr      unix  n - n 300   1 qmgr',
  'rewrite   unix  - - n -     - trivial-rewrite',
  'bounce    unix  - - n -     0 bounce',
  'defer     unix  - - n -     0 bounce',
  'trace     unix  - - n -     0 bounce',
  'verify    unix  - - n -     1 verify',
  'flush     unix  n - n 1000? 0 flush',
  'proxymap  unix  - - n -     - proxymap',
  'showq     unix  n - n -     - showq',
  'error     unix  - - n -     - error',
  'retry     unix  - - n -     - error',
  'discard   unix  - - n -     - discard',
  'smtp      unix  - - n -     - smtp',
  'relay     unix  - - n -     - smtp',
  'virtual   unix  - n n -     - virtual',
  'anvil     unix  - - n -     1 anvil',
  'scache    unix  - - n -     1 scache',
  'tlsmgr    unix  - - n 1000? 1 tlsmgr',
  'postlog   unix-dgram n - n - 1 postlogd',
];

async function postfixCmd(configDir: string, ...args: string[]): Promise<void> {
  // postfix(1) logs its errors to syslog/maillog_file only (stderr only on a terminal), so a
  // failure message points at the log.
  await run(POSTFIX_BIN.postfix, ['-c', configDir, ...args], { timeout: 60_000 });
}

/** True once smtpd greets with 220; says QUIT so the probe leaves a clean log line. */
function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    let quit = false;
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(10_000, () => done(false));
    s.on('data', (d) => {
      buf += d.toString('latin1');
      if (!quit && /^220 .*\r\n/.test(buf)) {
        quit = true;
        s.write('QUIT\r\n');
      } else if (/^221 /m.test(buf)) done(true);
      else if (/^[45]\d\d /m.test(buf)) done(false);
    });
    s.once('error', () => done(false));
    s.once('close', () => done(false));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startPostfix(options: PostfixOptions = {}): Promise<Postfix> {
  const reason = postfixMissing();
  if (reason) throw new Error(reason);
  const dir = tempDir('relay365-postfix-');
  // master(8) and its daemons run as `postfix` and must reach everything below dir.
  chmodSync(dir, 0o755);
  const configDir = join(dir, 'etc');
  const queueDir = join(dir, 'spool');
  const dataDir = join(dir, 'data');
  const mailDir = join(dir, 'mail');
  const logFile = join(dir, 'maillog');
  const domains = (options.domains ?? ['local.test']).map((d) => d.toLowerCase());
  const [, , postfixUid] = passwdEntry('/etc/passwd', 'postfix')!;
  const [, , nobodyUid, nobodyGid] = passwdEntry('/etc/passwd', 'nobody')!;
  mkdirSync(configDir);
  mkdirSync(queueDir);
  mkdirSync(dataDir);
  chownSync(dataDir, Number(postfixUid), -1);
  mkdirSync(mailDir);
  for (const d of domains) {
    mkdirSync(join(mailDir, d));
    chownSync(join(mailDir, d), Number(nobodyUid), Number(nobodyGid));
  }
  // texthash: a plain file, no postmap. "@domain" is a catch-all; "domain/" means Maildir.
  writeFileSync(join(configDir, 'vmailbox'), domains.map((d) => `@${d} ${d}/\n`).join(''));

  let tls: Record<string, string> | undefined;
  if (options.tls) {
    // Read by smtpd before it drops privileges, so root-only is fine.
    writeFileSync(join(configDir, 'smtpd.pem'), options.tls.certPem);
    writeFileSync(join(configDir, 'smtpd.key'), options.tls.keyPem, { mode: 0o600 });
    tls = { smtpd_tls_security_level: 'may', smtpd_tls_cert_file: join(configDir, 'smtpd.pem'), smtpd_tls_key_file: join(configDir, 'smtpd.key'), smtpd_tls_loglevel: '1', smtpd_tls_received_header: 'yes' };
  }

  const port = await freePort();
  const main: Record<string, string | number> = {
    compatibility_level: '3.6',
    queue_directory: queueDir,
    data_directory: dataDir,
    mail_owner: 'postfix',
    setgid_group: 'postdrop',
    maillog_file: logFile,
    maillog_file_prefixes: dir,
    myhostname: options.hostname ?? 'postfix.test',
    myorigin: '$myhostname',
    inet_interfaces: '127.0.0.1',
    inet_protocols: 'ipv4',
    mynetworks: '127.0.0.0/8',
    mydestination: '',
    // Nothing local: no aliases (their NIS/db lookups only produce warnings here).
    alias_maps: '',
    alias_database: '',
    local_recipient_maps: '',
    local_transport: 'error:local delivery is disabled',
    virtual_mailbox_domains: domains.join(' '),
    virtual_mailbox_base: mailDir,
    virtual_mailbox_maps: `texthash:${join(configDir, 'vmailbox')}`,
    virtual_uid_maps: `static:${nobodyUid}`,
    virtual_gid_maps: `static:${nobodyGid}`,
    virtual_minimum_uid: 1,
    smtpd_peername_lookup: 'no',
    smtpd_banner: '$myhostname ESMTP Postfix',
    biff: 'no',
    append_dot_mydomain: 'no',
    // Tests want quick retries when an upstream is briefly down.
    queue_run_delay: '1s',
    minimal_backoff_time: '1s',
    maximal_backoff_time: '2s',
    ...(tls ?? {}),
    ...(options.relayHost ? { relayhost: `[${options.relayHost.host}]:${options.relayHost.port}` } : {}),
    ...options.main,
  };
  writeFileSync(join(configDir, 'main.cf'), Object.entries(main).map(([k, v]) => `${k} = ${v}\n`).join(''));
  writeFileSync(join(configDir, 'master.cf'), [`127.0.0.1:${port} inet n - n - - smtpd`, ...MASTER_CF, ...(options.master ?? [])].join('\n') + '\n');

  const logTail = (lines = 40): string => {
    try {
      return readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  };

  try {
    await postfixCmd(configDir, 'start');
  } catch (err) {
    throw new Error(`postfix start failed: ${(err as Error).message}\n${logTail()}`);
  }
  const stop = async (): Promise<void> => {
    await postfixCmd(configDir, 'stop').catch(() => undefined);
    // The daemons notice master's exit on their own; the spool can be large (benchmarks).
    rmSync(queueDir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15_000;
  while (!(await greets(port))) {
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`postfix smtpd did not listen on 127.0.0.1:${port}\n${logTail()}`);
    }
    await sleep(50);
  }

  const queue = async (): Promise<QueueEntry[]> => {
    const { stdout } = await run(POSTFIX_BIN.postqueue, ['-c', configDir, '-j'], { timeout: 30_000, maxBuffer: 64 * 1024 * 1024 });
    return stdout
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as QueueEntry);
  };

  const messages = (recipient?: string): DeliveredMessage[] => {
    const out: DeliveredMessage[] = [];
    for (const d of domains) {
      for (const sub of ['new', 'cur']) {
        const p = join(mailDir, d, sub);
        if (!existsSync(p)) continue;
        for (const name of readdirSync(p).sort()) {
          const file = join(p, name);
          const raw = readFileSync(file);
          const m = /^Delivered-To: *(.+?)\r?$/im.exec(raw.subarray(0, 4096).toString('latin1'));
          const deliveredTo = (m?.[1] ?? '').toLowerCase();
          if (!recipient || deliveredTo === recipient.toLowerCase()) out.push({ file, deliveredTo, raw });
        }
      }
    }
    return out;
  };

  return {
    dir,
    configDir,
    queueDir,
    mailDir,
    logFile,
    host: '127.0.0.1',
    port,
    domains,
    queue,
    messages,
    logTail,
    stop,
    async sendmail(raw, recipients, from) {
      await new Promise<void>((resolve, reject) => {
        const child = spawn(POSTFIX_BIN.sendmail, ['-C', configDir, '-i', ...(from !== undefined ? ['-f', from] : []), '--', ...recipients], { stdio: ['pipe', 'ignore', 'pipe'] });
        let stderr = '';
        child.stderr.on('data', (d) => (stderr += d));
        child.on('error', reject);
        child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`sendmail exited ${code}: ${stderr}\n${logTail()}`))));
        child.stdin.end(raw);
      });
    },
    async waitForEmptyQueue(timeoutMs = 30_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const q = await queue();
        if (q.length === 0) return;
        if (Date.now() > end) throw new Error(`Postfix queue not empty after ${timeoutMs} ms: ${JSON.stringify(q.slice(0, 5))}\n${logTail()}`);
        await sleep(200);
      }
    },
    async waitForMessages(count, { recipient, timeoutMs = 30_000 } = {}) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const got = messages(recipient);
        if (got.length >= count) return got;
        if (Date.now() > end) throw new Error(`${got.length}/${count} messages delivered${recipient ? ` to ${recipient}` : ''} after ${timeoutMs} ms\n${logTail()}`);
        await sleep(100);
      }
    },
  };
}
