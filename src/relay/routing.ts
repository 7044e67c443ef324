/**
 * Routing: ordered rules, first match wins, on envelope sender, authenticated user, client IP and
 * recipient domain → a named route. Postfix's sender_dependent_relayhost_maps plus a default
 * relay host, in one section. The special route "by-sender" sends through the account whose
 * address is the envelope sender (or the only configured account).
 */
import { BlockList, isIPv6 } from 'node:net';
import type { Config } from '../config/schema.js';
import type { RouteSpec } from '../transport/index.js';
import { matchesAddressPattern } from './policy.js';

export type RelayRoute =
  /** rewriteTo: the sender (envelope and From:) the message goes out as, when not its own. */
  | { name: string; kind: 'transport'; spec: RouteSpec; rewriteTo?: string }
  | { name: string; kind: 'reject'; message: string }
  | { name: string; kind: 'none'; reason: string };

export interface RoutingInput {
  sender: string;
  recipient: string;
  user?: string;
  clientIp?: string;
}

function cidrMatch(cidr: string, ip: string): boolean {
  const list = new BlockList();
  const [addr, bits] = cidr.split('/');
  const type = isIPv6(addr!) ? 'ipv6' : 'ipv4';
  if (bits === undefined) list.addAddress(addr!, type);
  else list.addSubnet(addr!, Number(bits), type);
  const clean = ip.replace(/^::ffff:/, '');
  return list.check(clean, isIPv6(clean) ? 'ipv6' : 'ipv4');
}

export class Router {
  constructor(
    private relay: Config['relay'],
    private delivery: Config['delivery'],
    private readonly accountsFor: () => Promise<Array<{ email: string; mailbox: string }>>,
  ) {}

  reconfigure(relay: Config['relay'], delivery: Config['delivery']): void {
    this.relay = relay;
    this.delivery = delivery;
  }

  async route(input: RoutingInput): Promise<RelayRoute> {
    const domain = input.recipient.split('@').pop()!.toLowerCase();
    const rule = this.relay.rules.find(
      (r) =>
        (!r.sender || matchesAddressPattern(r.sender, input.sender)) &&
        (!r.recipient_domain || r.recipient_domain.toLowerCase() === domain) &&
        (!r.user || r.user === input.user) &&
        (!r.client || (input.clientIp !== undefined && cidrMatch(r.client, input.clientIp))),
    );
    return this.named(rule?.route ?? this.relay.default_route, input);
  }

  /**
   * The mailbox `account` sends as. An account's name and its mailbox differ for an application
   * (client credentials) account: Exchange only takes mail from the mailbox.
   */
  private async mailboxOf(account: string): Promise<string> {
    const wanted = account.toLowerCase();
    return (await this.accountsFor()).find((a) => a.email.toLowerCase() === wanted)?.mailbox ?? account;
  }

  /**
   * What a message on an account's route goes out as: the account's mailbox with rewrite_sender,
   * and for a bounce (null sender), which Exchange only submits from the mailbox.
   */
  private async rewriteFor(account: string, rewriteSender: boolean, input: RoutingInput): Promise<string | undefined> {
    return rewriteSender || input.sender === '' ? this.mailboxOf(account) : undefined;
  }

  private async named(name: string, input: RoutingInput): Promise<RelayRoute> {
    const ca = this.delivery.ca_file;
    if (name === 'by-sender') {
      const accounts = await this.accountsFor();
      const s = input.sender.toLowerCase();
      const acc = accounts.find((a) => a.email === s || a.mailbox === s) ?? (accounts.length === 1 ? accounts[0] : undefined);
      if (!acc) return { name, kind: 'none', reason: accounts.length ? `no account for sender ${input.sender || '<>'}` : 'no accounts configured (relay365 account add)' };
      const spec: RouteSpec = { type: 'smtp', account: acc.email, host: this.delivery.smtp_host, port: this.delivery.smtp_port, caFile: ca, maxConnections: this.delivery.connections_per_account };
      return { name: `by-sender:${acc.email}`, kind: 'transport', spec, ...(input.sender === '' ? { rewriteTo: acc.mailbox } : {}) };
    }
    const r = this.relay.routes[name];
    if (!r) return { name, kind: 'none', reason: `route "${name}" is not defined in relay.routes` };
    switch (r.type) {
      case 'reject':
        return { name, kind: 'reject', message: r.message };
      case 'smtp':
        return { name, kind: 'transport', spec: { type: 'smtp', account: r.account, preset: r.preset, host: r.host, port: r.port, security: r.security, mechanism: r.mechanism, caFile: r.ca_file ?? ca, maxConnections: this.delivery.connections_per_account }, rewriteTo: await this.rewriteFor(r.account, r.rewrite_sender, input) };
      case 'graph':
        return { name, kind: 'transport', spec: { type: 'graph', account: r.account, baseUrl: r.base_url, caFile: r.ca_file ?? ca }, rewriteTo: await this.rewriteFor(r.account, r.rewrite_sender, input) };
      case 'mx':
        return { name, kind: 'transport', spec: { type: 'mx', resolvers: r.resolvers, port: r.port } };
      case 'smarthost':
        return { name, kind: 'transport', spec: { type: 'smarthost', host: r.host, port: r.port, security: r.security, user: r.user, password: r.password, caFile: r.ca_file ?? ca, maxConnections: r.max_connections } };
    }
  }
}
