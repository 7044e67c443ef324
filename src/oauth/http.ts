/**
 * HTTP for the token endpoint and Graph: undici with an optional extra CA (added to Node's roots)
 * and a timeout on every call, so a hung identity platform can never stall a relay worker. undici
 * (~7 MB of heap) is loaded when the first token request or Graph route needs it, not at start: a
 * relay whose routes need no token never loads it.
 */
import { trustedCas } from '../core/tls.js';
import type { SecureVersion } from 'node:tls';
import type { Agent } from 'undici';

export interface HttpOptions {
  caFile?: string;
  timeoutMs?: number;
}

/** How long an HTTP call may take to connect (TCP and TLS), to send its response headers, and between two chunks of its body. */
export const HTTP_TIMEOUTS = { connectMs: 10_000, headersMs: 30_000, bodyMs: 30_000 } as const;

export interface AgentOptions {
  /** Trusted CAs (PEM); as with tls.connect, they replace Node's built-in list (../core/tls.ts adds to it). */
  ca?: string | string[];
  minVersion?: SecureVersion;
  /** Caps each of HTTP_TIMEOUTS (a diagnostic's shorter leash, or a test's). */
  timeoutMs?: number;
}

const agents = new Map<string, Promise<Agent>>();
let undici: Promise<typeof import('undici')> | undefined;

/** undici, imported on first use (see the header). */
export const loadUndici = () => (undici ??= import('undici'));

/** An undici Agent with the timeouts above; whoever makes one closes it. */
export async function makeAgent(options: AgentOptions = {}): Promise<Agent> {
  const { Agent } = await loadUndici();
  const cap = (ms: number) => Math.min(ms, options.timeoutMs ?? ms);
  const connect = { ...(options.ca ? { ca: options.ca } : {}), ...(options.minVersion ? { minVersion: options.minVersion } : {}), timeout: cap(HTTP_TIMEOUTS.connectMs) };
  return new Agent({ connect, headersTimeout: cap(HTTP_TIMEOUTS.headersMs), bodyTimeout: cap(HTTP_TIMEOUTS.bodyMs) });
}

export function makeFetch(options: HttpOptions = {}): typeof fetch {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const key = options.caFile ?? '';
  let agent = agents.get(key);
  if (!agent) {
    // The CA file is read once, here, so a missing one is reported where the route or account
    // is set up.
    const ca = trustedCas(options.caFile);
    agent = makeAgent({ ca });
    agents.set(key, agent);
  }
  const dispatcher = agent;
  return (async (url: string | URL, init: RequestInit = {}) => {
    const [d, { fetch: undiciFetch }] = await Promise.all([dispatcher, loadUndici()]);
    return undiciFetch(url, { ...(init as object), dispatcher: d, signal: AbortSignal.timeout(timeoutMs) } as Parameters<typeof undiciFetch>[1]);
  }) as unknown as typeof fetch;
}
