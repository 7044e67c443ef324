/**
 * HTTP for the token endpoint and Graph: undici with an optional extra CA and a timeout on every
 * call, so a hung identity platform can never stall a relay worker. undici (~7 MB of heap) is
 * loaded when the first token request or Graph route needs it, not at start: a relay whose
 * routes need no token never loads it.
 */
import { readFileSync } from 'node:fs';
import type { Agent } from 'undici';

export interface HttpOptions {
  caFile?: string;
  timeoutMs?: number;
}

const agents = new Map<string, Promise<Agent>>();
let undici: Promise<typeof import('undici')> | undefined;
const loadUndici = () => (undici ??= import('undici'));

export function makeFetch(options: HttpOptions = {}): typeof fetch {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const key = options.caFile ?? '';
  let agent = agents.get(key);
  if (!agent) {
    // The CA file is read once, here, so a missing one is reported where the route or account
    // is set up.
    const ca = options.caFile ? readFileSync(options.caFile, 'utf8') : undefined;
    agent = loadUndici().then(({ Agent }) => new Agent({ connect: ca ? { ca, timeout: 10_000 } : { timeout: 10_000 }, headersTimeout: 30_000, bodyTimeout: 30_000 }));
    agents.set(key, agent);
  }
  const dispatcher = agent;
  return (async (url: string | URL, init: RequestInit = {}) => {
    const [d, { fetch: undiciFetch }] = await Promise.all([dispatcher, loadUndici()]);
    return undiciFetch(url, { ...(init as object), dispatcher: d, signal: AbortSignal.timeout(timeoutMs) } as Parameters<typeof undiciFetch>[1]);
  }) as unknown as typeof fetch;
}
