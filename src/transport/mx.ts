/**
 * Direct-to-MX delivery: recipients grouped by domain, the domain's MX hosts in preference order
 * (A/AAAA fallback per RFC 5321 §5.1), null MX (RFC 7505), opportunistic STARTTLS without
 * certificate verification (RFC 7435, see deliverTo), one connection per domain.
 * The resolver address is configurable (host:port) so tests can use a DNS server on loopback.
 */
import { Resolver } from 'node:dns/promises';
import { TransportError } from '../core/errors.js';
import { SmtpTransport } from './smtp.js';
import type { DeliveryResult, Envelope, MessageSource, Transport, RecipientFailure } from './types.js';

export interface MxTransportOptions {
  /** DNS servers, e.g. ["127.0.0.1:5353"]; default: the system's. */
  resolvers?: string[];
  /** Port to deliver to (25; tests use another). */
  port?: number;
  name?: string;
  timeoutMs?: number;
}

export class MxTransport implements Transport {
  readonly name = 'mx';
  private readonly resolver = new Resolver({ timeout: 5000, tries: 2 });

  constructor(private readonly options: MxTransportOptions = {}) {
    if (options.resolvers?.length) this.resolver.setServers(options.resolvers);
  }

  async hostsFor(domain: string): Promise<string[]> {
    try {
      const mx = await this.resolver.resolveMx(domain);
      if (mx.length === 1 && mx[0]!.exchange === '') throw new TransportError('SMTP_REJECTED', `${domain} does not accept mail (null MX)`, { temporary: false });
      if (mx.length) return mx.sort((a, b) => a.priority - b.priority).map((m) => m.exchange);
    } catch (err) {
      if (err instanceof TransportError) throw err;
      const code = (err as { code?: string }).code;
      if (code !== 'ENODATA' && code !== 'ENOTFOUND') throw new TransportError('NETWORK', `MX lookup for ${domain} failed: ${code ?? (err as Error).message}`, { temporary: true });
      if (code === 'ENOTFOUND') throw new TransportError('SMTP_REJECTED', `The domain ${domain} does not exist`, { temporary: false, smtp: { code: 550, enhanced: '5.1.2', text: `Host or domain name not found: ${domain}` } });
    }
    return [domain];
  }

  private async addressOf(host: string): Promise<string> {
    if (/^[\d.]+$|:/.test(host)) return host;
    try {
      return (await this.resolver.resolve4(host))[0]!;
    } catch {
      try {
        return (await this.resolver.resolve6(host))[0]!;
      } catch (err) {
        throw new TransportError('NETWORK', `Cannot resolve ${host}: ${(err as { code?: string }).code ?? (err as Error).message}`, { temporary: true });
      }
    }
  }

  /**
   * One MX host. Opportunistic TLS here is RFC 7435's "encrypt, don't authenticate" (Postfix's
   * smtp_tls_security_level = may): MX certificates are often self-signed or name another host,
   * and an MX name from unsigned DNS proves nothing, so the certificate is not verified — a
   * verification failure would otherwise bounce mail that any MTA delivers. With verification
   * off, no CA file is read. If the TLS handshake itself fails, the host is retried once in
   * plaintext, as Postfix does, and the reply recorded for the delivery says so.
   */
  private async deliverTo(address: string, envelope: Envelope, message: MessageSource): Promise<DeliveryResult> {
    const attempt = async (security: 'opportunistic' | 'none') => {
      const t = new SmtpTransport({ host: address, port: this.options.port ?? 25, security, dangerouslySkipTlsVerify: true, name: this.options.name, pool: false, timeoutMs: this.options.timeoutMs });
      try {
        return await t.deliver(envelope, message);
      } finally {
        await t.close();
      }
    };
    try {
      return await attempt('opportunistic');
    } catch (err) {
      if ((err as TransportError).code !== 'TLS') throw err;
      const r = await attempt('none');
      // The relay logs this reply and keeps it with the delivery attempt: a downgrade must show there.
      return { ...r, response: `${r.response} (sent without TLS: the TLS handshake with ${address} failed: ${handshakeReason(err as Error)})` };
    }
  }

  async deliver(envelope: Envelope, message: MessageSource): Promise<DeliveryResult> {
    const started = Date.now();
    const byDomain = new Map<string, string[]>();
    for (const rcpt of envelope.to) {
      const d = rcpt.split('@').pop()!.toLowerCase();
      byDomain.set(d, [...(byDomain.get(d) ?? []), rcpt]);
    }
    const accepted: string[] = [];
    const rejected: RecipientFailure[] = [];
    const responses: string[] = [];
    for (const [domain, rcpts] of byDomain) {
      let lastError: TransportError | undefined;
      let hosts: string[];
      try {
        hosts = await this.hostsFor(domain);
      } catch (err) {
        const e = err as TransportError;
        for (const r of rcpts) rejected.push({ recipient: r, reply: e.smtp ?? { code: e.temporary ? 451 : 550, text: e.message }, temporary: e.temporary });
        continue;
      }
      for (const host of hosts) {
        const address = await this.addressOf(host).catch((e: TransportError) => {
          lastError = e;
          return undefined;
        });
        if (!address) continue;
        try {
          const r = await this.deliverTo(address, { ...envelope, to: rcpts }, message);
          accepted.push(...r.accepted);
          rejected.push(...r.rejected);
          responses.push(`${domain}: ${r.response}`);
          lastError = undefined;
          break;
        } catch (err) {
          lastError = err as TransportError;
          // A permanent answer from one MX is final; temporary ones try the next MX.
          if (!lastError.temporary) break;
        }
      }
      if (lastError) for (const r of rcpts) rejected.push({ recipient: r, reply: lastError.smtp ?? { code: lastError.temporary ? 451 : 550, text: lastError.message }, temporary: lastError.temporary });
    }
    if (accepted.length === 0 && rejected.length > 0) {
      const allTemp = rejected.every((r) => r.temporary);
      const first = rejected[0]!;
      throw new TransportError(allTemp ? 'SMTP_TEMPORARY' : 'SMTP_REJECTED', `mx: ${first.reply.code} ${first.reply.text}`, { temporary: allTemp, smtp: first.reply, details: { rejected } });
    }
    return { accepted, rejected, response: responses.join('; '), route: this.name, durationMs: Date.now() - started };
  }

  async close(): Promise<void> {}
}

/** OpenSSL's "…:SSL routines:ssl3_read_bytes:tlsv1 alert protocol version:…" → "tlsv1 alert protocol version"; anything else on one line. */
function handshakeReason(err: Error): string {
  const text = err.message.replace(/\s+/g, ' ').trim();
  return /SSL routines:[^:]*:([^:]+)/.exec(text)?.[1] ?? text;
}
