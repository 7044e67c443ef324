/**
 * `relay365 fetch`: IMAP (imapflow, XOAUTH2 with the account's access token, IDLE for --watch) or
 * POP3 (./pop3.ts) into a destination. Per message: retrieve → deliver durably → record in the
 * fetch state → only then mark seen / delete upstream. A crash between two of those steps repeats a
 * delivery on the next run; it never loses a message.
 *
 * Shared mailboxes with client credentials: the SASL user= is the target mailbox (--mailbox, or
 * the account's mailbox); Exchange accepts the token and then answers "User is authenticated but
 * not connected." when the service principal has no FullAccess on it (fact sheet §3.3, §7).
 */
import { ImapFlow } from 'imapflow';
import { TransportError, Relay365Error } from '../core/errors.js';
import { explainReply } from '../core/catalogue.js';
import { registerSecret } from '../core/redact.js';
import type { TokenProvider, AccessToken } from '../oauth/types.js';
import type { Destination } from './destination.js';
import { FetchState } from './state.js';
import { Pop3Client } from './pop3.js';
import { serverName } from './line-socket.js';
import { trustedCas } from '../core/tls.js';

export interface FetchOptions {
  account: string;
  protocol: 'imap' | 'pop3';
  /** SASL user= (shared or target mailbox); default: the account's mailbox. */
  mailbox?: string;
  folder?: string;
  since?: Date;
  unseen?: boolean;
  destination: Destination;
  /** What happens upstream after a message is safely stored. */
  after: 'keep' | 'mark-seen' | 'delete';
  host: string;
  port: number;
  tls: 'implicit' | 'starttls';
  caFile?: string;
  stateDir: string;
  tokens: TokenProvider;
  timeoutMs?: number;
  /** Progress lines for the user (stderr). */
  note?: (line: string) => void;
  transcript?: (direction: 'C' | 'S', line: string) => void;
}

export interface FetchResult {
  delivered: number;
  alreadyFetched: number;
  deleted: number;
  markedSeen: number;
  mailbox: string;
}

const purposeOf = (p: FetchOptions['protocol']) => (p === 'imap' ? 'imap' : 'pop');

async function token(o: FetchOptions): Promise<AccessToken> {
  const t = await o.tokens.getAccessToken(o.account, { purpose: purposeOf(o.protocol) });
  registerSecret(t.token);
  return t;
}

/** A new token after the server refused `rejected`. */
async function freshToken(o: FetchOptions, rejected: AccessToken): Promise<AccessToken> {
  const t = await o.tokens.tokenRejected(o.account, rejected.token, { purpose: purposeOf(o.protocol) });
  registerSecret(t.token);
  return t;
}

/** One pass over the mailbox. */
export async function fetchOnce(o: FetchOptions): Promise<FetchResult> {
  return o.protocol === 'imap' ? withImap(o, (client, user) => imapPass(o, client, user)) : pop3Pass(o);
}

// ---------------------------------------------------------------------------------------- IMAP

function imapClient(o: FetchOptions, user: string, accessToken: string): ImapFlow {
  const ca = trustedCas(o.caFile);
  return new ImapFlow({
    host: o.host,
    port: o.port,
    secure: o.tls === 'implicit',
    // Refuse to go on without TLS rather than send a token in clear text.
    doSTARTTLS: o.tls === 'starttls' ? true : undefined,
    servername: serverName(o.host),
    tls: { minVersion: 'TLSv1.2', ...(ca ? { ca } : {}) },
    auth: { user, accessToken },
    logger: false,
    connectionTimeout: o.timeoutMs ?? 30_000,
    greetingTimeout: o.timeoutMs ?? 30_000,
    disableAutoIdle: true,
  } as ConstructorParameters<typeof ImapFlow>[0]);
}

/** Connects and authenticates, retrying once with a fresh token when the server refuses the first. */
async function connectImap(o: FetchOptions): Promise<{ client: ImapFlow; user: string }> {
  let t = await token(o);
  const user = o.mailbox ?? t.username;
  for (let attempt = 0; ; attempt++) {
    const client = imapClient(o, user, t.token);
    client.on('error', () => {});
    try {
      await client.connect();
      return { client, user };
    } catch (e) {
      // imapflow picks OAUTHBEARER over XOAUTH2 when the server offers both (Dovecot does;
      // Exchange offers only XOAUTH2), so the message names the mechanism actually tried.
      const mechanism = client.capabilities?.has('AUTH=OAUTHBEARER') ? 'OAUTHBEARER' : 'XOAUTH2';
      client.close();
      const err = imapError(e, user, 'AUTHENTICATE', mechanism);
      if (attempt === 0 && err.code === 'IMAP_AUTH' && err.details?.catalogue !== 'imap-not-connected') {
        t = await freshToken(o, t);
        continue;
      }
      throw err;
    }
  }
}

async function withImap<T>(o: FetchOptions, fn: (client: ImapFlow, user: string) => Promise<T>): Promise<T> {
  const { client, user } = await connectImap(o);
  try {
    return await fn(client, user);
  } catch (e) {
    throw imapError(e, user, 'SELECT');
  } finally {
    await client.logout().catch(() => client.close());
  }
}

async function imapPass(o: FetchOptions, client: ImapFlow, user: string): Promise<FetchResult> {
  const folder = o.folder ?? 'INBOX';
  const result: FetchResult = { delivered: 0, alreadyFetched: 0, deleted: 0, markedSeen: 0, mailbox: user };
  const lock = await client.getMailboxLock(folder);
  try {
    const box = client.mailbox as { uidValidity: bigint; exists: number };
    const state = await FetchState.open(o.stateDir, [o.account, user, 'imap', o.host, folder]);
    if (await state.resetIfUidValidityChanged(String(box.uidValidity))) o.note?.(`UIDVALIDITY of ${folder} changed: every message counts as new again.`);
    const query: Record<string, unknown> = { all: true };
    if (o.unseen) query.seen = false;
    if (o.since) query.since = o.since;
    const search = async (q: Record<string, unknown>) => (box.exists ? (await client.search(q, { uid: true })) || [] : []);
    const all = await search({ all: true });
    // Without --unseen/--since the wanted messages are all of them: one SEARCH, not two.
    const uids = o.unseen || o.since ? await search(query) : all;
    await state.retainOnly(all);
    for (const uid of uids) {
      if (state.has(uid)) {
        result.alreadyFetched++;
        // Stored on an earlier run that stopped before the upstream step: finish it now.
        await imapAfter(o, client, uid, result);
        continue;
      }
      const msg = await client.fetchOne(String(uid), { uid: true, source: true }, { uid: true });
      if (!msg || !msg.source) continue;
      await o.destination.deliver(msg.source, { id: String(uid), mailbox: user, folder });
      await state.markDelivered(uid);
      result.delivered++;
      await imapAfter(o, client, uid, result);
    }
  } finally {
    lock.release();
  }
  return result;
}

async function imapAfter(o: FetchOptions, client: ImapFlow, uid: number, result: FetchResult): Promise<void> {
  if (o.after === 'delete') {
    if (await client.messageDelete(String(uid), { uid: true })) result.deleted++;
  } else if (o.after === 'mark-seen') {
    if (await client.messageFlagsAdd(String(uid), ['\\Seen'], { uid: true })) result.markedSeen++;
  }
}

function imapError(e: unknown, user: string, stage: string, mechanism = 'XOAUTH2'): Relay365Error {
  if (e instanceof Relay365Error) return e;
  const err = e as Error & { responseText?: string; authenticationFailed?: boolean; responseStatus?: string; code?: string; response?: unknown };
  // imapflow reports "not connected" after AUTHENTICATE as an authentication failure, with the
  // server's text in `response`.
  if (typeof err.response === 'string' && !err.responseText) err.responseText = err.response;
  const text = [err.responseStatus, err.responseText, err.message].filter(Boolean).join(' ');
  const entry = explainReply(text, 'imap');
  const hint = entry ? `${entry.en.cause} ${entry.en.fix}` : undefined;
  if (entry?.id === 'imap-not-connected') {
    return new TransportError('IMAP_AUTH', `IMAP as ${user}: the token was accepted, then the server said "${err.responseText}"`, { temporary: false, hint, details: { catalogue: entry.id } });
  }
  if (err.authenticationFailed || entry?.id === 'imap-auth-failed') {
    return new TransportError('IMAP_AUTH', `IMAP AUTHENTICATE ${mechanism} as ${user} failed: ${err.responseText ?? err.message}`, { temporary: false, hint, details: entry ? { catalogue: entry.id } : undefined });
  }
  if (entry) return new TransportError('IMAP_AUTH', `IMAP ${stage} for ${user} failed: ${err.responseText ?? err.message}`, { temporary: entry.temporary, hint, details: { catalogue: entry.id } });
  const tlsProblem = /certificate|CERT_|self[- ]signed|SSL|TLS/i.test(`${err.code ?? ''} ${err.message}`);
  return new TransportError(tlsProblem ? 'TLS' : 'FETCH_FAILED', `IMAP ${stage} for ${user} failed: ${err.responseText ?? err.message}${err.code ? ` (${err.code})` : ''}`, { temporary: !tlsProblem, cause: e });
}

// ---------------------------------------------------------------------------------------- POP3

/** Connects and authenticates, retrying once with a fresh token when the server refuses the first (as connectImap). */
async function connectPop3(o: FetchOptions): Promise<{ client: Pop3Client; user: string }> {
  let t = await token(o);
  const user = o.mailbox ?? t.username;
  for (let attempt = 0; ; attempt++) {
    const client = await Pop3Client.connect({ host: o.host, port: o.port, tls: o.tls, caFile: o.caFile, timeoutMs: o.timeoutMs, transcript: o.transcript });
    try {
      await client.authXoauth2(user, t.token);
      return { client, user };
    } catch (e) {
      client.close();
      if (attempt > 0 || !(e instanceof Relay365Error) || e.code !== 'POP_AUTH') throw e;
      t = await freshToken(o, t);
    }
  }
}

async function pop3Pass(o: FetchOptions): Promise<FetchResult> {
  const { client, user } = await connectPop3(o);
  const result: FetchResult = { delivered: 0, alreadyFetched: 0, deleted: 0, markedSeen: 0, mailbox: user };
  try {
    const state = await FetchState.open(o.stateDir, [o.account, user, 'pop3', o.host, 'INBOX']);
    const list = await client.uidl();
    await state.retainOnly(list.map((m) => m.uid));
    for (const { n, uid } of list) {
      if (state.has(uid)) {
        result.alreadyFetched++;
      } else {
        const raw = await client.retr(n);
        await o.destination.deliver(raw, { id: uid, mailbox: user });
        await state.markDelivered(uid);
        result.delivered++;
      }
      // POP3 has no "seen" flag; with --delete, everything safely stored (now or earlier) goes.
      if (o.after === 'delete') {
        await client.dele(n);
        result.deleted++;
      }
    }
    await client.quit();
  } catch (e) {
    // No QUIT: the server forgets the DELE marks, so nothing is deleted after a failure.
    client.close();
    throw e;
  }
  return result;
}

// --------------------------------------------------------------------------------------- watch

export interface WatchOptions {
  /** POP3 poll interval, and the IMAP reconnect interval when IDLE is not possible. */
  intervalSeconds?: number;
  signal: AbortSignal;
  onPass?: (r: FetchResult) => void;
  onError?: (e: Relay365Error) => void;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });

/**
 * Repeats passes until `signal` aborts. IMAP waits in IDLE for new mail and reconnects every
 * 45 minutes (before the access token expires); POP3 polls. Temporary errors are retried after the
 * interval; permanent ones stop the watch.
 */
export async function watch(o: FetchOptions, w: WatchOptions): Promise<void> {
  const interval = (w.intervalSeconds ?? 60) * 1000;
  while (!w.signal.aborted) {
    try {
      if (o.protocol === 'imap') await imapWatchSession(o, w);
      else {
        w.onPass?.(await pop3Pass(o));
        await sleep(interval, w.signal);
      }
    } catch (e) {
      const err = e instanceof Relay365Error ? e : new Relay365Error('FETCH_FAILED', (e as Error).message, { cause: e });
      w.onError?.(err);
      if (!err.temporary) throw err;
      await sleep(interval, w.signal);
    }
  }
}

async function imapWatchSession(o: FetchOptions, w: WatchOptions): Promise<void> {
  await withImap(o, async (client, user) => {
    const sessionEnd = Date.now() + 45 * 60_000;
    let newMail = true;
    client.on('exists', () => {
      newMail = true;
      // Any command ends IDLE, so the loop below wakes up and fetches.
      void client.noop().catch(() => {});
    });
    const stop = () => client.close();
    w.signal.addEventListener('abort', stop, { once: true });
    try {
      while (!w.signal.aborted && Date.now() < sessionEnd && client.usable) {
        if (newMail) {
          newMail = false;
          w.onPass?.(await imapPass(o, client, user));
          // Mail announced while that pass ran must be fetched before idling again.
          continue;
        }
        // IDLE in the selected folder until the server announces mail or the time slice ends.
        const lock = await client.getMailboxLock(o.folder ?? 'INBOX');
        try {
          const idle = client.idle();
          const slice = setTimeout(() => void client.noop().catch(() => {}), Math.min(sessionEnd - Date.now(), 5 * 60_000));
          await idle.catch(() => {});
          clearTimeout(slice);
        } finally {
          lock.release();
        }
      }
    } finally {
      w.signal.removeEventListener('abort', stop);
    }
  });
}
