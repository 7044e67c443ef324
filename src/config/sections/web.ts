import { z } from 'zod';

export const webSection = {
  web: z
    .strictObject({
      enabled: z.boolean().default(true).describe('Run the admin listener (admin page, /metrics, /healthz, /readyz) next to the relay.'),
      address: z.string().default('127.0.0.1').describe('Address of the admin listener. Keep it on loopback and reach it through an SSH tunnel or a reverse proxy with TLS.'),
      port: z.number().int().min(0).max(65535).default(8025).describe('Port of the admin listener (0 picks a free one; written to <state>/relay.json).'),
      ready_requires_valid_accounts: z.boolean().default(true).describe('/readyz answers 503 while an account needs re-authorization.'),
      admin_user: z.string().min(1).default('admin').describe('User name for the admin page login.'),
      admin_password_hash: z
        .string()
        .regex(/^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/, 'expected an scrypt hash from `relay365 relay hash-password`')
        .optional()
        .describe('scrypt hash of the admin password (`echo -n PASSWORD | relay365 relay hash-password`). Without it the admin page stays locked; /metrics and the health checks still answer.'),
      session_ttl_seconds: z.number().int().positive().default(8 * 3600).describe('How long an admin login lasts without activity.'),
      public_paths: z
        .array(z.enum(['/metrics', '/healthz', '/readyz']))
        .default(['/metrics', '/healthz', '/readyz'])
        .describe('Endpoints answered without a login (for Prometheus and health probes). Remove one to require an admin session for it.'),
      tls_cert_file: z.string().optional().describe('PEM certificate: serve the admin listener over HTTPS (the session cookie is then marked Secure).'),
      tls_key_file: z.string().optional().describe('PEM private key for tls_cert_file.'),
      default_authority_host: z.string().optional().describe('Identity platform pre-filled in the admin page\'s "add account" form (default https://login.microsoftonline.com).'),
    })
    .prefault({})
    .describe('The admin listener: the admin web page, Prometheus metrics and health checks.'),
};
