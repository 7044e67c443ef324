/**
 * The inbound SMTP server for legacy clients (smtp-server): listeners without TLS, with STARTTLS or
 * implicit TLS; IP allow-lists and SMTP AUTH users; per-client limits; never an open relay.
 * DATA is streamed straight into the durable queue and 250 is sent only after the queue
 * committed the message.
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import type { Config } from '../config/schema.js';
import { Relay365Error } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { EnqueueMeta, Queue, QueueEntry } from '../queue/index.js';
import { patchSmtpStream } from './smtp-stream-patch.js';
import { noteStreamed } from '../core/memory.js';
import { chunksOf } from '../core/stream.js';
import { blankLine } from './header.js';
import { giveCredits, handoffLeaseMs, takeCredits, type Handoff } from './handoff.js';
import { dsnMetaOf } from './dsn.js';
import { addressProblem, buildAllowList, clientAllowed, matchesAddressPattern, verifyPassword } from './policy.js';
import { RoutingRules } from './routing.js';

// smtp-server waits a hard-coded 100 ms before every greeting to catch early talkers. Clients that
// open one connection per message (printers, smtp-source) would be capped at ~10 messages/s per
// connection slot, so relay365 greets at once. The library exposes its connection class under
// ./lib/*; this replaces only the timer in init().
// The ESM build is patched: it is the instance `import { SMTPServer } from 'smtp-server'` uses.
const connectionModule = 'smtp-server/lib/smtp-connection.js';
const { SMTPConnection } = (await import(connectionModule)) as { SMTPConnection: { prototype: Record<string, unknown> } };
if (!SMTPConnection.prototype.__relay365NoGreetingDelay) {
  SMTPConnection.prototype.init = function init(this: { _setListeners(cb: () => void): void; _server: { options: { maxClients?: number }; connections: Set<unknown> }; send(code: number, text: string, keep: boolean): void; name: string; connectionReady(): void }) {
    this._setListeners(() => {
      if (this._server.options.maxClients && this._server.connections.size > this._server.options.maxClients) {
        return this.send(421, `${this.name} Too many connected clients, try again in a moment`, false);
      }
      this.connectionReady();
    });
  };
  // Replies whose text already starts with an RFC 3463 code keep it (5.7.1 for relay denial)
  // instead of the library's generic per-reply-code choice (5.1.1 for every 550).
  const send = SMTPConnection.prototype.send as (this: unknown, code: number, data: unknown, context?: unknown) => unknown;
  SMTPConnection.prototype.send = function (this: unknown, code: number, data: unknown, context?: unknown) {
    if (typeof data === 'string' && /^[245]\.\d{1,3}\.\d{1,3} /.test(data)) return send.call(this, code, data, false);
    return send.call(this, code, data, context);
  };
  SMTPConnection.prototype.__relay365NoGreetingDelay = true;
}

// DATA parsing with Buffer.indexOf instead of a loop over every byte (see ./smtp-stream-patch.ts).
await patchSmtpStream();

type Listener = Config['relay']['listen'][number];

/**
 * smtp-server builds a TLS context from its built-in certificate for every server, including one
 * that never offers TLS. A plaintext listener (no implicit TLS, STARTTLS disabled) skips that:
 * about a megabyte of OpenSSL state per thread, in a process whose idle memory is budgeted.
 */
class InboundSMTPServer extends SMTPServer {
  override updateSecureContext(options?: Parameters<SMTPServer['updateSecureContext']>[0]): void {
    if (!options && !this.options.secure && this.options.disabledCommands?.includes('STARTTLS')) {
      this.secureContext = new Map();
      return;
    }
    super.updateSecureContext(options);
  }
}

function smtpError(code: number, message: string): Error & { responseCode: number } {
  return Object.assign(new Error(message), { responseCode: code });
}

export interface InboundDeps {
  config: Config;
  queue: Queue;
  log: Logger;
  hostname: string;
  /** An entry leased to delivery (`leasedTo`) was handed off with one of its slots (./handoff.ts). */
  onAccepted(entry: QueueEntry): void;
  onConnection?(): void;
  /** Delivery's free slots: a message stored with one is handed to delivery leased (./handoff.ts). */
  handoff?: Handoff;
}

const LOOPBACK = buildAllowList(['127.0.0.0/8', '::1/128']);

/** How much of a message's header is searched for its Message-ID. */
const HEAD_MAX = 64 * 1024;

/**
 * The Message-ID of a message whose chunks pass by, looked for until the header ends (or 64 KB
 * of it). Only the header becomes a string: the blank line is looked for in the bytes first (a
 * whole first chunk, 64 KB of a large message, turned into a string was a third of what the
 * inbound thread allocated per message).
 */
export class MessageIdFinder {
  private head: string | undefined = '';
  private found?: string;

  /** Whether the header has been searched to its end (or found the ID): no need to feed more. */
  get done(): boolean {
    return this.head === undefined;
  }

  /** The ID so far (the part between < and >), undefined if there is none (yet). */
  feed(chunk: Buffer): string | undefined {
    if (this.head === undefined) return this.found;
    const part = chunk.subarray(0, HEAD_MAX - this.head.length);
    const head = this.head + part.toString('latin1', 0, blankLine(part, false)?.end ?? part.length);
    const end = /\r?\n\r?\n/.exec(head)?.index;
    this.found = /^Message-ID:\s*<([^>\r\n]+)>/im.exec(end === undefined ? head : head.slice(0, end))?.[1];
    this.head = this.found !== undefined || end !== undefined || head.length >= HEAD_MAX ? undefined : head;
    return this.found;
  }
}

export class InboundServer {
  private servers: SMTPServer[] = [];
  private readonly perClient = new Map<string, number>();
  /** Per client: the times of its messages in the last minute, oldest first from `start`. */
  private readonly perClientMessages = new Map<string, { times: number[]; start: number }>();
  bound: Array<{ address: string; port: number; tls: string }> = [];

  constructor(private deps: InboundDeps) {}

  /**
   * Replace the configuration (SIGHUP); listeners keep running. smtp-server reads its size limit
   * per command and its idle timeout per connection from its options, so those follow too.
   */
  reconfigure(config: Config): void {
    this.deps = { ...this.deps, config };
    for (const server of this.servers) {
      const options = server.options as { size?: number; socketTimeout?: number };
      options.size = config.relay.max_message_size;
      options.socketTimeout = config.relay.socket_timeout_seconds * 1000;
    }
  }

  async start(): Promise<void> {
    for (const l of this.deps.config.relay.listen) {
      const server = this.create(l);
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err: NodeJS.ErrnoException) =>
          reject(
            new Relay365Error('NETWORK', `Cannot listen for SMTP on ${l.address}:${l.port}: ${err.code ?? err.message}`, {
              temporary: true,
              hint: err.code === 'EADDRINUSE' ? 'Another process (another relay365 serve, Postfix?) uses this port: stop it or change relay.listen.' : undefined,
            }),
          ),
        );
        server.listen(l.port, l.address, () => resolve());
      });
      server.on('error', (err) => this.deps.log.error({ err }, 'inbound SMTP error'));
      const addr = (server.server as unknown as { address(): AddressInfo }).address();
      this.bound.push({ address: l.address, port: addr.port, tls: l.tls });
      this.servers.push(server);
      this.deps.log.info({ address: l.address, port: addr.port, tls: l.tls }, 'listening for SMTP');
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    this.servers = [];
  }

  private create(l: Listener): SMTPServer {
    const relay = () => this.deps.config.relay;
    const tlsFiles = l.tls !== 'none' ? { key: readFileSync(l.key_file ?? ''), cert: readFileSync(l.cert_file ?? '') } : {};
    // smtp-server calls these hooks with its own `this`.
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    return new InboundSMTPServer({
      ...tlsFiles,
      secure: l.tls === 'implicit',
      name: this.deps.hostname,
      banner: 'relay365 ESMTP ready',
      disabledCommands: l.tls === 'none' ? ['STARTTLS'] : [],
      authOptional: true,
      authMethods: ['PLAIN', 'LOGIN'],
      allowInsecureAuth: l.tls === 'none',
      disableReverseLookup: true,
      size: relay().max_message_size,
      hideENHANCEDSTATUSCODES: false,
      hideDSN: false,
      hidePIPELINING: false,
      hide8BITMIME: false,
      hideSMTPUTF8: false,
      socketTimeout: relay().socket_timeout_seconds * 1000,
      logger: false,
      onConnect(session, callback) {
        const ip = session.remoteAddress;
        const n = (self.perClient.get(ip) ?? 0) + 1;
        if (n > relay().max_connections_per_client) return callback(smtpError(421, '4.7.0 Too many connections from your address, try again later'));
        self.perClient.set(ip, n);
        self.deps.onConnection?.();
        callback();
      },
      onClose(session) {
        const ip = session.remoteAddress;
        const n = (self.perClient.get(ip) ?? 1) - 1;
        if (n <= 0) self.perClient.delete(ip);
        else self.perClient.set(ip, n);
      },
      onAuth(auth, session, callback) {
        // A listener without TLS accepts AUTH for local clients only: elsewhere the password would
        // cross the network in clear text.
        if (!session.secure && !clientAllowed(LOOPBACK, session.remoteAddress)) {
          return callback(smtpError(538, '5.7.11 Encryption required for requested authentication mechanism'));
        }
        const user = relay().users.find((u) => u.name === auth.username);
        if (!user || !auth.password || !verifyPassword(auth.password, user.password_hash)) {
          self.deps.log.warn({ user: auth.username, client: session.remoteAddress }, 'relay AUTH failed');
          return callback(smtpError(535, '5.7.8 Authentication credentials invalid'));
        }
        callback(null, { user: user.name });
      },
      onMailFrom(address, session, callback) {
        const sender = address.address;
        if (sender && addressProblem(sender)) return callback(smtpError(553, `5.1.7 Sender address rejected: ${addressProblem(sender)}`));
        const user = session.user ? relay().users.find((u) => u.name === session.user) : undefined;
        if (user && !user.allowed_senders.some((p) => matchesAddressPattern(p, sender))) {
          return callback(smtpError(553, `5.7.1 Sender address rejected: ${user.name} may not send as ${sender || '<>'}`));
        }
        if (!self.messageAllowed(session.remoteAddress, relay().max_messages_per_minute_per_client)) return callback(smtpError(450, '4.7.1 Too many messages from your address, slow down'));
        callback();
      },
      onRcptTo(address, session, callback) {
        const rcpt = address.address;
        const problem = addressProblem(rcpt);
        if (problem) return callback(smtpError(550, `5.7.1 Relay access denied: ${problem}`));
        if (!session.user && !clientAllowed(self.allowList(), session.remoteAddress)) {
          return callback(smtpError(550, '5.7.1 Relay access denied: authenticate first or relay from an allowed network'));
        }
        // Refused here rather than bounced after 250: the bounce would go to a sender that may be
        // forged (backscatter). Delivery still rejects too, for a reload between RCPT and delivery.
        const rejection = self.rejectionOf(rcpt, session);
        if (rejection !== undefined) return callback(smtpError(550, `5.7.1 ${rejection}`));
        if (session.envelope.rcptTo.length >= relay().max_recipients) return callback(smtpError(452, '4.5.3 Too many recipients'));
        callback();
      },
      onData(stream, session, callback) {
        void self.receive(stream, session).then(
          (entry) => callback(null, `2.0.0 Ok: queued as ${entry.id}`),
          (err: Error & { responseCode?: number; smtp?: { code: number; enhanced?: string; text: string } }) => {
            if (err.smtp) return callback(smtpError(err.smtp.code, `${err.smtp.enhanced ?? ''} ${err.smtp.text}`.trim()));
            self.deps.log.error({ err }, 'could not queue a message');
            callback(smtpError(451, '4.3.0 Temporary local problem: the message could not be queued, try again later'));
          },
        );
      },
    });
  }

  /** Messages counted since clients whose window has run out were last forgotten. */
  private messagesSinceSweep = 0;

  /** Counts a message against the client's per-minute limit (a sliding window, O(1) per message). */
  private messageAllowed(ip: string, perMinute: number): boolean {
    const now = Date.now();
    // Clients that sent nothing for a minute are forgotten now and then, so a relay that sees many
    // addresses over its lifetime (SMTP AUTH users roaming) does not keep a window for each.
    if (++this.messagesSinceSweep >= 4096) {
      this.messagesSinceSweep = 0;
      for (const [client, w] of this.perClientMessages) if ((w.times.at(-1) ?? 0) <= now - 60_000) this.perClientMessages.delete(client);
    }
    let w = this.perClientMessages.get(ip);
    if (!w) this.perClientMessages.set(ip, (w = { times: [], start: 0 }));
    while (w.start < w.times.length && w.times[w.start]! <= now - 60_000) w.start++;
    if (w.start > 1024 && w.start * 2 > w.times.length) {
      w.times = w.times.slice(w.start);
      w.start = 0;
    }
    if (w.times.length - w.start >= perMinute) return false;
    w.times.push(now);
    return true;
  }

  /** relay.allow_networks as a BlockList, built once per configuration (not once per RCPT). */
  private allowListFor?: { networks: string[]; list: ReturnType<typeof buildAllowList> };
  private allowList(): ReturnType<typeof buildAllowList> {
    const networks = this.deps.config.relay.allow_networks;
    if (this.allowListFor?.networks !== networks) this.allowListFor = { networks, list: buildAllowList(networks) };
    return this.allowListFor.list;
  }

  /** relay.rules compiled, once per configuration: RCPT refuses a recipient whose route is a reject. */
  private routingRulesFor?: { relay: Config['relay']; rules: RoutingRules };
  private routingRules(): RoutingRules {
    const relay = this.deps.config.relay;
    if (this.routingRulesFor?.relay !== relay) this.routingRulesFor = { relay, rules: new RoutingRules(relay) };
    return this.routingRulesFor.rules;
  }

  /** The message of the reject route `rcpt` takes in this session, or undefined when its route is not a reject. */
  private rejectionOf(rcpt: string, session: SMTPServerSession): string | undefined {
    const rules = this.routingRules();
    if (!rules.canReject) return undefined;
    const from = session.envelope.mailFrom;
    return rules.rejection({ sender: from ? from.address : '', recipient: rcpt, user: typeof session.user === 'string' ? session.user : undefined, clientIp: session.remoteAddress });
  }

  private async receive(stream: Readable, session: SMTPServerSession): Promise<QueueEntry> {
    const env = session.envelope;
    const sender = env.mailFrom ? env.mailFrom.address : '';
    const received = `Received: from ${session.hostNameAppearsAs} ([${session.remoteAddress.replace(/^::ffff:/, '')}])\r\n\tby ${this.deps.hostname} (relay365) with ${session.transmissionType}${session.user ? ` (authenticated as ${session.user})` : ''};\r\n\t${new Date().toUTCString().replace('GMT', '+0000')}\r\n`;
    const meta: EnqueueMeta = { sender, recipients: env.rcptTo.map((r) => r.address), maxBytes: this.deps.config.relay.max_message_size, lifetimeMs: this.deps.config.delivery.max_lifetime_seconds * 1000, clientIp: session.remoteAddress, authUser: typeof session.user === 'string' ? session.user : undefined, ...dsnMetaOf(env) };
    // An async generator, not a stream: the queue only iterates it.
    const body = (async function* () {
      yield Buffer.from(received, 'latin1');
      // The Message-ID is noted on the way through (the queue indexes it for searches).
      const messageId = new MessageIdFinder();
      for await (const chunk of chunksOf(stream)) {
        noteStreamed(chunk.length);
        if (!messageId.done) meta.messageId = messageId.feed(chunk);
        yield chunk;
      }
    })();
    const handoff = this.deps.handoff;
    let credit = !!handoff && takeCredits(handoff, 1) === 1;
    if (credit) meta.leaseTo = { owner: handoff!.owner, leaseMs: handoffLeaseMs(handoff!) };
    try {
      const entry = await this.deps.queue.enqueue(meta, body);
      if ((stream as Readable & { sizeExceeded?: boolean }).sizeExceeded) {
        await this.deps.queue.delete(entry.id);
        throw Object.assign(new Error('too large'), { smtp: { code: 552, enhanced: '5.3.4', text: 'Message size exceeds fixed maximum message size' } });
      }
      // A backend that does not lease at enqueue stores it 'incoming' (the slot goes back below
      // and delivery claims the entry).
      if (entry.leasedTo === handoff?.owner) credit = false;
      this.deps.onAccepted(entry);
      return entry;
    } finally {
      if (credit) giveCredits(handoff!, 1);
    }
  }
}
