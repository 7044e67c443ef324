/**
 * The sandbox directory: tenants, users and mailboxes, app registrations, Exchange service
 * principals. Every error the sandbox returns arises from this state (fact sheet §1.8, §4.3, §7),
 * and the admin endpoint flips its switches at run time.
 *
 * Built-in default (used when no directory file is given; printed by `relay365 sandbox`):
 *   tenant  contoso.onmicrosoft.com (also contoso.com), id 7c8f0d2e-1a2b-4c3d-8e9f-0a1b2c3d4e5f
 *   users   alice@contoso.onmicrosoft.com  password alice-Passw0rd!   (SMTP AUTH enabled)
 *           bob@contoso.onmicrosoft.com    password bob-Passw0rd!     (SendAs + FullAccess on info@)
 *           carol@contoso.onmicrosoft.com  password carol-Passw0rd!   (SMTP AUTH disabled for the mailbox)
 *           info@contoso.onmicrosoft.com   shared mailbox (no sign-in)
 *   apps    relay365-public        11111111-0000-4000-8000-000000000001  public client flows allowed, delegated mail scopes consented
 *           relay365-confidential  11111111-0000-4000-8000-000000000002  secret "sandbox-confidential-secret", redirect http://localhost, http://localhost:8001/myapp/
 *           relay365-daemon        11111111-0000-4000-8000-000000000003  secret "sandbox-daemon-secret" + a generated certificate;
 *                                  application SMTP.SendAsApp IMAP.AccessAsApp POP.AccessAsApp Mail.Send Mail.ReadWrite (admin consented);
 *                                  Exchange SP 22222222-0000-4000-8000-000000000003 with FullAccess on alice@ and info@
 *           relay365-expired       11111111-0000-4000-8000-000000000004  secret "sandbox-expired-secret" (expired)
 *           relay365-noconsent     11111111-0000-4000-8000-000000000005  public, delegated scopes NOT consented
 *           relay365-nosp          11111111-0000-4000-8000-000000000006  secret "sandbox-nosp-secret", application permissions but no Exchange SP
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

export interface DirUser {
  upn: string;
  oid: string;
  password?: string;
  /** Shared mailboxes cannot sign in. */
  shared?: boolean;
  /** Per-mailbox SMTP AUTH switch: true disabled, false enabled, null/undefined follows the tenant. */
  smtpAuthDisabled?: boolean | null;
  /** Mailboxes this user may send as. */
  sendAs?: string[];
  /** Mailboxes this user has FullAccess on. */
  fullAccess?: string[];
  mfaRequired?: boolean;
  blockedByConditionalAccess?: boolean;
  /** Epoch ms; refresh tokens issued before it are revoked (password change → AADSTS50173). */
  tokensValidFrom?: number;
  /** Refresh tokens of this user fail with AADSTS700082 (90-day inactivity). */
  refreshTokensInactive?: boolean;
  /** Graph: the mailbox has no Exchange Online licence (404 MailboxNotEnabledForRESTAPI). */
  noMailbox?: boolean;
}

export interface DirSecret {
  id: string;
  value: string;
  /** ISO date; past dates make AADSTS7000222. */
  expiresAt?: string;
}

export interface DirApp {
  clientId: string;
  name: string;
  secrets: DirSecret[];
  /** PEM certificates registered as credentials. */
  certificates: string[];
  redirectUris: string[];
  allowPublicClientFlows: boolean;
  /** Delegated scopes the app may request, full form, e.g. https://outlook.office.com/SMTP.Send. */
  delegated: string[];
  /** Application roles, e.g. SMTP.SendAsApp, IMAP.AccessAsApp, POP.AccessAsApp, Mail.Send. */
  application: string[];
  /** Consent granted (user/admin) for the permissions above. */
  consented: boolean;
}

export interface DirServicePrincipal {
  appId: string;
  /** Enterprise Application object id; the `oid` of app-only tokens. */
  objectId: string;
  /** Registered in Exchange with New-ServicePrincipal. */
  exchangeRegistered: boolean;
  fullAccess: string[];
  sendAs: string[];
}

export interface DirTenant {
  id: string;
  domains: string[];
  smtpAuthDisabled: boolean;
  securityDefaults: boolean;
  ropcEnabled: boolean;
  users: DirUser[];
  apps: DirApp[];
  servicePrincipals: DirServicePrincipal[];
}

export type Identity =
  | { kind: 'user'; upn: string; oid: string; tid: string }
  | { kind: 'app'; appId: string; oid: string; tid: string };

export type SmtpAuthState = 'enabled' | 'disabled-tenant' | 'disabled-mailbox' | 'security-defaults';

const lower = (s: string) => s.toLowerCase();

export class Directory {
  constructor(readonly tenants: DirTenant[]) {}

  static fromObject(input: unknown): Directory {
    const obj = (input ?? {}) as { tenants?: Partial<DirTenant>[] };
    if (!Array.isArray(obj.tenants) || obj.tenants.length === 0) throw new Error('sandbox directory: `tenants` must be a non-empty list');
    return new Directory(
      obj.tenants.map((t, i) => {
        if (!t.id || !Array.isArray(t.domains)) throw new Error(`sandbox directory: tenants[${i}] needs id and domains`);
        return {
          id: t.id,
          domains: t.domains.map(lower),
          smtpAuthDisabled: t.smtpAuthDisabled ?? false,
          securityDefaults: t.securityDefaults ?? false,
          ropcEnabled: t.ropcEnabled ?? true,
          users: (t.users ?? []).map((u) => ({ ...u, upn: lower(u.upn), oid: u.oid ?? randomUUID(), sendAs: (u.sendAs ?? []).map(lower), fullAccess: (u.fullAccess ?? []).map(lower) })),
          apps: (t.apps ?? []).map((a: Partial<DirApp>) => ({
            clientId: String(a.clientId),
            name: a.name ?? String(a.clientId),
            secrets: a.secrets ?? [],
            certificates: a.certificates ?? [],
            redirectUris: a.redirectUris ?? [],
            allowPublicClientFlows: a.allowPublicClientFlows ?? false,
            delegated: a.delegated ?? [],
            application: a.application ?? [],
            consented: a.consented ?? true,
          })),
          servicePrincipals: (t.servicePrincipals ?? []).map((s: Partial<DirServicePrincipal>) => ({
            appId: String(s.appId),
            objectId: s.objectId ?? randomUUID(),
            exchangeRegistered: s.exchangeRegistered ?? true,
            fullAccess: (s.fullAccess ?? []).map(lower),
            sendAs: (s.sendAs ?? []).map(lower),
          })),
        };
      }),
    );
  }

  static fromFile(path: string): Directory {
    return Directory.fromObject(parse(readFileSync(path, 'utf8')));
  }

  /** Tenant by GUID or verified domain. */
  tenant(idOrDomain: string): DirTenant | undefined {
    const k = lower(idOrDomain);
    return this.tenants.find((t) => t.id === k || t.domains.includes(k));
  }

  tenantOfAddress(address: string): DirTenant | undefined {
    const domain = lower(address.split('@')[1] ?? '');
    return this.tenants.find((t) => t.domains.includes(domain));
  }

  user(address: string): DirUser | undefined {
    const a = lower(address);
    for (const t of this.tenants) {
      const u = t.users.find((x) => x.upn === a);
      if (u) return u;
    }
    return undefined;
  }

  app(clientId: string): { app: DirApp; tenant: DirTenant } | undefined {
    for (const t of this.tenants) {
      const app = t.apps.find((a) => a.clientId === clientId);
      if (app) return { app, tenant: t };
    }
    return undefined;
  }

  servicePrincipalFor(appId: string): DirServicePrincipal | undefined {
    for (const t of this.tenants) {
      const sp = t.servicePrincipals.find((s) => s.appId === appId);
      if (sp) return sp;
    }
    return undefined;
  }

  smtpAuthState(mailbox: string): SmtpAuthState {
    const tenant = this.tenantOfAddress(mailbox);
    const user = this.user(mailbox);
    if (tenant?.securityDefaults) return 'security-defaults';
    if (user?.smtpAuthDisabled === true) return 'disabled-mailbox';
    if (user?.smtpAuthDisabled === false) return 'enabled';
    return tenant?.smtpAuthDisabled ? 'disabled-tenant' : 'enabled';
  }

  /** Full access to a mailbox: its owner, a FullAccess grant, or an SP grant. */
  hasFullAccess(identity: Identity, mailbox: string): boolean {
    const m = lower(mailbox);
    if (identity.kind === 'user') {
      if (identity.upn === m) return true;
      return this.user(identity.upn)?.fullAccess?.includes(m) ?? false;
    }
    const sp = this.servicePrincipalFor(identity.appId);
    return !!sp && sp.exchangeRegistered && sp.fullAccess.map(lower).includes(m);
  }

  canSendAs(identity: Identity, from: string): boolean {
    const f = lower(from);
    if (identity.kind === 'user') {
      if (identity.upn === f) return true;
      return this.user(identity.upn)?.sendAs?.includes(f) ?? false;
    }
    const sp = this.servicePrincipalFor(identity.appId);
    if (!sp || !sp.exchangeRegistered) return false;
    return sp.sendAs.map(lower).includes(f) || sp.fullAccess.map(lower).includes(f);
  }

  /** A summary for printing (includes sandbox secrets on purpose: they are test fixtures). */
  describe(): string {
    const lines: string[] = [];
    for (const t of this.tenants) {
      lines.push(`tenant ${t.domains[0]} (${t.id})${t.smtpAuthDisabled ? ' [SMTP AUTH disabled]' : ''}`);
      for (const u of t.users) lines.push(`  user ${u.upn}${u.shared ? ' (shared mailbox)' : `  password ${u.password}`}${u.smtpAuthDisabled ? ' [SMTP AUTH disabled]' : ''}`);
      for (const a of t.apps) {
        const secret = a.secrets.find((s) => !s.expiresAt || Date.parse(s.expiresAt) > Date.now());
        lines.push(`  app  ${a.name}  client_id ${a.clientId}${secret ? `  secret ${secret.value}` : ''}${a.allowPublicClientFlows ? '  (public client flows)' : ''}`);
      }
    }
    return lines.join('\n');
  }
}

export const DEFAULT_TENANT_ID = '7c8f0d2e-1a2b-4c3d-8e9f-0a1b2c3d4e5f';
export const APP_IDS = {
  public: '11111111-0000-4000-8000-000000000001',
  confidential: '11111111-0000-4000-8000-000000000002',
  daemon: '11111111-0000-4000-8000-000000000003',
  expired: '11111111-0000-4000-8000-000000000004',
  noconsent: '11111111-0000-4000-8000-000000000005',
  nosp: '11111111-0000-4000-8000-000000000006',
} as const;

const DELEGATED_MAIL = [
  'https://outlook.office.com/SMTP.Send',
  'https://outlook.office.com/IMAP.AccessAsUser.All',
  'https://outlook.office.com/POP.AccessAsUser.All',
  'https://graph.microsoft.com/Mail.Send',
  'https://graph.microsoft.com/Mail.ReadWrite',
  'offline_access',
  'openid',
  'profile',
  'email',
];

/** The built-in directory (see the header comment). `daemonCertPem` is the daemon app's certificate. */
export function defaultDirectoryObject(daemonCertPem?: string): unknown {
  const d = 'contoso.onmicrosoft.com';
  return {
    tenants: [
      {
        id: DEFAULT_TENANT_ID,
        domains: [d, 'contoso.com'],
        users: [
          { upn: `alice@${d}`, oid: 'aaaaaaaa-0000-4000-8000-00000000a11c', password: 'alice-Passw0rd!' },
          { upn: `bob@${d}`, oid: 'bbbbbbbb-0000-4000-8000-000000000b0b', password: 'bob-Passw0rd!', sendAs: [`info@${d}`], fullAccess: [`info@${d}`] },
          { upn: `carol@${d}`, oid: 'cccccccc-0000-4000-8000-0000000ca401', password: 'carol-Passw0rd!', smtpAuthDisabled: true },
          { upn: `info@${d}`, oid: 'dddddddd-0000-4000-8000-0000000001f0', shared: true },
        ],
        apps: [
          { clientId: APP_IDS.public, name: 'relay365-public', allowPublicClientFlows: true, redirectUris: ['http://localhost', 'https://login.microsoftonline.com/common/oauth2/nativeclient'], delegated: DELEGATED_MAIL },
          {
            clientId: APP_IDS.confidential,
            name: 'relay365-confidential',
            secrets: [{ id: 'b7a1c2d3-0000-4000-8000-00000000c0de', value: 'sandbox-confidential-secret' }],
            redirectUris: ['http://localhost', 'http://localhost:8001/myapp/'],
            delegated: DELEGATED_MAIL,
          },
          {
            clientId: APP_IDS.daemon,
            name: 'relay365-daemon',
            secrets: [{ id: 'd4e5f6a7-0000-4000-8000-00000000da3e', value: 'sandbox-daemon-secret' }],
            certificates: daemonCertPem ? [daemonCertPem] : [],
            application: ['SMTP.SendAsApp', 'IMAP.AccessAsApp', 'POP.AccessAsApp', 'Mail.Send', 'Mail.ReadWrite'],
          },
          { clientId: APP_IDS.expired, name: 'relay365-expired', secrets: [{ id: 'e0000000-0000-4000-8000-00000000e0e0', value: 'sandbox-expired-secret', expiresAt: '2024-01-01T00:00:00Z' }], application: ['SMTP.SendAsApp'] },
          { clientId: APP_IDS.noconsent, name: 'relay365-noconsent', allowPublicClientFlows: true, redirectUris: ['http://localhost'], delegated: DELEGATED_MAIL, consented: false },
          { clientId: APP_IDS.nosp, name: 'relay365-nosp', secrets: [{ id: 'f0000000-0000-4000-8000-00000000f0f0', value: 'sandbox-nosp-secret' }], application: ['SMTP.SendAsApp', 'IMAP.AccessAsApp', 'POP.AccessAsApp'] },
        ],
        servicePrincipals: [{ appId: APP_IDS.daemon, objectId: '22222222-0000-4000-8000-000000000003', fullAccess: [`alice@${d}`, `info@${d}`], sendAs: [] }],
      },
    ],
  };
}
