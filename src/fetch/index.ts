/**
 * Fetching mail from Microsoft 365 / Outlook.com over IMAP or POP3 with XOAUTH2.
 */
export { fetchOnce, watch, type FetchOptions, type FetchResult, type WatchOptions } from './fetcher.js';
export { parseDestination, toMboxrd, MaildirDestination, MboxDestination, StdoutDestination, ExecDestination, type Destination, type MessageMeta } from './destination.js';
export { FetchState } from './state.js';
export { Pop3Client, type Pop3Options } from './pop3.js';
export { LineSocket, serverName, type LineSocketOptions, type TlsDetails } from './line-socket.js';
