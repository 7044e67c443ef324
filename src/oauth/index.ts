export type { AccessToken, TokenProvider, TokenPurpose, TokenRequest } from './types.js';
export { TokenManager, openTokenManager, flowContextFor, credentialFor, type AccountSummary, type RefreshEvent, type TokenManagerOptions } from './manager.js';
export { AccountStore, storeKeyFromEnv, type AccountRecord, type AccountFlow, type AccountState } from './store.js';
export { CLOUDS, resolveEndpoints, scopeFor, parsePurposes, checkCustomScopes, resourceGroup } from './authority.js';
export { clientCredentials, refresh, deviceCode, authorizationCode, passwordGrant, loadCertificate, type DevicePrompt, type TokenSet } from './flows.js';
export { toOAuthError, needsReauth } from './errors.js';
export { storeGrant, type GrantMode, type StoredGrant } from './grant.js';
export { importTokenFile, exportSaslXoauth2 } from './imports.js';
