/**
 * What `fetch` has already delivered, per account, mailbox, protocol and folder: UIDVALIDITY and
 * the delivered UIDs for IMAP, the delivered UIDLs for POP3. Written atomically (temp file, fsync,
 * rename) after each message reaches its destination and before the message is marked or deleted
 * upstream, so a crash at any point can repeat a delivery but never lose a message.
 */
import { promises as fsp } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { writeFileAtomic } from '../core/fs.js';
import { StoreError } from '../core/errors.js';

export interface FetchStateData {
  version: 1;
  key: string;
  /** IMAP: the folder's UIDVALIDITY the UIDs below belong to. */
  uidValidity?: string;
  /** IMAP UIDs (as strings) or POP3 UIDLs already delivered. */
  delivered: string[];
  updatedAt?: string;
}

export class FetchState {
  private readonly set: Set<string>;

  private constructor(
    readonly path: string,
    private data: FetchStateData,
  ) {
    this.set = new Set(data.delivered);
  }

  /** `parts` identify the source: account, mailbox, protocol, host (not the port: 993 and 143 are one mailbox), folder. */
  static async open(stateDir: string, parts: string[]): Promise<FetchState> {
    const key = parts.map((p) => p.toLowerCase()).join('|');
    const safe = parts.slice(0, 3).join('_').toLowerCase().replace(/[^a-z0-9@._+-]/g, '_');
    const path = join(stateDir, 'fetch', `${safe}.${createHash('sha256').update(key).digest('hex').slice(0, 12)}.json`);
    let data: FetchStateData = { version: 1, key, delivered: [] };
    try {
      data = JSON.parse(await fsp.readFile(path, 'utf8')) as FetchStateData;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new StoreError('STORE_IO', `Fetch state ${path} is unreadable: ${(e as Error).message}`, { cause: e, hint: 'Move the file away to start over (mail already fetched would then be fetched again).' });
    }
    return new FetchState(path, data);
  }

  /** A new UIDVALIDITY makes the old UIDs meaningless (RFC 3501 §2.3.1.1): forget them. */
  async resetIfUidValidityChanged(uidValidity: string): Promise<boolean> {
    if (this.data.uidValidity === uidValidity) return false;
    const changed = this.data.uidValidity !== undefined;
    this.data.uidValidity = uidValidity;
    this.set.clear();
    await this.save();
    return changed;
  }

  has(id: string | number): boolean {
    return this.set.has(String(id));
  }

  async markDelivered(id: string | number): Promise<void> {
    this.set.add(String(id));
    await this.save();
  }

  /** Forget ids that no longer exist upstream (deleted messages), keeping the file small. */
  async retainOnly(present: Iterable<string | number>): Promise<void> {
    const keep = new Set([...present].map(String));
    let changed = false;
    for (const id of [...this.set]) {
      if (!keep.has(id)) {
        this.set.delete(id);
        changed = true;
      }
    }
    if (changed) await this.save();
  }

  private async save(): Promise<void> {
    this.data = { ...this.data, delivered: [...this.set], updatedAt: new Date().toISOString() };
    await writeFileAtomic(this.path, `${JSON.stringify(this.data, null, 2)}\n`);
  }
}
