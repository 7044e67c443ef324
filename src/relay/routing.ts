/**
 * Routing: ordered rules, first match wins, on envelope sender, authenticated user, client IP and
 * recipient domain → a named route. Postfix's sender_dependent_relayhost_maps plus a default
 * relay host, in one section. The special route "by-sender" sends through the account whose
 * address is the envelope sender (or the only configured account).
 */
import type { BlockList } from 'node:net';
import type { Config } from '../config/schema.js';
import type { RouteSpec } from '../transport/index.js';
import { buildAllowList, clientAllowed, compileAddressPattern, type AddressMatcher } from './policy.js';

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

/** A rule with its patterns compiled; a condition left out of the rule is undefined here. */
interface CompiledRule {
  route: string;
  sender?: AddressMatcher;
  /** Lower-case. */
  recipientDomain?: string;
  user?: string;
  client?: BlockList;
}

function compileRule(rule: Config['relay']['rules'][number], index: number): CompiledRule {
  return {
    route: rule.route,
    sender: rule.sender ? compileAddressPattern(rule.sender) : undefined,
    recipientDomain: rule.recipient_domain?.toLowerCase(),
    user: rule.user,
    client: rule.client ? buildAllowList([rule.client], `relay.rules[${index}].client`) : undefined,
  };
}

/** All of a rule's conditions hold. `domain` is the recipient's, lower-case. */
function ruleMatches(rule: CompiledRule, input: RoutingInput, domain: string): boolean {
  return (
    (!rule.sender || rule.sender(input.sender)) &&
    (!rule.recipientDomain || rule.recipientDomain === domain) &&
    (!rule.user || rule.user === input.user) &&
    (!rule.client || (input.clientIp !== undefined && clientAllowed(rule.client, input.clientIp)))
  );
}

/**
 * relay.rules compiled once per configuration: which route a recipient takes, synchronously and
 * without accounts. The inbound server asks it per RCPT (to refuse a reject route there, not
 * with a bounce after 250), so matching allocates no BlockList or RegExp.
 */
export class RoutingRules {
  private readonly rules: CompiledRule[];
  /** Reject routes by name, with their messages. */
  private readonly rejects = new Map<string, string>();

  constructor(private readonly relay: Config['relay']) {
    this.rules = relay.rules.map(compileRule);
    for (const [name, route] of Object.entries(relay.routes)) if (route.type === 'reject') this.rejects.set(name, route.message);
  }

  /** The name of the route the first matching rule names, else default_route. */
  routeName(input: RoutingInput): string {
    const at = input.recipient.lastIndexOf('@');
    const domain = input.recipient.slice(at + 1).toLowerCase();
    for (const rule of this.rules) if (ruleMatches(rule, input, domain)) return rule.route;
    return this.relay.default_route;
  }

  /** Whether any route is a reject: without one, rejection() is always undefined. */
  get canReject(): boolean {
    return this.rejects.size > 0;
  }

  /** The message of the reject route `input` takes, or undefined when its route is not a reject. */
  rejection(input: RoutingInput): string | undefined {
    return this.canReject ? this.rejects.get(this.routeName(input)) : undefined;
  }
}

export class Router {
  private rules: RoutingRules;

  constructor(
    private relay: Config['relay'],
    private delivery: Config['delivery'],
    private readonly accountsFor: () => Promise<Array<{ email: string; mailbox: string }>>,
  ) {
    this.rules = new RoutingRules(relay);
  }

  reconfigure(relay: Config['relay'], delivery: Config['delivery']): void {
    this.rules = new RoutingRules(relay);
    this.relay = relay;
    this.delivery = delivery;
  }

  /** The name of the route `input` takes (no account lookup: "by-sender" is returned as such). */
  routeName(input: RoutingInput): string {
    return this.rules.routeName(input);
  }

  async route(input: RoutingInput): Promise<RelayRoute> {
    return this.named(this.rules.routeName(input), input);
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
      const acc = accounts.find((a) => a.email.toLowerCase() === s || a.mailbox.toLowerCase() === s) ?? (accounts.length === 1 ? accounts[0] : undefined);
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
