/**
 * The operations listener: `/metrics` (Prometheus text), `/healthz` (process up) and `/readyz`
 * (queue answers; no account needs re-authorization unless configured otherwise).
 * The admin pages of issue 7 will be mounted here.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RelayService } from '../relay/index.js';
import { RelayMetrics } from './metrics.js';

export interface OpsServerOptions {
  address: string;
  port: number;
  /** /readyz fails while any account needs re-authorization. */
  readyRequiresAccounts: boolean;
}

export async function startOpsServer(relay: RelayService, options: OpsServerOptions): Promise<{ url: string; metrics: RelayMetrics; stop(): Promise<void> }> {
  const metrics = new RelayMetrics(relay);
  const server = http.createServer((req, res) => {
    void (async () => {
      const path = (req.url ?? '/').split('?')[0];
      const headers = { 'x-content-type-options': 'nosniff', 'cache-control': 'no-store' };
      if (path === '/metrics') {
        res.writeHead(200, { ...headers, 'content-type': metrics.registry.contentType });
        res.end(await metrics.registry.metrics());
      } else if (path === '/healthz') {
        res.writeHead(200, { ...headers, 'content-type': 'text/plain' });
        res.end('ok\n');
      } else if (path === '/readyz') {
        const problems: string[] = [];
        try {
          await relay.queue.counts();
        } catch (err) {
          problems.push(`queue: ${(err as Error).message}`);
        }
        if (options.readyRequiresAccounts) {
          for (const a of await relay.tokens.accounts()) if (a.state === 'needs-reauth') problems.push(`account ${a.email} needs re-authorization: ${a.fix}`);
        }
        res.writeHead(problems.length ? 503 : 200, { ...headers, 'content-type': 'text/plain' });
        res.end(problems.length ? `${problems.join('\n')}\n` : 'ready\n');
      } else {
        res.writeHead(404, { ...headers, 'content-type': 'text/plain' });
        res.end('not found\n');
      }
    })().catch((err) => {
      res.writeHead(500);
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.address, resolve);
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${options.address.includes(':') ? `[${options.address}]` : options.address}:${port}`,
    metrics,
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
