/**
 * `relay365 check`: step-by-step diagnostics of SMTP, IMAP, POP3 and Graph access for an account.
 */
export { runCheck, DEFAULT_ENDPOINTS, type CheckOptions, type Endpoint } from './run.js';
export { formatReport, STEP_NAMES } from './format.js';
export { judgeClaims, decodeJwtClaims, NEEDED, type TokenClaims, type ClaimsVerdict } from './claims.js';
export { ADVICE, fromCatalogue, explainServerReply } from './advice.js';
export type { CheckReport, ProtocolReport, CheckStep, CheckProtocol, StepId, Explanation } from './types.js';
