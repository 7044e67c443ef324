/**
 * A private, throw-away Debian Dovecot 2.3 instance for interop tests: IMAP (implicit TLS and
 * STARTTLS), POP3 (implicit TLS and STLS) and the submission service, with the oauth2 passdb
 * validating RS256 access tokens locally (no introspection endpoint, like a server that trusts
 * Entra's published signing keys).
 *
 *   import { dovecotMissing, startSandboxDovecot } from '../helpers/dovecot.js';
 *
 *   test('…', { skip: dovecotMissing() }, async () => {
 *     const dc = await startSandboxDovecot(sb, { users: ['alice@contoso.onmicrosoft.com'] });
 *     try {
 *       dc.deliver('alice@contoso.onmicrosoft.com', raw);   // drop mail into the Maildir
 *       // relay365 fetch … --port dc.ports.imaps --ca-file dc.caFile
 *     } finally {
 *       await dc.stop();
 *     }
 *   });
 *
 * Everything lives under one temp directory (`dc.dir`):
 *   dovecot.conf            passed with `dovecot -F -c FILE`; /etc/dovecot is never read
 *   dovecot-oauth2.conf.ext the oauth2 passdb settings
 *   keys/<azp>/<alg>/<kid>  PEM public keys: the dict `fs:posix:prefix=keys/` is asked for
 *                           `shared/<azp>/<alg>/<kid>` and dict-fs maps `shared/` onto the prefix.
 *                           Tokens without `azp` (app-only) are looked up under `default`.
 *   users                   passwd-file userdb: only the listed users exist
 *   mail/<domain>/<user>/   Maildirs;  run/ base_dir;  state/;  dovecot.log
 *
 * As root (CI), Dovecot drops to its own users (dovecot, dovenull; mail owner `mail`); as any other
 * user it runs rootless, everything as that user and without chroot.
 *
 * Dovecot 2.3.19's local JWT validation requires the header fields `typ` and `alg` (`kid` picks the
 * key, else `default`) and the claims `sub` and `exp`; it checks `nbf`/`iat` against the clock,
 * `aud` against `client_id`, `iss` against `issuers`, and signs the user in as `username_attribute`
 * (which must equal the SASL user). Its `scope` check reads a `scope` claim, which Entra tokens do
 * not have (they carry `scp`/`roles`), so no scope is configured.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createPublicKey, randomBytes, type JsonWebKey } from 'node:crypto';
import { accessSync, chmodSync, chownSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { userInfo } from 'node:os';
import { createCertificate } from '../../src/sandbox/ca.js';
import { APP_IDS, type Sandbox } from '../../src/sandbox/index.js';
import { tempDir } from './cli.js';
import { https } from './sandbox.js';

export const DOVECOT_BIN = '/usr/sbin/dovecot';
const REQUIRED = [DOVECOT_BIN, '/usr/lib/dovecot/imap', '/usr/lib/dovecot/imap-login', '/usr/lib/dovecot/pop3', '/usr/lib/dovecot/pop3-login', '/usr/lib/dovecot/submission', '/usr/lib/dovecot/submission-login', '/usr/lib/dovecot/auth', '/usr/lib/dovecot/libdcrypt_openssl.so'];

/** Why Dovecot tests cannot run here (a string for node:test's `skip`), or undefined. */
export function dovecotMissing(): string | undefined {
  for (const file of REQUIRED) {
    try {
      accessSync(file, constants.R_OK);
    } catch {
      return `Dovecot is not installed (${file} missing; apt-get install dovecot-core dovecot-imapd dovecot-pop3d dovecot-submissiond)`;
    }
  }
  if (process.getuid?.() === 0) {
    for (const u of ['dovecot', 'dovenull', 'mail']) if (!passwd(u)) return `the system user ${u} is missing (created by the dovecot-core package)`;
  }
  return undefined;
}

export function dovecotAvailable(): boolean {
  return dovecotMissing() === undefined;
}

function passwd(name: string): { uid: number; gid: number } | undefined {
  try {
    const f = readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .map((l) => l.split(':'))
      .find((x) => x[0] === name);
    return f ? { uid: Number(f[2]), gid: Number(f[3]) } : undefined;
  } catch {
    return undefined;
  }
}

function groupName(gid: number): string {
  const line = readFileSync('/etc/group', 'utf8')
    .split('\n')
    .map((l) => l.split(':'))
    .find((f) => Number(f[2]) === gid);
  if (!line) throw new Error(`no group with gid ${gid} in /etc/group`);
  return line[0]!;
}

/** Distinct free loopback ports: all are held until every one is picked, then released for Dovecot. */
export async function freePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const s = net.createServer();
      servers.push(s);
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', resolve);
      });
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

export interface SigningKey {
  kid: string;
  /** SPKI PEM. */
  publicKeyPem: string;
  alg?: string;
}

export interface DovecotOptions {
  /** Login names that exist (passwd-file userdb); lower case, as Dovecot normalises them. */
  users: string[];
  /** Keys that sign the access tokens; each is stored under every `clientIds` entry and `default`. */
  signingKeys: SigningKey[];
  /** `azp` values of the tokens (the client application ids). */
  clientIds?: string[];
  /** Claim holding the login name. Default: upn. */
  usernameAttribute?: string;
  /** Required `aud` (Dovecot's `client_id`); unset: any audience. */
  audience?: string;
  /** Accepted `iss` values; unset: any issuer. */
  issuers?: string[];
  /** Where the submission service relays to; default: a closed port (submission refuses mail). */
  submissionRelay?: { host: string; port: number };
  hostname?: string;
  /** Issues the server certificate (PEM); default: a throw-away CA of its own. */
  tlsIssuer?: { certPem: string; keyPem: string };
  /** auth_debug = yes: the log says why a token was refused. */
  authDebug?: boolean;
}

export interface StoredMessage {
  file: string;
  raw: Buffer;
}

export interface Dovecot {
  dir: string;
  configFile: string;
  logFile: string;
  host: '127.0.0.1';
  ports: { imap: number; imaps: number; pop3: number; pop3s: number; submission: number };
  /** The CA that issued the server certificate (for --ca-file). */
  caFile: string;
  pid: number;
  /** Puts a message into the user's Maildir (new/), as an MDA would. Returns the file. */
  deliver(user: string, raw: string | Buffer): string;
  /** Messages in the user's INBOX (new/ and cur/), sorted by file name. */
  messages(user: string): StoredMessage[];
  logTail(lines?: number): string;
  /** How many lines the log has now (a starting point for waitForLog). */
  logMark(): number;
  /**
   * Log lines after line `after` that match `pattern`, once there are at least `count` of them.
   * The log process writes asynchronously, so a line may land after the client got its reply.
   */
  waitForLog(pattern: RegExp, options?: { after?: number; count?: number; timeoutMs?: number }): Promise<string[]>;
  /** Stops the master and waits for every process it started. */
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Masters still running, so a test process that dies without stop() does not leave Dovecots behind. */
const running = new Set<ChildProcess>();
let exitHook = false;
function track(master: ChildProcess): void {
  running.add(master);
  master.once('exit', () => running.delete(master));
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    // The master takes its children down with it on SIGTERM.
    for (const m of running) m.kill('SIGTERM');
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Every process below `pid` (from /proc), so stop() can wait for the whole tree. */
function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // The command name may contain spaces and parentheses; fields resume after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parent.set(Number(name), ppid);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length) {
    const p = queue.shift()!;
    for (const [child, pp] of parent) {
      if (pp === p) {
        out.push(child);
        queue.push(child);
      }
    }
  }
  return out;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    // A zombie still answers signal 0; it is finished for our purposes.
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

const userDir = (mailRoot: string, user: string) => {
  const [local, domain] = user.toLowerCase().split('@');
  return join(mailRoot, domain ?? 'localdomain', local!);
};

export async function startDovecot(options: DovecotOptions): Promise<Dovecot> {
  const reason = dovecotMissing();
  if (reason) throw new Error(reason);
  const dir = tempDir('relay365-dovecot-');
  // auth runs as `dovecot`, login processes as `dovenull`: they must reach the config and keys.
  chmodSync(dir, 0o755);
  const root = process.getuid?.() === 0;
  // As root Dovecot drops privileges to its own users; otherwise everything runs as the caller.
  const me = userInfo();
  const internalUser = root ? 'dovecot' : me.username;
  const internalGroup = root ? 'dovecot' : groupName(me.gid);
  const loginUser = root ? 'dovenull' : me.username;
  const mailOwner = root ? passwd('mail')! : { uid: me.uid, gid: me.gid };

  const configFile = join(dir, 'dovecot.conf');
  const oauth2File = join(dir, 'dovecot-oauth2.conf.ext');
  const keysDir = join(dir, 'keys');
  const usersFile = join(dir, 'users');
  const mailRoot = join(dir, 'mail');
  const logFile = join(dir, 'dovecot.log');
  const tlsDir = join(dir, 'tls');
  mkdirSync(tlsDir);
  mkdirSync(join(dir, 'state'));
  mkdirSync(mailRoot);
  if (root) chownSync(mailRoot, mailOwner.uid, mailOwner.gid);

  for (const azp of ['default', ...(options.clientIds ?? [])]) {
    for (const key of options.signingKeys) {
      const d = join(keysDir, azp, key.alg ?? 'RS256');
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, key.kid), key.publicKeyPem, { mode: 0o644 });
    }
  }

  const issuer = options.tlsIssuer ?? createCertificate({ commonName: 'relay365 test Dovecot CA', isCa: true, days: 30 });
  const server = createCertificate({ commonName: 'localhost', altNames: [{ dns: 'localhost' }, { ip: '127.0.0.1' }], issuer, days: 30 });
  const caFile = join(tlsDir, 'ca.pem');
  writeFileSync(caFile, issuer.certPem, { mode: 0o644 });
  writeFileSync(join(tlsDir, 'server.pem'), server.certPem, { mode: 0o644 });
  // Read by the master (root) at start-up only.
  writeFileSync(join(tlsDir, 'server.key'), server.keyPem, { mode: 0o600 });

  const users = options.users.map((u) => u.toLowerCase());
  writeFileSync(usersFile, users.map((u) => `${u}::${mailOwner.uid}:${mailOwner.gid}::${userDir(mailRoot, u)}::\n`).join(''), { mode: 0o644 });
  for (const u of users) makeMaildir(userDir(mailRoot, u), root ? mailOwner : undefined);

  const oauth2: Record<string, string> = {
    introspection_mode: 'local',
    local_validation_key_dict: `fs:posix:prefix=${keysDir}/`,
    username_attribute: options.usernameAttribute ?? 'upn',
    ...(options.audience ? { client_id: options.audience } : {}),
    ...(options.issuers?.length ? { issuers: options.issuers.join(' ') } : {}),
    debug: options.authDebug ? 'yes' : 'no',
  };
  writeFileSync(oauth2File, Object.entries(oauth2).map(([k, v]) => `${k} = ${v}\n`).join(''), { mode: 0o644 });

  const [imap, imaps, pop3, pop3s, submission, closed] = (await freePorts(6)) as [number, number, number, number, number, number];
  const relay = options.submissionRelay ?? { host: '127.0.0.1', port: closed };
  const instance = `relay365-${randomBytes(4).toString('hex')}`;
  // Login processes and anvil chroot by default, which only root may do.
  const chroot = root ? '' : '  chroot =\n';
  const conf = `# written by test/helpers/dovecot.ts
instance_name = ${instance}
protocols = imap pop3 submission
listen = 127.0.0.1
base_dir = ${join(dir, 'run')}
state_dir = ${join(dir, 'state')}
log_path = ${logFile}
info_log_path = ${logFile}
debug_log_path = ${logFile}
hostname = ${options.hostname ?? 'dovecot.test'}
default_internal_user = ${internalUser}
default_internal_group = ${internalGroup}
default_login_user = ${loginUser}
first_valid_uid = ${mailOwner.uid}
last_valid_uid = ${mailOwner.uid}
first_valid_gid = ${mailOwner.gid}
mail_location = maildir:~/Maildir
# Tokens are only ever sent over TLS.
disable_plaintext_auth = yes
ssl = required
ssl_cert = <${join(tlsDir, 'server.pem')}
ssl_key = <${join(tlsDir, 'server.key')}
ssl_min_protocol = TLSv1.2
auth_mechanisms = xoauth2 oauthbearer
auth_verbose = yes
auth_debug = ${options.authDebug ? 'yes' : 'no'}
# Failed logins are answered at once: no fixed delay, and no anvil penalty (which doubles the
# delay per failure from the same IP, up to 15 s, and would make refusal tests slow).
auth_failure_delay = 0
service anvil {
${chroot}  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = ${oauth2File}
}
userdb {
  driver = passwd-file
  args = ${usersFile}
}
service imap-login {
${chroot}  inet_listener imap {
    address = 127.0.0.1
    port = ${imap}
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = ${imaps}
    ssl = yes
  }
}
service pop3-login {
${chroot}  inet_listener pop3 {
    address = 127.0.0.1
    port = ${pop3}
  }
  inet_listener pop3s {
    address = 127.0.0.1
    port = ${pop3s}
    ssl = yes
  }
}
service submission-login {
${chroot}  inet_listener submission {
    address = 127.0.0.1
    port = ${submission}
  }
}
submission_relay_host = ${relay.host}
submission_relay_port = ${relay.port}
submission_relay_trusted = yes
submission_relay_ssl = no
`;
  writeFileSync(configFile, conf, { mode: 0o644 });

  const logTail = (lines = 40): string => {
    try {
      return readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  };

  // -F: the master stays our child, so it (and through it every Dovecot process) can be stopped.
  const master: ChildProcess = spawn(DOVECOT_BIN, ['-F', '-c', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  track(master);
  let output = '';
  master.stdout!.on('data', (d) => (output += d));
  master.stderr!.on('data', (d) => (output += d));
  let exited = false;
  const exit = new Promise<void>((resolve) => master.once('exit', () => ((exited = true), resolve())));
  master.once('error', (e) => (output += String(e)));

  const stop = async (): Promise<void> => {
    const pid = master.pid;
    if (pid === undefined || exited) return;
    const tree = descendants(pid);
    master.kill('SIGTERM');
    await Promise.race([exit, sleep(10_000)]);
    if (!exited) master.kill('SIGKILL');
    await exit;
    // The master signals its children on shutdown; wait for them, then force the stragglers.
    const deadline = Date.now() + 5_000;
    while (tree.some(alive) && Date.now() < deadline) await sleep(50);
    for (const p of tree.filter(alive)) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };

  const deadline = Date.now() + 20_000;
  for (;;) {
    const up = await Promise.all([imap, imaps, pop3, pop3s, submission].map(canConnect));
    if (up.every(Boolean)) break;
    if (exited || Date.now() > deadline) {
      await stop();
      throw new Error(`dovecot did not start (${exited ? `exit ${master.exitCode}` : 'timeout'}): ${output}\n${logTail()}`);
    }
    await sleep(50);
  }

  const logLines = (): string[] => {
    try {
      return readFileSync(logFile, 'utf8').split('\n').filter(Boolean);
    } catch {
      return [];
    }
  };

  let seq = 0;
  return {
    dir,
    configFile,
    logFile,
    host: '127.0.0.1',
    ports: { imap, imaps, pop3, pop3s, submission },
    caFile,
    pid: master.pid!,
    logTail,
    stop,
    logMark: () => logLines().length,
    async waitForLog(pattern, { after = 0, count = 1, timeoutMs = 10_000 } = {}) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const hits = logLines()
          .slice(after)
          .filter((l) => pattern.test(l));
        if (hits.length >= count) return hits;
        if (Date.now() > end) throw new Error(`${hits.length}/${count} log lines match ${pattern} after ${timeoutMs} ms\n${logTail()}`);
        await sleep(50);
      }
    },
    deliver(user, raw) {
      const md = join(userDir(mailRoot, user), 'Maildir');
      if (!existsSync(md)) throw new Error(`no Maildir for ${user} (not in users)`);
      const name = `${Math.floor(Date.now() / 1000)}.M${process.pid}P${seq++}R${randomBytes(4).toString('hex')}.relay365-test`;
      // Maildir delivery: write in tmp/, then rename into new/ so readers never see half a file.
      const tmp = join(md, 'tmp', name);
      writeFileSync(tmp, raw, { mode: 0o600 });
      if (root) chownSync(tmp, mailOwner.uid, mailOwner.gid);
      renameSync(tmp, join(md, 'new', name));
      return join(md, 'new', name);
    },
    messages(user) {
      const md = join(userDir(mailRoot, user), 'Maildir');
      const out: StoredMessage[] = [];
      for (const sub of ['new', 'cur']) {
        const p = join(md, sub);
        if (!existsSync(p)) continue;
        for (const name of readdirSync(p)) out.push({ file: join(p, name), raw: readFileSync(join(p, name)) });
      }
      return out.sort((a, b) => a.file.localeCompare(b.file));
    },
  };
}

function makeMaildir(home: string, owner?: { uid: number; gid: number }): void {
  for (const d of [dirname(home), home, join(home, 'Maildir'), join(home, 'Maildir', 'tmp'), join(home, 'Maildir', 'new'), join(home, 'Maildir', 'cur')]) {
    if (!existsSync(d)) mkdirSync(d, { mode: 0o700 });
    if (owner) chownSync(d, owner.uid, owner.gid);
  }
}

// ------------------------------------------------------------------------------ sandbox glue

/** The sandbox's signing keys, from its published JWKS, as Dovecot wants them (PEM). */
export async function sandboxSigningKeys(sb: Sandbox): Promise<SigningKey[]> {
  const res = await https(sb, `${sb.endpoints.authorityHost}/${sb.tenantId}/discovery/v2.0/keys`);
  if (res.status !== 200) throw new Error(`JWKS request failed (${res.status}): ${res.text}`);
  const jwks = res.json as { keys: Array<JsonWebKey & { kid: string; alg?: string }> };
  return jwks.keys.map((k) => ({
    kid: k.kid,
    alg: k.alg ?? 'RS256',
    publicKeyPem: createPublicKey({ key: { kty: k.kty, n: k.n, e: k.e }, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString(),
  }));
}

/**
 * Dovecot trusting the sandbox like a server would trust Entra: the sandbox's JWKS keys, issuer
 * https://sts.windows.net/<tenant>/, audience https://outlook.office.com (delegated tokens), user
 * = upn; the server certificate comes from the sandbox CA, so one --ca-file serves both.
 */
export async function startSandboxDovecot(sb: Sandbox, options: Partial<DovecotOptions> & { users: string[] }): Promise<Dovecot> {
  const caKey = join(dirname(sb.caFile), 'ca.key');
  return startDovecot({
    signingKeys: await sandboxSigningKeys(sb),
    clientIds: Object.values(APP_IDS),
    usernameAttribute: 'upn',
    audience: 'https://outlook.office.com',
    issuers: [`https://sts.windows.net/${sb.tenantId}/`],
    tlsIssuer: { certPem: readFileSync(sb.caFile, 'utf8'), keyPem: readFileSync(caKey, 'utf8') },
    ...options,
  });
}
