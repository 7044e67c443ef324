/**
 * The token store: one file per account in `<stateDir>/accounts/`, mode 0600, written atomically.
 * Optional AES-256-GCM encryption at rest; the key is derived once per process (scrypt) and
 * cached, so each read or write costs microseconds, not a key derivation.
 * A lock file per account serialises refreshes across processes (CLI and relay).
 */
import { createCipheriv, createDecipheriv, randomBytes, scryptSync, createHash } from 'node:crypto';
import { promises as fsp, constants as fsc, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { StoreError } from '../core/errors.js';
import { writeFileAtomic, ensurePrivateDir } from '../core/fs.js';
import { registerSecret } from '../core/redact.js';
import type { TokenPurpose } from './types.js';

export type AccountFlow = 'device' | 'browser' | 'client-credentials' | 'password' | 'imported';
export type AccountState = 'valid' | 'needs-reauth' | 'error';

export interface StoredCredential {
  type: 'none' | 'secret' | 'certificate';
  secret?: string;
  certFile?: string;
  keyFile?: string;
  keyPassphrase?: string;
  alg?: 'PS256' | 'RS256';
}

export interface AccountRecord {
  /** The account's address (its mailbox, or a label for an app identity). */
  email: string;
  /** Mailbox put in SASL user= (default: email; a shared/target mailbox for app-only access). */
  mailbox?: string;
  tenant: string;
  clientId: string;
  flow: AccountFlow;
  authorityHost: string;
  endpoints?: { token?: string; device?: string; authorize?: string };
  cloud?: string;
  caFile?: string;
  purposes: TokenPurpose[];
  /** Explicit scope string (custom servers); overrides the presets. */
  scope?: string;
  redirectUri?: string;
  credential: StoredCredential;
  refreshToken?: string;
  /** Cached access tokens per resource group. */
  access?: Partial<Record<'outlook' | 'graph', { token: string; expiresAt: number }>>;
  state: AccountState;
  lastRefresh?: string;
  lastError?: { code: string; message: string; aadsts?: number; hint?: string; at: string };
  createdAt: string;
  updatedAt: string;
}

export interface StoreKeySource {
  /** Raw key material (32 bytes base64/hex) or passphrase from an env var. */
  env?: string;
  keyFile?: string;
  passphrase?: string;
}

const MAGIC = 'relay365-store-v1';

function fileName(email: string): string {
  const safe = email.toLowerCase().replace(/[^a-z0-9@._+-]/g, '_');
  return `${safe}.json`;
}

export class AccountStore {
  readonly dir: string;
  private readonly key?: Buffer;

  constructor(stateDir: string, keySource: StoreKeySource = {}) {
    this.dir = join(stateDir, 'accounts');
    this.key = deriveKey(keySource);
  }

  get encrypted(): boolean {
    return this.key !== undefined;
  }

  path(email: string): string {
    return join(this.dir, fileName(email));
  }

  async list(): Promise<AccountRecord[]> {
    let names: string[];
    try {
      names = await fsp.readdir(this.dir);
    } catch {
      return [];
    }
    const out: AccountRecord[] = [];
    for (const n of names.filter((x) => x.endsWith('.json') && !x.startsWith('.')).sort()) {
      const rec = await this.readFile(join(this.dir, n));
      if (rec) out.push(rec);
    }
    return out;
  }

  async get(email: string): Promise<AccountRecord | undefined> {
    return this.readFile(this.path(email));
  }

  async put(record: AccountRecord): Promise<void> {
    await ensurePrivateDir(this.dir);
    record.updatedAt = new Date().toISOString();
    const json = JSON.stringify(record, null, 2);
    await writeFileAtomic(this.path(record.email), this.key ? this.seal(json) : json, 0o600);
  }

  async remove(email: string): Promise<boolean> {
    try {
      await fsp.unlink(this.path(email));
      return true;
    } catch {
      return false;
    }
  }

  private async readFile(path: string): Promise<AccountRecord | undefined> {
    let text: string;
    try {
      text = await fsp.readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new StoreError('STORE_IO', `Cannot read ${path}: ${(err as Error).message}`);
    }
    const parsed = JSON.parse(text) as AccountRecord | { magic: string; iv: string; tag: string; data: string };
    let record: AccountRecord;
    if ('magic' in parsed && parsed.magic === MAGIC) {
      if (!this.key) throw new StoreError('STORE_DECRYPT', `${path} is encrypted; set RELAY365_STORE_KEY (or the key file/passphrase) to read it.`);
      record = JSON.parse(this.open(parsed, path));
    } else {
      record = parsed as AccountRecord;
    }
    registerSecret(record.refreshToken);
    registerSecret(record.credential?.secret);
    registerSecret(record.credential?.keyPassphrase);
    for (const a of Object.values(record.access ?? {})) registerSecret(a?.token);
    return record;
  }

  private seal(json: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key!, iv);
    cipher.setAAD(Buffer.from(MAGIC));
    const data = Buffer.concat([cipher.update(json, 'utf8'), cipher.final()]);
    return JSON.stringify({ magic: MAGIC, iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), data: data.toString('base64') });
  }

  private open(box: { iv: string; tag: string; data: string }, path: string): string {
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key!, Buffer.from(box.iv, 'base64'));
      decipher.setAAD(Buffer.from(MAGIC));
      decipher.setAuthTag(Buffer.from(box.tag, 'base64'));
      return Buffer.concat([decipher.update(Buffer.from(box.data, 'base64')), decipher.final()]).toString('utf8');
    } catch {
      throw new StoreError('STORE_DECRYPT', `${path} could not be decrypted with the configured key.`);
    }
  }

  /**
   * Run `fn` while holding this account's cross-process lock. The lock is a file created with
   * O_EXCL holding our pid; a lock whose owner is dead or older than `staleMs` is taken over.
   */
  async withLock<T>(email: string, fn: () => Promise<T>, timeoutMs = 60_000, staleMs = 120_000): Promise<T> {
    await ensurePrivateDir(this.dir);
    const lock = `${this.path(email)}.lock`;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const h = await fsp.open(lock, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, 0o600);
        await h.writeFile(`${process.pid}\n${Date.now()}\n`);
        await h.close();
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new StoreError('STORE_IO', `Cannot create lock ${lock}: ${(err as Error).message}`);
        if (await isStale(lock, staleMs)) {
          await fsp.rm(lock, { force: true });
          continue;
        }
        if (Date.now() > deadline) throw new StoreError('STORE_LOCKED', `Timed out waiting for the lock on ${email} (${lock}).`);
        await new Promise((r) => setTimeout(r, 25 + Math.random() * 50));
      }
    }
    try {
      return await fn();
    } finally {
      await fsp.rm(lock, { force: true });
    }
  }
}

async function isStale(lock: string, staleMs: number): Promise<boolean> {
  try {
    const [pid, at] = (await fsp.readFile(lock, 'utf8')).split('\n');
    if (Date.now() - Number(at) > staleMs) return true;
    try {
      process.kill(Number(pid), 0);
      return false;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'ESRCH';
    }
  } catch {
    return false;
  }
}

const keyCache = new Map<string, Buffer>();

/** Key from RELAY365_STORE_KEY-style env, key file or passphrase; derived once per process. */
export function deriveKey(source: StoreKeySource): Buffer | undefined {
  const material = source.env ?? (source.keyFile ? readFileSync(source.keyFile, 'utf8').trim() : undefined) ?? source.passphrase;
  if (!material) return undefined;
  const cacheKey = createHash('sha256').update(material).digest('hex');
  let key = keyCache.get(cacheKey);
  if (!key) {
    if (/^[0-9a-f]{64}$/i.test(material)) key = Buffer.from(material, 'hex');
    else if (/^[A-Za-z0-9+/]{43}=$/.test(material)) key = Buffer.from(material, 'base64');
    else key = scryptSync(material, 'relay365-token-store', 32, { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 });
    keyCache.set(cacheKey, key);
  }
  registerSecret(material);
  return key;
}

export function storeKeyFromEnv(env: NodeJS.ProcessEnv = process.env): StoreKeySource {
  return { env: env.RELAY365_STORE_KEY, keyFile: env.RELAY365_STORE_KEY_FILE, passphrase: env.RELAY365_STORE_PASSPHRASE };
}
