/**
 * One error base class for relay365. Every failure that reaches a user carries a stable
 * `code` (listed in ./codes.ts and docs/errors.md), whether retrying later can help
 * (`temporary`), and a `hint` that says what to do. Protocol failures also carry the upstream
 * SMTP reply or AADSTS number so the relay can decide retry-vs-bounce from data, not text.
 */
import { ExitCode } from './exit.js';
import { ERROR_CODES, type ErrorCode, type ErrorCodeInfo } from './codes.js';
import { redactText } from './redact.js';

export interface SmtpReply {
  /** Three-digit basic code, e.g. 535. */
  code: number;
  /** RFC 3463 enhanced status code, e.g. "5.7.3", when the server sent one. */
  enhanced?: string;
  /** Reply text without the codes (joined lines). */
  text: string;
}

export interface Relay365ErrorOptions {
  hint?: string;
  temporary?: boolean;
  smtp?: SmtpReply;
  aadsts?: number;
  cause?: unknown;
  /** Extra machine-readable facts (never secrets). */
  details?: Record<string, unknown>;
}

export class Relay365Error extends Error {
  readonly code: ErrorCode;
  readonly temporary: boolean;
  readonly hint?: string;
  readonly smtp?: SmtpReply;
  readonly aadsts?: number;
  readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: Relay365ErrorOptions = {}) {
    // Messages may quote server replies or URLs; scrub anything that looks like a credential.
    super(redactText(message), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.temporary = options.temporary ?? ERROR_CODES[code].temporary;
    this.hint = options.hint === undefined ? (ERROR_CODES[code] as ErrorCodeInfo).hint : redactText(options.hint);
    this.smtp = options.smtp;
    this.aadsts = options.aadsts;
    this.details = options.details;
  }

  /** The exit code a command should end with when this error stops it. */
  get exitCode(): ExitCode {
    if (this instanceof UsageError || this instanceof ConfigError || this.code === 'USAGE' || this.code === 'CONFIG_INVALID') return ExitCode.USAGE;
    return this.temporary ? ExitCode.TEMPFAIL : ExitCode.PERMANENT;
  }

  toJSON(): Record<string, unknown> {
    return {
      error: this.code,
      message: this.message,
      temporary: this.temporary,
      ...(this.hint ? { hint: this.hint } : {}),
      ...(this.smtp ? { smtp: this.smtp } : {}),
      ...(this.aadsts !== undefined ? { aadsts: this.aadsts } : {}),
      ...(this.details ? { details: this.details } : {}),
    };
  }
}

/** Bad command-line usage. */
export class UsageError extends Relay365Error {
  constructor(message: string, options: Relay365ErrorOptions = {}) {
    super('USAGE', message, options);
  }
}

/** Invalid configuration; the message names the file, line and key path. */
export class ConfigError extends Relay365Error {
  readonly file?: string;
  readonly line?: number;
  readonly keyPath?: string;
  constructor(message: string, where: { file?: string; line?: number; keyPath?: string } = {}, options: Relay365ErrorOptions = {}) {
    super('CONFIG_INVALID', message, options);
    this.file = where.file;
    this.line = where.line;
    this.keyPath = where.keyPath;
  }
}

/** Token acquisition / refresh failures; `aadsts` carries the identity platform's code. */
export class OAuthError extends Relay365Error {
  /** The OAuth `error` field (invalid_grant, invalid_client, ...). */
  readonly oauthError?: string;
  constructor(code: ErrorCode, message: string, options: Relay365ErrorOptions & { oauthError?: string } = {}) {
    super(code, message, options);
    this.oauthError = options.oauthError;
  }
}

/** Upstream SMTP/IMAP/POP/Graph said no, or the connection failed. */
export class TransportError extends Relay365Error {}

/** Queue storage failures. */
export class QueueError extends Relay365Error {}

/** Local storage (token store, state files) failures. */
export class StoreError extends Relay365Error {}

export function isRelay365Error(err: unknown): err is Relay365Error {
  return err instanceof Relay365Error;
}

/** Wrap anything thrown into a Relay365Error; unknown errors count as temporary (maddy's rule). */
export function toRelay365Error(err: unknown): Relay365Error {
  if (err instanceof Relay365Error) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new Relay365Error('INTERNAL', message, { cause: err, temporary: true });
}
