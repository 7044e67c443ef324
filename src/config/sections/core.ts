import { z } from 'zod';

/** Top-level process settings. */
export const coreSection = {
  state_dir: z.string().optional().describe('Directory for the token store, queue and state files. Default: $RELAY365_STATE_DIR, $STATE_DIRECTORY or ~/.local/state/relay365.'),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('Log level (RELAY365_LOG_LEVEL overrides).'),
    })
    .prefault({})
    .describe('Structured (JSON) logging to stderr. Tokens, secrets and passwords are always redacted.'),
};
