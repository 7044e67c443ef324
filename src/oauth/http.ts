/**
 * HTTP for the token endpoint: undici with an optional extra CA and a timeout on every call,
 * so a hung identity platform can never stall a relay worker.
 */
import { readFileSync } from 'node:fs';
import { Agent, fetch as undiciFetch } from 'undici';

export interface HttpOptions {
  caFile?: string;
  timeoutMs?: number;
}

const agents = new Map<string, Agent>();

export function makeFetch(options: HttpOptions = {}): typeof fetch {
  const key = options.caFile ?? '';
  let agent = agents.get(key);
  if (!agent) {
    const ca = options.caFile ? readFileSync(options.caFile, 'utf8') : undefined;
    agent = new Agent({ connect: ca ? { ca, timeout: 10_000 } : { timeout: 10_000 }, headersTimeout: 30_000, bodyTimeout: 30_000 });
    agents.set(key, agent);
  }
  const timeoutMs = options.timeoutMs ?? 30_000;
  const dispatcher = agent;
  return ((url: string | URL, init: RequestInit = {}) =>
    undiciFetch(url, { ...(init as object), dispatcher, signal: AbortSignal.timeout(timeoutMs) } as Parameters<typeof undiciFetch>[1])) as unknown as typeof fetch;
}
