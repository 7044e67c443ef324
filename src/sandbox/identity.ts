/**
 * The sandbox's Microsoft identity platform v2.0 (login.microsoftonline.com): authorize, token,
 * devicecode, OIDC discovery, JWKS, the sign-in pages and the sandbox admin API. Errors are shaped
 * exactly like Entra's (fact sheet §1.6) and arise from directory state (§1.8).
 */
import { createHash, createPublicKey, createVerify, randomBytes, randomUUID, constants as cc } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SandboxContext } from './context.js';
import type { DirApp, DirTenant, DirUser } from './directory.js';
import { GRAPH_AUD, OUTLOOK_APP_AUD, OUTLOOK_DELEGATED_AUD, type TokenSigner } from './tokens.js';
import { thumbprints } from './ca.js';
import type { Fault } from './faults.js';
import { renderPage, escapeHtml } from './pages.js';

export interface IdentityOptions {
  tokenLifetimeSeconds: number;
  deviceCodeLifetimeSeconds: number;
  deviceInterval: number;
  /** Answer `slow_down` when a client polls faster than the interval (not documented by Microsoft; off by default). */
  slowDown: boolean;
  /** Shown as verification_uri; defaults to this server's /devicelogin page. */
  verificationUri?: string;
}

interface AuthCode {
  clientId: string;
  redirectUri: string;
  scopes: string[];
  challenge?: string;
  method?: string;
  upn: string;
  expiresAt: number;
  redeemed: boolean;
}

interface DeviceCode {
  deviceCode: string;
  userCode: string;
  clientId: string;
  tenant: string;
  scopes: string[];
  expiresAt: number;
  status: 'pending' | 'approved' | 'declined';
  upn?: string;
  lastPoll: number;
}

interface RefreshToken {
  upn: string;
  clientId: string;
  scopes: string[];
  issuedAt: number;
}

interface PendingSignIn {
  kind: 'authorize' | 'device';
  params: URLSearchParams;
  tenant: string;
  userCode?: string;
  upn?: string;
}

type ScopeResource = 'outlook' | 'graph';
interface ResolvedScopes {
  resource: ScopeResource;
  /** Permission names for the resource, e.g. SMTP.Send. */
  names: string[];
  offline: boolean;
  openid: boolean;
  /** Full scope strings echoed back in `scope`. */
  granted: string[];
}

class AadError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly aadsts: number | undefined,
    readonly text: string,
    readonly suberror?: string,
  ) {
    super(text);
  }
}

const OIDC = new Set(['offline_access', 'openid', 'profile', 'email']);
const OUTLOOK_HOSTS = ['https://outlook.office.com', 'https://outlook.office365.com', 'https://ps.outlook.com'];
const OUTLOOK_DELEGATED = ['SMTP.Send', 'IMAP.AccessAsUser.All', 'POP.AccessAsUser.All', 'EWS.AccessAsUser.All', 'Mail.Send', 'Mail.ReadWrite', 'User.Read'];
const APP_OUTLOOK_ROLES = ['SMTP.SendAsApp', 'IMAP.AccessAsApp', 'POP.AccessAsApp'];
const APP_GRAPH_ROLES = ['Mail.Send', 'Mail.ReadWrite'];
const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

function aadTimestamp(d = new Date()): string {
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export class IdentityPlatform {
  private readonly codes = new Map<string, AuthCode>();
  private readonly devices = new Map<string, DeviceCode>();
  private readonly refreshTokens = new Map<string, RefreshToken>();
  private readonly signIns = new Map<string, PendingSignIn>();
  readonly stats = { tokenRequests: 0, tokenRequestsByGrant: {} as Record<string, number>, tokensIssued: 0 };
  baseUrl = '';

  constructor(
    private readonly ctx: SandboxContext,
    private readonly signer: TokenSigner,
    readonly options: IdentityOptions,
  ) {}

  // ---------- HTTP entry ----------

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.baseUrl || 'https://localhost');
    const path = url.pathname;
    try {
      if (path.startsWith('/sandbox/admin/')) return await this.admin(req, res, url);
      if (path === '/devicelogin' || path === '/devicelogin/') return await this.deviceLoginPage(req, res);
      if (path === '/common/discovery/instance') {
        return json(res, 200, { tenant_discovery_endpoint: `${this.baseUrl}/common/v2.0/.well-known/openid-configuration`, 'api-version': '1.1', metadata: [] });
      }
      const m = /^\/([^/]+)\/(oauth2\/v2\.0\/(authorize|token|devicecode)|v2\.0\/\.well-known\/openid-configuration|discovery\/v2\.0\/keys)\/?(login|consent)?$/.exec(path);
      if (!m) return json(res, 404, { error: 'not_found' });
      const tenant = decodeURIComponent(m[1]!);
      if (m[2]!.startsWith('discovery')) return json(res, 200, this.signer.jwks());
      if (m[2]!.startsWith('v2.0')) return json(res, 200, this.openidConfiguration(tenant));
      const endpoint = m[3]!;
      if (endpoint === 'authorize') return await this.authorizePage(req, res, url, tenant, m[4] as 'login' | 'consent' | undefined);
      const fault = this.ctx.faults.take(endpoint === 'token' ? 'token' : 'devicecode', '');
      if (endpoint === 'token') this.stats.tokenRequests++;
      if (fault) {
        if (fault.kind === 'drop') {
          req.socket.destroy();
          return;
        }
        if (fault.kind === 'delay') await new Promise((r) => setTimeout(r, fault.ms));
        if (fault.kind === 'http') {
          res.writeHead(fault.status, { 'content-type': 'application/json; charset=utf-8', ...(fault.retryAfter !== undefined ? { 'retry-after': String(fault.retryAfter) } : {}) });
          res.end(JSON.stringify(fault.body ?? { error: 'temporarily_unavailable', error_description: `AADSTS50196: The server terminated an operation because it encountered a temporary error.\r\nTrace ID: ${randomUUID()}\r\nCorrelation ID: ${randomUUID()}\r\nTimestamp: ${aadTimestamp()}`, error_codes: [50196] }));
          return;
        }
      }
      if (req.method !== 'POST') throw new AadError(400, 'invalid_request', 900561, 'The endpoint only accepts POST requests.');
      const params = new URLSearchParams((await readBody(req)).toString('utf8'));
      if (endpoint === 'devicecode') return json(res, 200, this.deviceCodeRequest(tenant, params));
      const grant = params.get('grant_type') ?? '';
      this.stats.tokenRequestsByGrant[grant] = (this.stats.tokenRequestsByGrant[grant] ?? 0) + 1;
      const body = this.tokenRequest(tenant, params, req.headers.authorization, url);
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store, no-cache', pragma: 'no-cache', 'x-ms-request-id': randomUUID() });
      res.end(JSON.stringify(body));
    } catch (err) {
      if (err instanceof AadError) return this.sendError(res, err);
      json(res, 500, { error: 'server_error', error_description: String(err) });
    }
  }

  private sendError(res: ServerResponse, e: AadError): void {
    const trace = randomUUID();
    const correlation = randomUUID();
    const ts = aadTimestamp();
    const description = e.aadsts !== undefined ? `AADSTS${e.aadsts}: ${e.text}\r\nTrace ID: ${trace}\r\nCorrelation ID: ${correlation}\r\nTimestamp: ${ts}` : e.text;
    json(res, e.status, {
      error: e.error,
      error_description: description,
      error_codes: e.aadsts !== undefined ? [e.aadsts] : [],
      timestamp: ts,
      trace_id: trace,
      correlation_id: correlation,
      ...(e.aadsts !== undefined ? { error_uri: `${this.baseUrl}/error?code=${e.aadsts}` } : {}),
      ...(e.suberror ? { suberror: e.suberror } : {}),
    });
  }

  openidConfiguration(tenant: string): Record<string, unknown> {
    const t = this.ctx.directory.tenant(tenant);
    const issuerTenant = t ? t.id : '{tenantid}';
    const base = `${this.baseUrl}/${tenant}`;
    return {
      token_endpoint: `${base}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      jwks_uri: `${base}/discovery/v2.0/keys`,
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      issuer: `${this.baseUrl}/${issuerTenant}/v2.0`,
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      code_challenge_methods_supported: ['plain', 'S256'],
    };
  }

  // ---------- tenants, apps, scopes ----------

  private requireTenant(tenant: string): DirTenant | undefined {
    if (['common', 'organizations', 'consumers'].includes(tenant.toLowerCase())) return undefined;
    const t = this.ctx.directory.tenant(tenant);
    if (!t) {
      throw new AadError(400, 'invalid_request', 90002, `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`);
    }
    return t;
  }

  private requireApp(clientId: string | null, tenant: string): { app: DirApp; tenant: DirTenant } {
    const found = clientId ? this.ctx.directory.app(clientId) : undefined;
    const t = this.requireTenant(tenant);
    if (!found || (t && found.tenant !== t)) {
      throw new AadError(400, 'unauthorized_client', 700016, `Application with identifier '${clientId}' was not found in the directory '${tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`);
    }
    return found;
  }

  resolveDelegatedScopes(scope: string | null): ResolvedScopes {
    const list = (scope ?? '').split(/\s+/).filter(Boolean);
    let resource: ScopeResource | undefined;
    const names: string[] = [];
    const granted: string[] = [];
    let offline = false;
    let openid = false;
    for (const s of list) {
      if (OIDC.has(s)) {
        if (s === 'offline_access') offline = true;
        if (s === 'openid') openid = true;
        continue;
      }
      let res: ScopeResource;
      let name: string;
      const host = OUTLOOK_HOSTS.find((h) => s.toLowerCase().startsWith(`${h}/`));
      if (host) {
        res = 'outlook';
        name = s.slice(host.length + 1);
        if (name !== '.default' && !OUTLOOK_DELEGATED.includes(name)) throw invalidScope(s);
      } else if (s.toLowerCase().startsWith(`${GRAPH_AUD}/`)) {
        res = 'graph';
        name = s.slice(GRAPH_AUD.length + 1);
      } else if (!s.includes('://') && !s.includes('/')) {
        // Unprefixed scopes resolve to Microsoft Graph (fact sheet §2.1).
        res = 'graph';
        name = s;
      } else {
        throw invalidScope(s);
      }
      // One resource per token: scopes of later resources are dropped (fact sheet §1.3).
      if (resource && resource !== res) continue;
      resource = res;
      names.push(name);
      granted.push(res === 'outlook' ? `${OUTLOOK_DELEGATED_AUD}/${name}` : `${GRAPH_AUD}/${name}`);
    }
    if (!resource) {
      if (openid || offline) return { resource: 'graph', names: ['User.Read'], offline, openid, granted: [`${GRAPH_AUD}/User.Read`] };
      throw new AadError(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'scope'.");
    }
    return { resource, names, offline, openid, granted };
  }

  private checkConsent(app: DirApp, scopes: ResolvedScopes): void {
    if (!app.consented) throw consentRequired(app);
    const consentedNames = app.delegated.map((d) => d.split('/').pop()!);
    for (const n of scopes.names) {
      if (n === '.default' || n === 'User.Read') continue;
      if (!consentedNames.includes(n)) throw consentRequired(app);
    }
  }

  // ---------- client authentication ----------

  private authenticateClient(app: DirApp, params: URLSearchParams, authorization: string | undefined, tenant: string, requireConfidential: boolean): 'public' | 'confidential' {
    let secret = params.get('client_secret');
    if (!secret && authorization?.startsWith('Basic ')) {
      const decoded = Buffer.from(authorization.slice(6), 'base64').toString('utf8');
      const i = decoded.indexOf(':');
      secret = decodeURIComponent(decoded.slice(i + 1));
    }
    const assertion = params.get('client_assertion');
    if (secret) {
      if (app.secrets.length === 0 && app.allowPublicClientFlows) {
        throw new AadError(401, 'invalid_client', 700025, "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.");
      }
      const match = app.secrets.find((s) => s.value === secret);
      if (!match) {
        throw new AadError(401, 'invalid_client', 7000215, `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${app.clientId}'.`);
      }
      if (match.expiresAt && Date.parse(match.expiresAt) < this.ctx.now()) {
        throw new AadError(401, 'invalid_client', 7000222, `The provided client secret keys for app '${app.clientId}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.`);
      }
      return 'confidential';
    }
    if (assertion) {
      if (params.get('client_assertion_type') !== CLIENT_ASSERTION_TYPE) throw new AadError(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'client_assertion_type'.");
      this.verifyClientAssertion(app, assertion, tenant);
      return 'confidential';
    }
    if (requireConfidential || !app.allowPublicClientFlows) {
      throw new AadError(401, 'invalid_client', 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.");
    }
    return 'public';
  }

  private verifyClientAssertion(app: DirApp, assertion: string, tenant: string): void {
    const parts = assertion.split('.');
    let header: Record<string, string>;
    let claims: Record<string, any>;
    try {
      header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8'));
      claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    } catch {
      throw new AadError(400, 'invalid_request', 50027, 'Invalid JWT token. Token format not valid.');
    }
    const x5tS256 = header['x5t#S256'];
    const x5t = header.x5t;
    if (!x5tS256 && !x5t) throw new AadError(400, 'invalid_request', 50027, 'Invalid JWT token. No certificate thumbprint specified in token header.');
    const cert = app.certificates.find((pem) => {
      const tp = thumbprints(pem);
      return (x5tS256 && tp.sha256 === x5tS256) || (x5t && tp.sha1 === x5t);
    });
    const keyNotFound = () => new AadError(401, 'invalid_client', 700027, `Client assertion failed signature validation. Trace: the key was not found. Thumbprint of key used by client: '${x5tS256 ?? x5t}'. Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '${app.clientId}'.`);
    if (!cert) throw keyNotFound();
    const publicKey = createPublicKey(cert);
    const verifier = createVerify('RSA-SHA256').update(`${parts[0]}.${parts[1]}`);
    const sig = Buffer.from(parts[2] ?? '', 'base64url');
    const ok =
      header.alg === 'PS256'
        ? verifier.verify({ key: publicKey, padding: cc.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig)
        : header.alg === 'RS256'
          ? verifier.verify(publicKey, sig)
          : false;
    if (!ok) throw keyNotFound();
    if (claims.iss !== app.clientId || claims.sub !== app.clientId) throw new AadError(401, 'invalid_client', 700023, 'Client assertion audience claim does not match Realm issuer.');
    const aud = String(claims.aud ?? '');
    if (!/\/oauth2\/v2\.0\/token$|\/oauth2\/token$/.test(aud) || !aud.includes(`/${tenant}/`) && !aud.includes(`/${this.ctx.directory.tenant(tenant)?.id}/`)) {
      throw new AadError(401, 'invalid_client', 700021, `Client assertion audience claim does not match Realm issuer. Review the documentation at https://aka.ms/certCreds.`);
    }
    const now = Math.floor(this.ctx.now() / 1000);
    if (typeof claims.exp !== 'number' || claims.exp < now - 300 || (typeof claims.nbf === 'number' && claims.nbf > now + 300)) {
      throw new AadError(401, 'invalid_client', 700024, `Client assertion is not within its valid time range. Current time: ${new Date(now * 1000).toISOString()}, assertion valid from ${claims.nbf ? new Date(claims.nbf * 1000).toISOString() : 'n/a'}, expiry time of assertion ${claims.exp ? new Date(claims.exp * 1000).toISOString() : 'n/a'}.`);
    }
  }

  // ---------- token endpoint ----------

  private tokenRequest(tenantParam: string, params: URLSearchParams, authorization: string | undefined, url: URL): Record<string, unknown> {
    void url;
    const grant = params.get('grant_type');
    if (!grant) throw new AadError(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'grant_type'.");
    const { app, tenant } = this.requireApp(params.get('client_id'), tenantParam);
    switch (grant) {
      case 'client_credentials':
        return this.clientCredentials(app, tenant, tenantParam, params, authorization);
      case 'authorization_code':
        return this.redeemCode(app, tenant, tenantParam, params, authorization);
      case 'urn:ietf:params:oauth:grant-type:device_code':
      case 'device_code':
        return this.pollDevice(app, tenant, tenantParam, params, authorization);
      case 'refresh_token':
        return this.refresh(app, tenant, tenantParam, params, authorization);
      case 'password':
        return this.ropc(app, tenant, tenantParam, params, authorization);
      default:
        throw new AadError(400, 'unsupported_grant_type', 70003, `The app requested an unsupported grant type '${grant}'.`);
    }
  }

  private clientCredentials(app: DirApp, tenant: DirTenant, tenantParam: string, params: URLSearchParams, authorization?: string): Record<string, unknown> {
    const t = tenantParam.toLowerCase();
    if (t === 'common' || t === 'consumers') throw new AadError(400, 'invalid_request', 9001023, "The grant type isn't supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.");
    if (t === 'organizations') throw new AadError(400, 'invalid_request', 50059, 'No tenant-identifying information found in either the request or implied by any provided credentials.');
    this.authenticateClient(app, params, authorization, tenantParam, true);
    const scope = (params.get('scope') ?? '').trim();
    const list = scope.split(/\s+/).filter(Boolean);
    if (list.length !== 1 || !list[0]!.endsWith('/.default')) {
      if (list.some((s) => OUTLOOK_HOSTS.some((h) => s.startsWith(`${h}/`)) || s.startsWith(`${GRAPH_AUD}/`))) {
        throw new AadError(400, 'invalid_scope', 1002012, `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`);
      }
      throw invalidScope(scope);
    }
    const resource = list[0]!.slice(0, -'/.default'.length).toLowerCase();
    let aud: string;
    let roles: string[];
    if (OUTLOOK_HOSTS.includes(resource)) {
      aud = OUTLOOK_APP_AUD;
      roles = app.application.filter((r) => APP_OUTLOOK_ROLES.includes(r));
    } else if (resource === GRAPH_AUD) {
      aud = GRAPH_AUD;
      roles = app.application.filter((r) => APP_GRAPH_ROLES.includes(r));
    } else {
      throw new AadError(400, 'invalid_resource', 500011, `The resource principal named ${resource} was not found in the tenant named ${tenant.domains[0]}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.`);
    }
    if (!app.consented) roles = [];
    const sp = this.ctx.directory.servicePrincipalFor(app.clientId);
    const oid = sp?.objectId ?? createHash('sha256').update(app.clientId).digest('hex').replace(/^(.{8})(.{4})(.{4})(.{4})(.{12}).*/, '$1-$2-$3-$4-$5');
    const lifetime = this.options.tokenLifetimeSeconds;
    const access = this.signer.sign({ aud, tid: tenant.id, oid, appid: app.clientId, roles, exp: Math.floor(this.ctx.now() / 1000) + lifetime }, this.ctx.now());
    this.stats.tokensIssued++;
    return { token_type: 'Bearer', expires_in: lifetime, ext_expires_in: lifetime, access_token: access };
  }

  private checkUserState(user: DirUser, ropc = false): void {
    if (user.blockedByConditionalAccess) {
      throw new AadError(400, ropc ? 'invalid_grant' : 'invalid_grant', 53003, 'Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.', ropc ? 'message_only' : undefined);
    }
    if (user.mfaRequired) {
      throw new AadError(400, ropc ? 'interaction_required' : 'invalid_grant', 50076, "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '00000002-0000-0ff1-ce00-000000000000'.", 'basic_action');
    }
  }

  private issueUserTokens(app: DirApp, tenant: DirTenant, user: DirUser, scopes: ResolvedScopes): Record<string, unknown> {
    const lifetime = this.options.tokenLifetimeSeconds;
    const now = this.ctx.now();
    const access = this.signer.sign(
      {
        aud: scopes.resource === 'outlook' ? OUTLOOK_DELEGATED_AUD : GRAPH_AUD,
        tid: tenant.id,
        oid: user.oid,
        appid: app.clientId,
        azp: app.clientId,
        scp: scopes.names.includes('.default') ? consentedFor(app, scopes.resource).join(' ') : scopes.names.join(' '),
        upn: user.upn,
        unique_name: user.upn,
        exp: Math.floor(now / 1000) + lifetime,
      },
      now,
    );
    this.stats.tokensIssued++;
    const body: Record<string, unknown> = {
      token_type: 'Bearer',
      scope: scopes.granted.join(' '),
      expires_in: lifetime,
      ext_expires_in: lifetime,
      access_token: access,
    };
    if (scopes.offline) {
      const rt = `M.C5${randomBytes(2).toString('hex')}_SBX.0.U.${randomBytes(48).toString('base64url')}`;
      this.refreshTokens.set(rt, { upn: user.upn, clientId: app.clientId, scopes: [...scopes.granted, 'offline_access'], issuedAt: now });
      body.refresh_token = rt;
    }
    if (scopes.openid) {
      body.id_token = this.signer.sign({ aud: app.clientId, tid: tenant.id, oid: user.oid, appid: app.clientId, upn: user.upn, exp: Math.floor(now / 1000) + 3600, ver: '2.0' }, now);
    }
    return body;
  }

  private redeemCode(app: DirApp, tenant: DirTenant, tenantParam: string, params: URLSearchParams, authorization?: string): Record<string, unknown> {
    this.authenticateClient(app, params, authorization, tenantParam, !app.allowPublicClientFlows);
    const code = params.get('code');
    if (!code) throw new AadError(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'code'.");
    const entry = this.codes.get(code);
    if (!entry || entry.clientId !== app.clientId) throw new AadError(400, 'invalid_grant', 70000, 'Provided grant is invalid or malformed.');
    if (entry.redeemed) throw new AadError(400, 'invalid_grant', 54005, 'OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.');
    if (entry.expiresAt < this.ctx.now()) throw new AadError(400, 'invalid_grant', 70008, 'The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.');
    if (params.get('redirect_uri') !== entry.redirectUri) throw new AadError(400, 'invalid_grant', 50148, 'The redirect_uri specified in the token request does not match the redirect_uri used when acquiring the authorization code.');
    if (entry.challenge) {
      const verifier = params.get('code_verifier') ?? '';
      const computed = entry.method === 'S256' ? createHash('sha256').update(verifier).digest('base64url') : verifier;
      if (computed !== entry.challenge) throw new AadError(400, 'invalid_grant', 501481, 'The Code_Verifier does not match the code_challenge supplied in the authorization request.');
    }
    entry.redeemed = true;
    const user = this.ctx.directory.user(entry.upn)!;
    const scopes = this.resolveDelegatedScopes(entry.scopes.join(' '));
    return this.issueUserTokens(app, tenant, user, scopes);
  }

  private deviceCodeRequest(tenantParam: string, params: URLSearchParams): Record<string, unknown> {
    const { app } = this.requireApp(params.get('client_id'), tenantParam);
    const scopes = this.resolveDelegatedScopes(params.get('scope'));
    void scopes;
    const userCode = randomBytes(9).toString('base64').replace(/[^A-Z0-9]/gi, '').toUpperCase().padEnd(9, 'X').slice(0, 9);
    const deviceCode = `DAQABIQEAAA${randomBytes(96).toString('base64url')}`;
    const now = this.ctx.now();
    this.devices.set(deviceCode, {
      deviceCode,
      userCode,
      clientId: app.clientId,
      tenant: tenantParam,
      scopes: (params.get('scope') ?? '').split(/\s+/).filter(Boolean),
      expiresAt: now + this.options.deviceCodeLifetimeSeconds * 1000,
      status: 'pending',
      lastPoll: 0,
    });
    const uri = this.options.verificationUri ?? `${this.baseUrl}/devicelogin`;
    return {
      user_code: userCode,
      device_code: deviceCode,
      verification_uri: uri,
      expires_in: this.options.deviceCodeLifetimeSeconds,
      interval: this.options.deviceInterval,
      message: `To sign in, use a web browser to open the page ${uri} and enter the code ${userCode} to authenticate.`,
    };
  }

  private pollDevice(app: DirApp, tenant: DirTenant, tenantParam: string, params: URLSearchParams, authorization?: string): Record<string, unknown> {
    if (!params.get('device_code')) throw new AadError(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'device_code'.");
    // Confidential apps without "Allow public client flows" fail here (fact sheet §1.4).
    this.authenticateClient(app, params, authorization, tenantParam, false);
    const d = this.devices.get(params.get('device_code')!);
    if (!d || d.clientId !== app.clientId) throw new AadError(400, 'bad_verification_code', 70018, 'Invalid verification code due to User typing in wrong user code.');
    const now = this.ctx.now();
    if (d.expiresAt < now) throw new AadError(400, 'expired_token', 70020, "The provided value for the input parameter 'device_code' is not valid. This device code has expired.");
    if (d.status === 'declined') throw new AadError(400, 'authorization_declined', 70000, 'The user declined the authorization request.');
    if (d.status === 'pending') {
      const tooFast = this.options.slowDown && d.lastPoll && now - d.lastPoll < this.options.deviceInterval * 1000;
      d.lastPoll = now;
      if (tooFast) throw new AadError(400, 'slow_down', undefined, 'slow_down: the client is polling too frequently.');
      throw new AadError(400, 'authorization_pending', 70016, 'OAuth 2.0 device flow error. Authorization is pending. Continue polling.');
    }
    this.devices.delete(d.deviceCode);
    const user = this.ctx.directory.user(d.upn!)!;
    const scopes = this.resolveDelegatedScopes(d.scopes.join(' '));
    this.checkConsent(app, scopes);
    this.checkUserState(user);
    return this.issueUserTokens(app, tenant, user, scopes);
  }

  private refresh(app: DirApp, tenant: DirTenant, tenantParam: string, params: URLSearchParams, authorization?: string): Record<string, unknown> {
    this.authenticateClient(app, params, authorization, tenantParam, !app.allowPublicClientFlows);
    const rt = this.refreshTokens.get(params.get('refresh_token') ?? '');
    if (!rt || rt.clientId !== app.clientId) throw new AadError(400, 'invalid_grant', 70000, 'Provided grant is invalid or malformed.');
    const user = this.ctx.directory.user(rt.upn)!;
    const issued = new Date(rt.issuedAt).toISOString();
    if (user.tokensValidFrom && user.tokensValidFrom > rt.issuedAt) {
      throw new AadError(400, 'invalid_grant', 50173, `The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '${issued}' and the TokensValidFrom date (before which tokens are not valid) for this user is '${new Date(user.tokensValidFrom).toISOString()}'.`);
    }
    if (user.refreshTokensInactive) {
      throw new AadError(400, 'invalid_grant', 700082, `The refresh token has expired due to inactivity. The token was issued on ${issued} and was inactive for 90.00:00:00.`, 'bad_token');
    }
    this.checkUserState(user);
    const scopes = this.resolveDelegatedScopes(params.get('scope') ?? rt.scopes.join(' '));
    this.checkConsent(app, scopes);
    // Rotation: a new refresh token every time; the old one stays valid (fact sheet §2.5).
    return this.issueUserTokens(app, tenant, user, { ...scopes, offline: true });
  }

  private ropc(app: DirApp, tenant: DirTenant, tenantParam: string, params: URLSearchParams, authorization?: string): Record<string, unknown> {
    if (!tenant.ropcEnabled || tenantParam.toLowerCase() === 'consumers' || tenantParam.toLowerCase() === 'common') {
      throw new AadError(400, 'invalid_grant', 9002313, 'Invalid request. Request is malformed or invalid.');
    }
    this.authenticateClient(app, params, authorization, tenantParam, !app.allowPublicClientFlows);
    const user = this.ctx.directory.user(params.get('username') ?? '');
    if (!user || user.shared) throw new AadError(400, 'invalid_grant', 50034, 'The user account does not exist in the directory. To sign into this application, the account must be added to the directory.');
    if (user.password !== params.get('password')) throw new AadError(400, 'invalid_grant', 50126, 'Error validating credentials due to invalid username or password.');
    this.checkUserState(user, true);
    const scopes = this.resolveDelegatedScopes(params.get('scope'));
    this.checkConsent(app, scopes);
    return this.issueUserTokens(app, tenant, user, scopes);
  }

  // ---------- authorization code: pages and non-interactive path ----------

  /** Validates an authorize request; returns the app or throws a page-level AadError. */
  private validateAuthorize(params: URLSearchParams, tenant: string): DirApp {
    const { app } = this.requireApp(params.get('client_id'), tenant);
    const redirect = params.get('redirect_uri') ?? app.redirectUris[0] ?? '';
    if (!redirectMatches(redirect, app.redirectUris)) {
      throw new AadError(400, 'invalid_request', 50011, `The redirect URI '${redirect}' specified in the request does not match the redirect URIs configured for the application '${app.clientId}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal.`);
    }
    if (params.get('response_type') !== 'code') throw new AadError(400, 'unsupported_response_type', 900144, "The request body must contain the following parameter: 'response_type'.");
    const method = params.get('code_challenge_method');
    if (method && method !== 'S256' && method !== 'plain') throw new AadError(400, 'invalid_request', 9002313, 'Invalid request. Request is malformed or invalid.');
    this.resolveDelegatedScopes(params.get('scope'));
    return app;
  }

  private issueCode(params: URLSearchParams, upn: string): string {
    const app = this.ctx.directory.app(params.get('client_id')!)!.app;
    const redirect = params.get('redirect_uri') ?? app.redirectUris[0]!;
    const code = `0.ASBX${randomBytes(48).toString('base64url')}`;
    this.codes.set(code, {
      clientId: app.clientId,
      redirectUri: redirect,
      scopes: (params.get('scope') ?? '').split(/\s+/).filter(Boolean),
      challenge: params.get('code_challenge') ?? undefined,
      method: params.get('code_challenge_method') ?? (params.get('code_challenge') ? 'plain' : undefined),
      upn,
      expiresAt: this.ctx.now() + 10 * 60_000,
      redeemed: false,
    });
    const target = new URL(redirect);
    target.searchParams.set('code', code);
    if (params.get('state') !== null) target.searchParams.set('state', params.get('state')!);
    return target.toString();
  }

  /** Sandbox-only: complete an authorization request as `upn` without a browser; returns the redirect URL. */
  authorizeAs(authorizeUrl: string, upn: string): string {
    const url = new URL(authorizeUrl);
    const tenant = url.pathname.split('/')[1]!;
    const params = url.searchParams;
    this.validateAuthorize(params, tenant);
    const user = this.ctx.directory.user(upn);
    if (!user || user.shared) throw new Error(`sandbox: no user ${upn} can sign in`);
    return this.issueCode(params, user.upn);
  }

  /** Sandbox-only: approve a device code as `upn`. */
  approveDeviceCode(userCode: string, upn: string, decline = false): void {
    const d = [...this.devices.values()].find((x) => x.userCode === userCode.toUpperCase());
    if (!d) throw new Error(`sandbox: unknown user code ${userCode}`);
    const user = this.ctx.directory.user(upn);
    if (!user || user.shared) throw new Error(`sandbox: no user ${upn} can sign in`);
    d.status = decline ? 'declined' : 'approved';
    d.upn = user.upn;
  }

  private async authorizePage(req: IncomingMessage, res: ServerResponse, url: URL, tenant: string, step: 'login' | 'consent' | undefined): Promise<void> {
    if (!step) {
      let app: DirApp;
      try {
        app = this.validateAuthorize(url.searchParams, tenant);
      } catch (err) {
        if (err instanceof AadError) return html(res, 400, renderPage('Sign in', `<h1>Sorry, but we’re having trouble signing you in.</h1><p id="error">AADSTS${err.aadsts}: ${escapeHtml(err.text)}</p>`));
        throw err;
      }
      const flow = randomUUID();
      this.signIns.set(flow, { kind: 'authorize', params: url.searchParams, tenant });
      return html(res, 200, loginForm(`${this.baseUrl}/${tenant}/oauth2/v2.0/authorize/login`, flow, app.name, url.searchParams.get('login_hint') ?? ''));
    }
    const form = new URLSearchParams((await readBody(req)).toString('utf8'));
    const flow = this.signIns.get(form.get('flow') ?? '');
    if (!flow) return html(res, 400, renderPage('Sign in', '<h1>This sign-in request has expired.</h1>'));
    return this.continueSignIn(res, form, flow, `${this.baseUrl}/${tenant}/oauth2/v2.0/authorize`);
  }

  private continueSignIn(res: ServerResponse, form: URLSearchParams, flow: PendingSignIn, actionBase: string): void {
    const flowId = form.get('flow')!;
    const app = this.ctx.directory.app(flow.params.get('client_id')!)!.app;
    if (!flow.upn) {
      const user = this.ctx.directory.user(form.get('user') ?? '');
      if (!user || user.shared || user.password !== form.get('password')) {
        return html(res, 200, loginForm(`${actionBase}/login`, flowId, app.name, form.get('user') ?? '', 'Your account or password is incorrect.'));
      }
      if (user.blockedByConditionalAccess) return html(res, 200, renderPage('Sign in', `<h1>You cannot access this right now</h1><p id="error">AADSTS53003: Access has been blocked by Conditional Access policies.</p>`));
      flow.upn = user.upn;
      const scopes = (flow.params.get('scope') ?? '').split(/\s+/).filter(Boolean);
      return html(res, 200, consentForm(`${actionBase}/consent`, flowId, app.name, user.upn, scopes));
    }
    this.signIns.delete(flowId);
    const accept = form.get('accept') !== null;
    if (flow.kind === 'device') {
      this.approveDeviceCode(flow.userCode!, flow.upn, !accept);
      return html(res, 200, renderPage('Signed in', accept ? `<h1 id="done">You have signed in to the ${escapeHtml(app.name)} application on your device.</h1><p>You may now close this window.</p>` : '<h1 id="done">You declined the request.</h1>'));
    }
    if (!accept) {
      const target = new URL(flow.params.get('redirect_uri') ?? app.redirectUris[0]!);
      target.searchParams.set('error', 'access_denied');
      target.searchParams.set('error_description', 'The user has denied access to the scope requested by the client application.');
      if (flow.params.get('state') !== null) target.searchParams.set('state', flow.params.get('state')!);
      res.writeHead(302, { location: target.toString() });
      res.end();
      return;
    }
    if (!app.consented) {
      const target = new URL(flow.params.get('redirect_uri') ?? app.redirectUris[0]!);
      target.searchParams.set('error', 'consent_required');
      target.searchParams.set('error_description', `AADSTS65001: The user or administrator has not consented to use the application with ID '${app.clientId}' named '${app.name}'.`);
      if (flow.params.get('state') !== null) target.searchParams.set('state', flow.params.get('state')!);
      res.writeHead(302, { location: target.toString() });
      res.end();
      return;
    }
    res.writeHead(302, { location: this.issueCode(flow.params, flow.upn) });
    res.end();
  }

  private async deviceLoginPage(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const action = `${this.baseUrl}/devicelogin`;
    if (req.method !== 'POST') return html(res, 200, codeForm(action));
    const form = new URLSearchParams((await readBody(req)).toString('utf8'));
    const flowId = form.get('flow');
    if (flowId) {
      const flow = this.signIns.get(flowId);
      if (!flow) return html(res, 400, renderPage('Sign in', '<h1>This sign-in request has expired.</h1>'));
      return this.continueSignIn(res, form, flow, action);
    }
    const code = (form.get('code') ?? '').trim().toUpperCase();
    const d = [...this.devices.values()].find((x) => x.userCode === code && x.status === 'pending' && x.expiresAt > this.ctx.now());
    if (!d) return html(res, 200, codeForm(action, "That code didn't work. Check the code and try again."));
    const flow = randomUUID();
    const params = new URLSearchParams({ client_id: d.clientId, scope: d.scopes.join(' ') });
    this.signIns.set(flow, { kind: 'device', params, tenant: d.tenant, userCode: d.userCode });
    const app = this.ctx.directory.app(d.clientId)!.app;
    return html(res, 200, loginForm(`${action}`, flow, app.name, ''));
  }

  // ---------- admin API ----------

  private async admin(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const path = url.pathname.slice('/sandbox/admin/'.length).split('/').map(decodeURIComponent);
    const body = req.method === 'POST' ? await readBody(req) : Buffer.alloc(0);
    const input = body.length ? JSON.parse(body.toString('utf8')) : {};
    const dir = this.ctx.directory;
    const [what, id, action] = path;
    if (what === 'faults') {
      if (req.method === 'DELETE') this.ctx.faults.clear();
      else if (req.method === 'POST') this.ctx.faults.add(input as Fault);
      return json(res, 200, { faults: this.ctx.faults.list() });
    }
    if (what === 'stats') return json(res, 200, this.stats);
    if (what === 'outbound') {
      return json(res, 200, this.ctx.mail.outbound().map((r) => ({ ...r, raw: r.raw.toString('utf8') })));
    }
    if (what === 'mailboxes' && id) {
      if (req.method === 'POST') {
        const m = this.ctx.mail.append(id, String(input.raw ?? ''));
        return json(res, 200, { uid: m.uid });
      }
      const box = this.ctx.mail.mailbox(id);
      return json(res, 200, { uidValidity: box.uidValidity, messages: box.messages.map((m) => ({ uid: m.uid, flags: [...m.flags], raw: m.raw.toString('utf8') })) });
    }
    if (what === 'device' && id === 'approve') {
      this.approveDeviceCode(String(input.user_code), String(input.upn), input.decline === true);
      return json(res, 200, { ok: true });
    }
    if (what === 'users' && id) {
      const user = dir.user(id);
      if (!user) return json(res, 404, { error: `no user ${id}` });
      if (action === 'password-changed') user.tokensValidFrom = this.ctx.now() + 1;
      else if (action === 'inactive') user.refreshTokensInactive = true;
      else Object.assign(user, input);
      return json(res, 200, user);
    }
    if (what === 'tenants' && id) {
      const t = dir.tenant(id);
      if (!t) return json(res, 404, { error: `no tenant ${id}` });
      for (const k of ['smtpAuthDisabled', 'securityDefaults', 'ropcEnabled'] as const) if (typeof input[k] === 'boolean') t[k] = input[k];
      return json(res, 200, { id: t.id, smtpAuthDisabled: t.smtpAuthDisabled, securityDefaults: t.securityDefaults });
    }
    if (what === 'apps' && id) {
      const found = dir.app(id);
      if (!found) return json(res, 404, { error: `no app ${id}` });
      Object.assign(found.app, input);
      return json(res, 200, { clientId: found.app.clientId });
    }
    if (what === 'service-principals' && id) {
      const sp = dir.servicePrincipalFor(id);
      if (!sp) return json(res, 404, { error: `no service principal for ${id}` });
      Object.assign(sp, input);
      return json(res, 200, sp);
    }
    if (what === 'options') {
      if (typeof input.slowDown === 'boolean') this.options.slowDown = input.slowDown;
      return json(res, 200, this.options);
    }
    return json(res, 404, { error: 'unknown admin call' });
  }
}

function consentedFor(app: DirApp, resource: ScopeResource): string[] {
  return app.delegated
    .filter((d) => (resource === 'graph' ? d.startsWith(GRAPH_AUD) : OUTLOOK_HOSTS.some((h) => d.startsWith(h))))
    .map((d) => d.split('/').pop()!);
}

function invalidScope(scope: string): AadError {
  return new AadError(400, 'invalid_scope', 70011, `The provided value for the input parameter 'scope' is not valid. The scope ${scope} is not valid.`);
}

function consentRequired(app: DirApp): AadError {
  return new AadError(400, 'invalid_grant', 65001, `The user or administrator has not consented to use the application with ID '${app.clientId}' named '${app.name}'. Send an interactive authorization request for this user and resource.`, 'consent_required');
}

/** Entra's loopback rule: for http://localhost / 127.0.0.1 the port is ignored, the path must match. */
function redirectMatches(candidate: string, registered: string[]): boolean {
  let c: URL;
  try {
    c = new URL(candidate);
  } catch {
    return false;
  }
  const loopback = (u: URL) => u.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(u.hostname);
  return registered.some((r) => {
    const u = new URL(r);
    if (loopback(u) && loopback(c)) return (u.pathname === c.pathname || (u.pathname === '/' && c.pathname === '/')) && (u.hostname === c.hostname || (u.hostname === 'localhost' && c.hostname === '127.0.0.1'));
    return u.toString() === c.toString();
  });
}

function readBody(req: IncomingMessage, limit = 1024 * 1024): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= limit) chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

function html(res: ServerResponse, status: number, page: string): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'x-frame-options': 'DENY', 'content-security-policy': "default-src 'self'; style-src 'unsafe-inline'" });
  res.end(page);
}

function loginForm(action: string, flow: string, appName: string, user: string, error?: string): string {
  return renderPage(
    'Sign in to your account',
    `<h1>Sign in</h1><p>to continue to <b>${escapeHtml(appName)}</b> (relay365 sandbox)</p>
${error ? `<p id="error" role="alert">${escapeHtml(error)}</p>` : ''}
<form method="post" action="${escapeHtml(action)}">
<input type="hidden" name="flow" value="${escapeHtml(flow)}">
<label for="user">Email</label><input id="user" name="user" type="email" autocomplete="username" value="${escapeHtml(user)}" required autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button id="submit" type="submit">Sign in</button>
</form>`,
  );
}

function consentForm(action: string, flow: string, appName: string, upn: string, scopes: string[]): string {
  return renderPage(
    'Permissions requested',
    `<h1>Permissions requested</h1><p><b>${escapeHtml(appName)}</b> wants to access <b>${escapeHtml(upn)}</b>:</p>
<ul>${scopes.map((s) => `<li>${escapeHtml(s)}</li>`).join('')}</ul>
<form method="post" action="${escapeHtml(action)}">
<input type="hidden" name="flow" value="${escapeHtml(flow)}">
<button id="accept" name="accept" value="1" type="submit">Accept</button>
<button id="decline" name="decline" value="1" type="submit">Cancel</button>
</form>`,
  );
}

function codeForm(action: string, error?: string): string {
  return renderPage(
    'Enter code',
    `<h1>Enter code</h1><p>Enter the code displayed on your app or device.</p>
${error ? `<p id="error" role="alert">${escapeHtml(error)}</p>` : ''}
<form method="post" action="${escapeHtml(action)}">
<label for="code">Code</label><input id="code" name="code" autocomplete="off" required autofocus>
<button id="submit" type="submit">Next</button>
</form>`,
  );
}
