/**
 * Where fetched messages go: maildir:DIR, mbox:FILE, stdout, exec:'CMD'. `deliver()` resolves only
 * when the message is durably stored (fsync'd file and directory, or the command exited 0); the
 * fetcher marks or deletes upstream only after that.
 */
import { promises as fsp, constants as fsc } from 'node:fs';
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fsyncDir } from '../core/fs.js';
import { UsageError, Relay365Error } from '../core/errors.js';

export interface MessageMeta {
  /** IMAP UID or POP3 UIDL. */
  id: string;
  mailbox: string;
  folder?: string;
}

export interface Destination {
  readonly description: string;
  deliver(raw: Buffer, meta: MessageMeta): Promise<void>;
}

export function parseDestination(spec: string, out: NodeJS.WritableStream = process.stdout): Destination {
  if (spec === 'stdout' || spec === '-') return new StdoutDestination(out);
  const i = spec.indexOf(':');
  const kind = i > 0 ? spec.slice(0, i) : '';
  const arg = i > 0 ? spec.slice(i + 1) : '';
  if (!arg && kind) throw new UsageError(`--to ${kind}: needs a value, e.g. ${kind === 'exec' ? "exec:'procmail'" : `${kind}:/var/mail/fetched`}`);
  switch (kind) {
    case 'maildir':
      return new MaildirDestination(arg);
    case 'mbox':
      return new MboxDestination(arg);
    case 'exec':
      return new ExecDestination(arg);
    default:
      throw new UsageError(`--to must be maildir:DIR, mbox:FILE, stdout or exec:'CMD' (got "${spec}")`);
  }
}

let deliveries = 0;

/** Maildir (qmail spec): write to tmp/, fsync, rename into new/, fsync new/. */
export class MaildirDestination implements Destination {
  readonly description: string;
  constructor(readonly dir: string) {
    this.description = `maildir:${dir}`;
  }

  async deliver(raw: Buffer): Promise<void> {
    for (const sub of ['tmp', 'new', 'cur']) await fsp.mkdir(join(this.dir, sub), { recursive: true, mode: 0o700 });
    const name = `${Math.floor(Date.now() / 1000)}.M${process.hrtime.bigint() % 1_000_000n}P${process.pid}Q${++deliveries}R${randomBytes(4).toString('hex')}.${hostname().replace(/[/:]/g, '_')}`;
    const tmp = join(this.dir, 'tmp', name);
    const h = await fsp.open(tmp, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, 0o600);
    try {
      await h.writeFile(raw);
      await h.sync();
    } finally {
      await h.close();
    }
    await fsp.rename(tmp, join(this.dir, 'new', name));
    await fsyncDir(join(this.dir, 'new'));
  }
}

/** mboxrd: "From " separator, ">From " quoting of body lines, LF line ends; appended and fsync'd. */
export function toMboxrd(raw: Buffer, date = new Date()): Buffer {
  const text = raw.toString('latin1').replace(/\r\n/g, '\n');
  const body = text.replace(/^(>*From )/gm, '>$1');
  const sender = /^Return-Path:\s*<([^>]*)>/im.exec(text)?.[1] || 'MAILER-DAEMON';
  return Buffer.from(`From ${sender} ${date.toUTCString().replace(/,/, '')}\n${body}${body.endsWith('\n') ? '' : '\n'}\n`, 'latin1');
}

export class MboxDestination implements Destination {
  readonly description: string;
  constructor(readonly file: string) {
    this.description = `mbox:${file}`;
  }

  async deliver(raw: Buffer): Promise<void> {
    const h = await fsp.open(this.file, fsc.O_CREAT | fsc.O_APPEND | fsc.O_WRONLY, 0o600);
    try {
      await h.writeFile(toMboxrd(raw));
      await h.sync();
    } finally {
      await h.close();
    }
  }
}

/** stdout gets mboxrd too, so several messages stay separable. */
export class StdoutDestination implements Destination {
  readonly description = 'stdout';
  constructor(private readonly out: NodeJS.WritableStream) {}

  deliver(raw: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      this.out.write(toMboxrd(raw), (err) => (err ? reject(err) : resolve()));
    });
  }
}

/** Pipes each message to `sh -c CMD`; only exit status 0 counts as delivered. */
export class ExecDestination implements Destination {
  readonly description: string;
  constructor(readonly command: string) {
    this.description = `exec:${command}`;
  }

  deliver(raw: Buffer, meta: MessageMeta): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = spawn('/bin/sh', ['-c', this.command], {
        stdio: ['pipe', 'inherit', 'pipe'],
        env: { ...process.env, RELAY365_MAILBOX: meta.mailbox, RELAY365_MESSAGE_ID: meta.id, ...(meta.folder ? { RELAY365_FOLDER: meta.folder } : {}) },
      });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-2000)));
      child.stdin.on('error', () => {});
      child.on('error', (e) => reject(new Relay365Error('FETCH_FAILED', `exec ${this.command}: ${e.message}`, { temporary: true, cause: e })));
      child.on('close', (code, signal) => {
        if (code === 0) resolve();
        else
          reject(
            new Relay365Error('FETCH_FAILED', `exec ${this.command} exited with ${signal ?? code}${stderr.trim() ? `: ${stderr.trim().split('\n').pop()}` : ''}`, {
              temporary: true,
              hint: 'The message stays on the server and is offered again on the next run.',
            }),
          );
      });
      child.stdin.end(raw);
    });
  }
}
