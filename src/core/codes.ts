/**
 * Registry of relay365's own error codes. Each code has a fixed temporary/permanent default and
 * a hint; docs/errors.md lists them (a test keeps the two in step). Add codes here, never inline.
 */
export interface ErrorCodeInfo {
  temporary: boolean;
  summary: string;
  hint?: string;
}

export const ERROR_CODES = {
  INTERNAL: { temporary: true, summary: 'Unexpected internal error.', hint: 'Run again with RELAY365_LOG_LEVEL=debug and report the log (it contains no secrets).' },
  USAGE: { temporary: false, summary: 'Invalid command-line usage.', hint: 'See `relay365 <command> --help`.' },
  CONFIG_INVALID: { temporary: false, summary: 'The configuration file is invalid.', hint: 'Fix the key named in the message; `relay365 config defaults` prints every key with its default.' },
  CONFIG_NOT_FOUND: { temporary: false, summary: 'The configuration file does not exist or cannot be read.' },
  SECRET_UNAVAILABLE: { temporary: false, summary: 'A secret could not be read from its environment variable, file or prompt.' },
  STORE_IO: { temporary: true, summary: 'Reading or writing local state failed.' },
  STORE_LOCKED: { temporary: true, summary: 'Another relay365 process holds the lock for this account.' },
  STORE_DECRYPT: { temporary: false, summary: 'The token store could not be decrypted.', hint: 'Check RELAY365_STORE_KEY / the key file / passphrase: it must be the one the store was written with.' },
  ACCOUNT_NOT_FOUND: { temporary: false, summary: 'No account with that address is configured.', hint: 'List accounts with `relay365 account list`, add one with `relay365 account add`.' },
  ACCOUNT_REAUTH_REQUIRED: { temporary: false, summary: 'The account needs to be signed in again.', hint: 'Run `relay365 account reauth <email>`.' },
  OAUTH_SERVER: { temporary: false, summary: 'The identity platform refused the request.' },
  OAUTH_TEMPORARY: { temporary: true, summary: 'The identity platform could not be reached or answered with a temporary error.', hint: 'relay365 keeps the refresh token and retries; check network/proxy if it persists.' },
  OAUTH_FLOW: { temporary: false, summary: 'An interactive sign-in did not complete.' },
  OAUTH_SCOPE: { temporary: false, summary: 'The requested scopes are not valid for this use.' },
  SMTP_AUTH: { temporary: false, summary: 'The SMTP server refused the OAuth authentication.' },
  SMTP_REJECTED: { temporary: false, summary: 'The SMTP server rejected the message or a recipient.' },
  SMTP_TEMPORARY: { temporary: true, summary: 'The SMTP server answered with a temporary failure.' },
  NETWORK: { temporary: true, summary: 'A network connection failed or timed out.' },
  TLS: { temporary: false, summary: 'TLS negotiation or certificate verification failed.', hint: 'Check the server name and --ca-file; never disable verification in production.' },
  GRAPH_REJECTED: { temporary: false, summary: 'Microsoft Graph rejected the request.' },
  GRAPH_TEMPORARY: { temporary: true, summary: 'Microsoft Graph answered with a temporary failure.' },
  IMAP_AUTH: { temporary: false, summary: 'The IMAP server refused the OAuth authentication.' },
  POP_AUTH: { temporary: false, summary: 'The POP3 server refused the OAuth authentication.' },
  FETCH_FAILED: { temporary: true, summary: 'Fetching mail failed.' },
  QUEUE_IO: { temporary: true, summary: 'The mail queue could not be read or written.' },
  QUEUE_NOT_FOUND: { temporary: false, summary: 'No queue entry with that id.' },
  MESSAGE_INVALID: { temporary: false, summary: 'The message could not be built or parsed.' },
  POLICY_REJECTED: { temporary: false, summary: 'The relay policy does not allow this.' },
} as const satisfies Record<string, ErrorCodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;
