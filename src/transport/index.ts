/**
 * Outbound routes. Every transport implements the Transport contract (./types.ts).
 */
import type { Logger } from '../core/log.js';
import type { TokenProvider } from '../oauth/types.js';
import { GraphTransport } from './graph.js';
import { MxTransport } from './mx.js';
import { SmtpTransport, type SmtpSecurity } from './smtp.js';
import type { Transport } from './types.js';

export type { Transport, Envelope, MessageSource, DeliveryResult, RecipientFailure } from './types.js';
export { SmtpTransport, type SmtpTransportOptions, type SmtpSecurity } from './smtp.js';
export { GraphTransport } from './graph.js';
export { MxTransport } from './mx.js';
export { parseReply, classifyReply, replyError } from './replies.js';

/** Microsoft 365 endpoint presets (fact sheet §4.1). */
export const SMTP_PRESETS = {
  office365: { host: 'smtp.office365.com', port: 587, security: 'starttls' as SmtpSecurity },
  outlook: { host: 'smtp-mail.outlook.com', port: 587, security: 'starttls' as SmtpSecurity },
  hve: { host: 'smtp-hve.office365.com', port: 587, security: 'starttls' as SmtpSecurity, minValiditySeconds: 600 },
  gcchigh: { host: 'smtp.office365.us', port: 587, security: 'starttls' as SmtpSecurity },
};

export type RouteSpec =
  | { type: 'smtp'; account: string; host?: string; port?: number; security?: SmtpSecurity; mechanism?: 'XOAUTH2' | 'OAUTHBEARER'; preset?: keyof typeof SMTP_PRESETS; caFile?: string; dangerouslySkipTlsVerify?: boolean; maxConnections?: number }
  | { type: 'graph'; account: string; baseUrl?: string; caFile?: string }
  | { type: 'mx'; resolvers?: string[]; port?: number }
  | { type: 'smarthost'; host: string; port?: number; security?: SmtpSecurity; user?: string; password?: string; caFile?: string; maxConnections?: number };

/**
 * Routes that reach the same place the same way share one transport (one connection pool): the
 * spec with its defaults filled in. Exchange allows 3 connections per mailbox whichever route
 * opened them, so an explicit route and a by-sender route for one account, or one spelled with
 * the default mechanism, must not get a pool each (432 4.3.2 for the fourth connection).
 */
export function transportKey(spec: RouteSpec): string {
  if (spec.type !== 'smtp') return JSON.stringify(spec);
  const preset = SMTP_PRESETS[spec.preset ?? 'office365'];
  const minValiditySeconds = 'minValiditySeconds' in preset ? preset.minValiditySeconds : undefined;
  return JSON.stringify([spec.type, spec.account.toLowerCase(), (spec.host ?? preset.host).toLowerCase(), spec.port ?? preset.port, spec.security ?? preset.security, spec.mechanism ?? 'XOAUTH2', minValiditySeconds, spec.caFile, spec.dangerouslySkipTlsVerify, spec.maxConnections]);
}

export function createTransport(spec: RouteSpec, deps: { tokens?: TokenProvider; log?: Logger; heloName?: string }): Transport {
  switch (spec.type) {
    case 'smtp': {
      const preset = SMTP_PRESETS[spec.preset ?? 'office365'];
      return new SmtpTransport(
        {
          host: spec.host ?? preset.host,
          port: spec.port ?? preset.port,
          security: spec.security ?? preset.security,
          auth: { kind: 'oauth', account: spec.account, mechanism: spec.mechanism, minValiditySeconds: 'minValiditySeconds' in preset ? preset.minValiditySeconds : undefined },
          caFile: spec.caFile,
          dangerouslySkipTlsVerify: spec.dangerouslySkipTlsVerify,
          maxConnections: spec.maxConnections,
          name: deps.heloName,
        },
        deps,
      );
    }
    case 'graph':
      return new GraphTransport({ account: spec.account, baseUrl: spec.baseUrl, caFile: spec.caFile }, { tokens: deps.tokens! });
    case 'mx':
      return new MxTransport({ resolvers: spec.resolvers, port: spec.port, name: deps.heloName });
    case 'smarthost':
      return new SmtpTransport(
        { host: spec.host, port: spec.port ?? 25, security: spec.security ?? 'opportunistic', auth: spec.user ? { kind: 'password', user: spec.user, pass: spec.password ?? '' } : undefined, caFile: spec.caFile, name: deps.heloName, maxConnections: spec.maxConnections },
        deps,
      );
  }
}
