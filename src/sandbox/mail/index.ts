export { MailStore, type OutboundRecord, type StoredMessage } from './store.js';
export { startSmtpServer } from './smtp.js';
export { startPop3Server } from './pop3.js';
export { startImapServer } from './imap.js';
export { startGraphServer } from './graph.js';
export { decodeXoauth2, decodeOauthbearer, checkMailAuth } from './auth.js';
