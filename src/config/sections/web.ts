import { z } from 'zod';

export const webSection = {
  web: z
    .strictObject({
      enabled: z.boolean().default(true).describe('Serve /metrics, /healthz and /readyz next to the relay.'),
      address: z.string().default('127.0.0.1').describe('Address of the operations listener.'),
      port: z.number().int().min(0).max(65535).default(8025).describe('Port of the operations listener (0 picks a free one; written to <state>/relay.json).'),
      ready_requires_valid_accounts: z.boolean().default(true).describe('/readyz answers 503 while an account needs re-authorization.'),
    })
    .prefault({})
    .describe('Operations endpoints: Prometheus metrics and health checks.'),
};
