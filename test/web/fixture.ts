/**
 * A running relay (real SQLite queue, real token store, sandbox upstream) with the admin page on a
 * free port, for the web tests.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { parseConfigText } from '../../src/config/index.js';
import { createLogger } from '../../src/core/log.js';
import { RelayService, hashPassword } from '../../src/relay/index.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { adminOptionsFor, startAdminServer, type AdminServer } from '../../src/web/index.js';
import { tempDir } from '../helpers/cli.js';

export const ADMIN_PASSWORD = 'correct horse battery staple 365';
export const ADMIN_HASH = hashPassword(ADMIN_PASSWORD);
export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];

export interface RelayWithAdmin {
  relay: RelayService;
  admin: AdminServer;
  state: string;
  configFile: string;
  stop(): Promise<void>;
}

/**
 * Retries are slow on purpose (10 min): a deferred message only moves when the test (through the
 * page) retries it.
 */
export async function relayWithAdmin(sb: Sandbox, web = ''): Promise<RelayWithAdmin> {
  const state = tempDir('relay365-web-');
  const yaml = `relay:
  listen: [{ address: 127.0.0.1, port: 0 }]
  hostname: relay.test
delivery:
  poll_interval_ms: 100
  retry_initial_seconds: 600
  retry_max_seconds: 600
  ca_file: ${sb.caFile}
  smtp_host: 127.0.0.1
  smtp_port: ${sb.endpoints.smtp.port}
web:
  port: 0
  admin_password_hash: "${ADMIN_HASH}"
${web}`;
  const configFile = join(state, 'relay365.yaml');
  writeFileSync(configFile, yaml);
  const config = parseConfigText(yaml, configFile).config;
  const log = createLogger({ level: 'silent' });
  const relay = await RelayService.start({ config, stateDir: state, log });
  const admin = await startAdminServer({ ...adminOptionsFor(relay), log, configFile, port: 0 });
  return {
    relay,
    admin,
    state,
    configFile,
    async stop() {
      await admin.stop();
      await relay.stop();
    },
  };
}

export async function sendThroughRelay(port: number, from: string, to: string, count: number, subject: string): Promise<void> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  try {
    for (let i = 1; i <= count; i++) await transport.sendMail({ from, to, subject: `${subject} ${i}`, text: `message ${i}` });
  } finally {
    transport.close();
  }
}
