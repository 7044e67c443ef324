/**
 * Structured logging (pino). Redaction is built in, not opt-in: every object and message passes
 * through sanitize()/redactText() before it is serialised, so a token handed to a log call by
 * mistake still never reaches the output. Logs go to stderr; stdout is for command output.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';
import { redactText, sanitize } from './redact.js';

export type { Logger };

export interface LoggerOptions {
  level?: LevelWithSilent;
  name?: string;
  /** Destination file descriptor or stream; defaults to stderr. */
  destination?: NodeJS.WritableStream | number;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? ((process.env.RELAY365_LOG_LEVEL as LevelWithSilent | undefined) ?? 'info');
  const dest = options.destination ?? 2;
  const stream = typeof dest === 'number' ? pino.destination({ fd: dest, sync: true }) : dest;
  return pino(
    {
      level,
      name: options.name ?? 'relay365',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        log: (obj) => sanitize(obj) as Record<string, unknown>,
      },
      serializers: { err: (err: unknown) => sanitize(err) },
      hooks: {
        logMethod(args, method) {
          const cleaned = args.map((a) => (typeof a === 'string' ? redactText(a) : a));
          return method.apply(this, cleaned as Parameters<typeof method>);
        },
      },
    },
    stream as pino.DestinationStream,
  );
}

let rootLogger: Logger | undefined;

/** The process-wide logger (created on first use). */
export function log(): Logger {
  rootLogger ??= createLogger();
  return rootLogger;
}

export function setRootLogger(logger: Logger): void {
  rootLogger = logger;
}
