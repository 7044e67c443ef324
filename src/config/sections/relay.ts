import { isIP } from 'node:net';
import { z } from 'zod';

/** An IP address, or a network in CIDR notation with a prefix length its family allows. */
function isNetwork(text: string): boolean {
  const [addr, bits, extra] = text.split('/');
  const family = isIP(addr ?? '');
  if (!family || extra !== undefined) return false;
  return bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128));
}

// Checked on load: a value the allow-list cannot hold would otherwise refuse every client at RCPT
// with a bare 451, and nothing in the log would say why.
const network = z.string().refine(isNetwork, { message: 'not an IP address or network (write it like 192.168.1.0/24 or 2001:db8::/32; host names are not accepted)' });

const security = z.enum(['starttls', 'implicit', 'opportunistic', 'none']);

const listener = z.strictObject({
  address: z.string().default('127.0.0.1').describe('Address to listen on.'),
  port: z.number().int().min(0).max(65535).default(2525).describe('TCP port (0 picks a free one; the bound port is written to <state>/relay.json).'),
  tls: z.enum(['none', 'starttls', 'implicit']).default('none').describe('none, starttls (offer STARTTLS) or implicit (TLS from the first byte).'),
  cert_file: z.string().optional().describe('PEM certificate for starttls/implicit.'),
  key_file: z.string().optional().describe('PEM private key for starttls/implicit.'),
}).superRefine((l, ctx) => {
  // Caught here, with the key named: at start-up a missing file would fail as a bare ENOENT.
  if (l.tls === 'none') return;
  for (const key of ['cert_file', 'key_file'] as const) {
    if (!l[key]) ctx.addIssue({ code: 'custom', path: [key], message: `required with tls: ${l.tls} (a PEM file)` });
  }
});

/** Rules and default_route name routes of relay.routes: a typo would defer every message it routes for days. */
function checkRouteNames(relay: { routes: Record<string, unknown>; rules: Array<{ route: string }>; default_route: string }, ctx: z.RefinementCtx): void {
  const known = (name: string) => name === 'by-sender' || Object.hasOwn(relay.routes, name);
  const choices = [...Object.keys(relay.routes), 'by-sender'].map((n) => `"${n}"`).join(', ');
  relay.rules.forEach((r, i) => {
    if (!known(r.route)) ctx.addIssue({ code: 'custom', path: ['rules', i, 'route'], message: `no route named "${r.route}" (relay.routes has ${choices})` });
  });
  if (!known(relay.default_route)) ctx.addIssue({ code: 'custom', path: ['default_route'], message: `no route named "${relay.default_route}" (relay.routes has ${choices})` });
}

const relayUser = z.strictObject({
  name: z.string().describe('SMTP AUTH user name.'),
  password_hash: z.string().describe('scrypt hash from `relay365 relay hash-password`.'),
  allowed_senders: z.array(z.string()).default(['*']).describe('Envelope senders this user may use (address, @domain or *).'),
});

export const routeSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('smtp'),
    account: z.string().describe('Account (from `relay365 account add`) whose token authenticates.'),
    preset: z.enum(['office365', 'outlook', 'hve', 'gcchigh']).optional(),
    host: z.string().optional(),
    port: z.number().int().optional(),
    security: security.optional(),
    mechanism: z.enum(['XOAUTH2', 'OAUTHBEARER']).optional(),
    ca_file: z.string().optional(),
    rewrite_sender: z.boolean().default(false).describe("Rewrite the envelope sender and From: to the account's mailbox, keeping the original in Reply-To."),
  }),
  z.strictObject({ type: z.literal('graph'), account: z.string(), base_url: z.string().optional(), ca_file: z.string().optional(), rewrite_sender: z.boolean().default(false) }),
  z.strictObject({ type: z.literal('mx'), resolvers: z.array(z.string()).optional(), port: z.number().int().optional() }),
  z.strictObject({ type: z.literal('smarthost'), host: z.string(), port: z.number().int().optional(), security: security.optional(), user: z.string().optional(), password: z.string().optional(), ca_file: z.string().optional(), max_connections: z.number().int().min(1).max(100).default(20).describe('Concurrent connections to the smarthost (Postfix default: 20).') }),
  z.strictObject({
    type: z.literal('reject'),
    // It becomes the text of an SMTP reply: a line break would end the reply early.
    message: z.string().regex(/^[^\r\n]*$/, { message: 'one line only (it is sent as the text of an SMTP reply)' }).default('Relaying to this destination is not allowed'),
  }),
]);

const rule = z.strictObject({
  sender: z.string().optional().describe('Envelope sender: address, @domain, or a * wildcard pattern.'),
  recipient_domain: z
    .string()
    // A value written like a sender pattern (@example.com) or with the DNS root dot would never match.
    .regex(/^[^@\s]+[^.@\s]$/, { message: 'a domain name such as example.com (no @, no trailing dot)' })
    .optional()
    .describe('Recipient domain, exactly (example.com; its subdomains are not included).'),
  user: z.string().optional().describe('Authenticated relay user.'),
  client: network.optional().describe('Client IP or CIDR.'),
  route: z.string().describe('Name of a route in relay.routes, or "by-sender".'),
});

export const relaySection = {
  relay: z
    .strictObject({
      hostname: z.string().optional().describe('Name used in the greeting and in Received headers (default: the host name).'),
      listen: z.array(listener).default([{ address: '127.0.0.1', port: 2525, tls: 'none' }]).describe('Inbound SMTP listeners.'),
      allow_networks: z.array(network).default(['127.0.0.0/8', '::1/128']).describe('Clients in these networks may relay without AUTH (printers, cron). Anything else needs SMTP AUTH.'),
      users: z.array(relayUser).default([]).describe('SMTP AUTH users (PLAIN/LOGIN, only over TLS unless on loopback).'),
      max_message_size: z.number().int().positive().default(35 * 1024 * 1024).describe('Largest accepted message in bytes (Exchange default: 35 MB).'),
      max_recipients: z.number().int().positive().default(500).describe('Recipients per message (Exchange: 500).'),
      max_connections_per_client: z.number().int().positive().default(50).describe('Concurrent connections per client IP.'),
      max_messages_per_minute_per_client: z.number().int().positive().default(600).describe('Messages per minute per client IP.'),
      socket_timeout_seconds: z.number().int().positive().default(300),
      inbound_thread: z.boolean().default(true).describe('Accept mail in a thread of its own, so accepting and delivering use two cores (false: one event loop for both).'),
      routes: z.record(z.string(), routeSchema).default({}).describe('Named outbound routes.'),
      rules: z.array(rule).default([]).describe('Ordered routing rules; the first match wins.'),
      default_route: z.string().default('by-sender').describe('Route when no rule matches. "by-sender": SMTP via the account whose address is the envelope sender (or the only account).'),
    })
    .superRefine(checkRouteNames)
    .prefault({})
    .describe('The SMTP relay (`relay365 serve`).'),
  delivery: z
    .strictObject({
      workers: z.number().int().positive().default(20).describe('Concurrent deliveries in total (each waits for the connection limit of its route).'),
      poll_interval_ms: z.number().int().positive().default(500),
      retry_initial_seconds: z.number().positive().default(60).describe('First retry delay; doubles per attempt, with jitter.'),
      retry_max_seconds: z.number().positive().default(3600).describe('Longest delay between retries.'),
      max_lifetime_seconds: z.number().positive().default(5 * 86400).describe('Give up (bounce) after this long in the queue.'),
      lease_seconds: z.number().int().min(30).default(600).describe('How long a worker owns a message it is delivering; after a crash (or with several instances on one PostgreSQL queue, after an instance dies) another worker takes it over once this has passed.'),
      connections_per_account: z.number().int().min(1).max(3).default(3).describe('Exchange allows 3 concurrent SMTP connections per mailbox.'),
      messages_per_minute_per_account: z.number().int().positive().default(30).describe('Exchange delays mail beyond 30 messages/minute per mailbox.'),
      recipients_per_day_per_account: z.number().int().positive().default(10000).describe('Exchange blocks a mailbox for 24 h beyond 10,000 recipients per day.'),
      ca_file: z.string().optional().describe('Extra CA (PEM) trusted for upstream TLS and the identity platform (e.g. the sandbox CA).'),
      smtp_host: z.string().optional().describe('SMTP submission host for "by-sender" routes (default smtp.office365.com; the sandbox prints its own).'),
      smtp_port: z.number().int().optional().describe('SMTP submission port for "by-sender" routes (default 587).'),
      bounces: z.boolean().default(true).describe('Send RFC 3464 DSNs to the envelope sender for failed recipients.'),
      delay_notice_after_seconds: z.number().int().min(0).default(0).describe('Send one "delayed" DSN (RFC 3464, Action: delayed) when a message is still undelivered after this long; 0 = never (Postfix: delay_warning_time).'),
    })
    .prefault({})
    .describe('Outbound delivery: retries, back-off and Exchange Online limits.'),
  queue: z
    .strictObject({
      backend: z.enum(['sqlite', 'postgres']).default('sqlite').describe('sqlite (embedded) or postgres (several relay instances).'),
      dir: z.string().optional().describe('Queue directory (default <state>/queue).'),
      postgres_url: z.string().optional(),
      keep_finished_days: z.number().min(0).default(7).describe('Finished entries (`done`, `bounced`) are removed with their recipients and attempt history once they finished more than this many days ago; 0 removes them at the next pruning pass (the admin page and `queue list` then show only what is queued).'),
    })
    .prefault({})
    .describe('The durable queue.'),
};
