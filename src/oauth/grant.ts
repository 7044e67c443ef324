/**
 * Storing the tokens of a new grant (account add, re-authorization), shared by the CLI and the
 * admin page so both keep and drop the same stored tokens.
 *
 * A grant covers one resource group (one resource per token). What else is stored is kept only
 * when it provably belongs to the identity that just signed in:
 * - the refresh token is replaced by the new one; without a new one, the old one stays unless it
 *   belongs to another identity;
 * - a cached access token for another group (IMAP/Graph …) stays only if the account's authority,
 *   tenant, client and kind (delegated or app-only) are unchanged and its JWT names the same
 *   tenant and object id (`tid`, `oid`) as the new token. Opaque tokens cannot be checked and are
 *   dropped: the token manager gets a new one with the new refresh token when it is needed.
 * Nothing here logs or throws token values.
 */
import { registerSecret } from '../core/redact.js';
import { resourceGroup } from './authority.js';
import type { TokenSet } from './flows.js';
import type { TokenManager } from './manager.js';
import type { AccountRecord } from './store.js';

type Group = 'outlook' | 'graph';

/** add: `rec` holds the account's settings; reauth: the stored settings stay, only the grant changes. */
export type GrantMode = 'add' | 'reauth';

/** What storeGrant() wrote (no secrets). */
export interface StoredGrant {
  record: AccountRecord;
  /** The resource group the new access token is for. */
  group: Group;
  /** Cached access tokens of other groups that were kept or dropped. */
  kept: Group[];
  dropped: Group[];
  /** The stored tokens belonged to another identity (settings or token claims differ). */
  identityChanged: boolean;
}

/** Who issues and receives the grant: tokens issued under different settings are another identity. */
function grantSettings(r: AccountRecord): string {
  return JSON.stringify([
    r.authorityHost.replace(/\/+$/, '').toLowerCase(),
    r.endpoints?.token ?? '',
    (r.cloud ?? 'global').toLowerCase(),
    r.tenant.toLowerCase(),
    r.clientId.toLowerCase(),
    r.flow === 'client-credentials' ? 'app' : 'delegated',
  ]);
}

/** `tid/oid` from a JWT access token; undefined for opaque tokens or tokens without both claims. */
function tokenSubject(token: string): string | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const c = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { tid?: unknown; oid?: unknown };
    return typeof c.tid === 'string' && typeof c.oid === 'string' ? `${c.tid}/${c.oid}`.toLowerCase() : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Stores the tokens `set` obtained for `rec` under the account's lock (the write is atomic) and
 * drops the manager's in-memory tokens for the account, so the next delivery reads the new ones.
 * `rec` must be the record whose settings the grant was requested with.
 */
export async function storeGrant(tokens: TokenManager, rec: AccountRecord, set: TokenSet, mode: GrantMode): Promise<StoredGrant> {
  registerSecret(set.accessToken);
  registerSecret(set.refreshToken);
  const store = tokens.store;
  const group = resourceGroup(rec.purposes[0] ?? 'smtp');
  return store.withLock(rec.email, async () => {
    const previous = await store.get(rec.email);
    // The settings that issued the grant come from `rec`, even if the stored record changed meanwhile.
    const next: AccountRecord =
      mode === 'reauth' && previous
        ? { ...previous, flow: rec.flow, authorityHost: rec.authorityHost, endpoints: rec.endpoints, cloud: rec.cloud, tenant: rec.tenant, clientId: rec.clientId, credential: rec.credential }
        : { ...rec };
    const sameSettings = previous !== undefined && grantSettings(previous) === grantSettings(rec);
    const subject = tokenSubject(set.accessToken);
    const kept: Group[] = [];
    const dropped: Group[] = [];
    let otherSubject = false;
    const access: AccountRecord['access'] = {};
    for (const [g, cached] of Object.entries(previous?.access ?? {}) as Array<[Group, { token: string; expiresAt: number } | undefined]>) {
      if (!cached || g === group) continue;
      const old = tokenSubject(cached.token);
      if (old && subject && old !== subject) otherSubject = true;
      if (sameSettings && old !== undefined && old === subject) {
        access[g] = cached;
        kept.push(g);
      } else dropped.push(g);
    }
    const identityChanged = previous !== undefined && (!sameSettings || otherSubject);
    // A rotated refresh token always wins; the old one survives only for the same identity.
    next.refreshToken = set.refreshToken ?? (previous && !identityChanged ? previous.refreshToken : undefined);
    access[group] = { token: set.accessToken, expiresAt: set.expiresAt };
    next.access = access;
    next.state = 'valid';
    next.lastRefresh = new Date().toISOString();
    next.lastError = undefined;
    await store.put(next);
    tokens.forgetCached(rec.email);
    return { record: next, group, kept, dropped, identityChanged };
  });
}
