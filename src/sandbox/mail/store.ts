/**
 * The sandbox's mailboxes and outbound log. Kept in memory: a sandbox run is a test fixture.
 */
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';

export interface StoredMessage {
  uid: number;
  raw: Buffer;
  flags: Set<string>;
  internalDate: Date;
}

export interface OutboundRecord {
  id: string;
  via: 'smtp' | 'hve' | 'graph';
  from: string;
  to: string[];
  raw: Buffer;
  /** Who authenticated: a UPN or `app:<appId>`. */
  identity: string;
  at: Date;
  messageId?: string;
}

export interface MailboxState {
  uidValidity: number;
  uidNext: number;
  messages: StoredMessage[];
}

export class MailStore extends EventEmitter {
  private readonly boxes = new Map<string, MailboxState>();
  private readonly log: OutboundRecord[] = [];

  mailbox(address: string): MailboxState {
    const key = address.toLowerCase();
    let box = this.boxes.get(key);
    if (!box) {
      box = { uidValidity: Math.floor(Date.now() / 1000) % 2_000_000_000, uidNext: 1, messages: [] };
      this.boxes.set(key, box);
    }
    return box;
  }

  append(address: string, raw: Buffer | string, flags: string[] = []): StoredMessage {
    const box = this.mailbox(address);
    const msg: StoredMessage = { uid: box.uidNext++, raw: Buffer.isBuffer(raw) ? raw : Buffer.from(raw), flags: new Set(flags), internalDate: new Date() };
    box.messages.push(msg);
    this.emit('append', address.toLowerCase(), msg);
    return msg;
  }

  expunge(address: string, uids: number[]): void {
    const box = this.mailbox(address);
    const set = new Set(uids);
    box.messages = box.messages.filter((m) => !set.has(m.uid));
  }

  recordOutbound(rec: Omit<OutboundRecord, 'id' | 'at'>): OutboundRecord {
    const full: OutboundRecord = { ...rec, id: randomUUID(), at: new Date() };
    this.log.push(full);
    this.emit('outbound', full);
    return full;
  }

  outbound(): OutboundRecord[] {
    return [...this.log];
  }

  /** Resolves with the first outbound record matching `predicate` (now or later). */
  waitForOutbound(predicate: (r: OutboundRecord) => boolean, timeoutMs = 10_000): Promise<OutboundRecord> {
    const found = this.log.find(predicate);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('outbound', onRecord);
        reject(new Error(`no matching outbound message within ${timeoutMs} ms`));
      }, timeoutMs);
      const onRecord = (r: OutboundRecord) => {
        if (predicate(r)) {
          clearTimeout(timer);
          this.off('outbound', onRecord);
          resolve(r);
        }
      };
      this.on('outbound', onRecord);
    });
  }
}
