/**
 * Who may relay: IP allow-lists, SMTP AUTH users with the senders they may use, and the address
 * checks that keep relay365 from ever being an open relay (the `%` hack, `!` paths, quoted local
 * parts hiding an `@`, source routes).
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import { ConfigError } from '../core/errors.js';

/** Addresses and CIDR networks as a BlockList; keyPath names the setting they come from in errors. */
export function buildAllowList(cidrs: string[], keyPath = 'relay.allow_networks'): BlockList {
  const list = new BlockList();
  for (const c of cidrs) {
    const [addr, bits] = c.split('/');
    const type = isIPv6(addr!) ? 'ipv6' : isIPv4(addr!) ? 'ipv4' : undefined;
    if (!type) throw new ConfigError(`${keyPath}: "${c}" is not an IP address or CIDR`, { keyPath });
    if (bits === undefined) list.addAddress(addr!, type);
    else list.addSubnet(addr!, Number(bits), type);
  }
  return list;
}

/** Whether `ip` is in `list`; an IPv4-mapped IPv6 address (::ffff:10.0.0.1) counts as its IPv4 address. */
export function clientAllowed(list: BlockList, ip: string): boolean {
  const clean = ip.replace(/^::ffff:/i, '');
  return list.check(clean, isIPv6(clean) ? 'ipv6' : 'ipv4');
}

/** Why an envelope address is refused, or undefined when it is a plain mailbox address. */
export function addressProblem(address: string): string | undefined {
  if (address.startsWith('@') || /^@[^:]+:/.test(address)) return 'source routes are not accepted';
  if (address.includes('!')) return 'UUCP bang paths are not accepted';
  if (address.includes('%')) return 'the % relay hack is not accepted';
  if (/^".*"@/.test(address) && /".*@.*"@/.test(address)) return 'quoted local parts containing @ are not accepted';
  if ((address.match(/@/g) ?? []).length !== 1) return 'the address must contain exactly one @';
  const [local, domain] = address.split('@');
  if (!local || !domain || !/^[A-Za-z0-9.-]+$|^\[[0-9A-Fa-f:.]+\]$/.test(domain) || domain.startsWith('.') || domain.endsWith('.')) return 'invalid domain';
  return undefined;
}

export type AddressMatcher = (address: string) => boolean;

/**
 * An envelope-address pattern compiled once: an address, `@domain` (that domain exactly, not its
 * subdomains, as in Postfix maps), a `*` wildcard pattern (`*` alone is any sender, the null
 * sender included), or `<>` for the null sender (bounces; Postfix's lookup key for it).
 * Addresses compare case-insensitively, local part included: that is how Exchange and every
 * common mail server treat them.
 */
export function compileAddressPattern(pattern: string): AddressMatcher {
  const p = pattern.toLowerCase();
  if (p === '*') return () => true;
  if (p === '<>') return (a) => a === '';
  if (p.startsWith('@')) return (a) => a.toLowerCase().endsWith(p);
  if (p.includes('*')) {
    const re = new RegExp(`^${p.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`, 'i');
    return (a) => re.test(a);
  }
  return (a) => a.toLowerCase() === p;
}

/** Compiled patterns by pattern text: the patterns come from the configuration, so this stays small. */
const compiledPatterns = new Map<string, AddressMatcher>();

/** Whether `address` matches an address pattern (see compileAddressPattern), compiling it once. */
export function matchesAddressPattern(pattern: string, address: string): boolean {
  let matches = compiledPatterns.get(pattern);
  if (!matches) compiledPatterns.set(pattern, (matches = compileAddressPattern(pattern)));
  return matches(address);
}

/** `scrypt$N$r$p$salt$hash` (base64). */
export function hashPassword(password: string): string {
  const salt = randomBytes(16);
  const N = 16384;
  const hash = scryptSync(password, salt, 32, { N, r: 8, p: 1 });
  return `scrypt$${N}$8$1$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export function verifyPassword(password: string, stored: string): boolean {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [, N, r, p, salt, hash] = parts;
  const expected = Buffer.from(hash!, 'base64');
  const actual = scryptSync(password, Buffer.from(salt!, 'base64'), expected.length, { N: Number(N), r: Number(r), p: Number(p) });
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}
