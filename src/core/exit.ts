/**
 * Process exit codes shared by every command (documented in docs/cli.md).
 * 75 is sendmail's EX_TEMPFAIL so cron wrappers and MTAs retry later.
 */
export const ExitCode = {
  OK: 0,
  PERMANENT: 1,
  USAGE: 2,
  SOFTWARE: 70,
  TEMPFAIL: 75,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];
