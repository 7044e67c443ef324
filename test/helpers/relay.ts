import type { Sandbox } from '../../src/sandbox/index.js';
import { parseConfigText, type Config } from '../../src/config/index.js';

/**
 * A relay configuration for tests: SMTP on a free port, fast retries, upstream = the sandbox.
 * Extra lines (two-space indented) are added under `relay:` and `delivery:`.
 */
export function relayYaml(sb: Sandbox, extra: { relay?: string; delivery?: string } = {}): string {
  const relayExtra = extra.relay ?? '';
  return `relay:
  listen: [{ address: 127.0.0.1, port: 0 }]
  hostname: relay.test
${relayExtra}
delivery:
  poll_interval_ms: 100
  retry_initial_seconds: 1
  retry_max_seconds: 2
  ca_file: ${sb.caFile}
  smtp_host: 127.0.0.1
  smtp_port: ${sb.endpoints.smtp.port}
${extra.delivery ?? ''}
web:
  port: 0
`;
}

export function relayConfig(sb: Sandbox, relayExtra = ''): Config {
  return parseConfigText(relayYaml(sb, { relay: relayExtra }), 'test.yaml').config;
}
