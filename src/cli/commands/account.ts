import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { OAuthError, Relay365Error, UsageError } from '../../core/errors.js';
import { registerSecret } from '../../core/redact.js';
import {
  CLOUDS,
  authorizationCode,
  checkCustomScopes,
  clientCredentials,
  deviceCode,
  exportSaslXoauth2,
  flowContextFor,
  importTokenFile,
  openTokenManager,
  parsePurposes,
  passwordGrant,
  resourceGroup,
  scopeFor,
  storeGrant,
  type AccountRecord,
  type TokenPurpose,
  type TokenSet,
} from '../../oauth/index.js';
import type { CliContext } from '../context.js';

interface AddOptions {
  tenant: string;
  clientId: string;
  flow?: string;
  clientSecret?: string;
  clientSecretEnv?: string;
  clientSecretFile?: string;
  certificate?: string;
  key?: string;
  keyPassphraseEnv?: string;
  certAlg?: string;
  scopes: string;
  scope?: string;
  mailbox?: string;
  cloud: string;
  authorityHost?: string;
  tokenEndpoint?: string;
  deviceEndpoint?: string;
  authorizeEndpoint?: string;
  redirectUri?: string;
  caFile?: string;
  username?: string;
  passwordEnv?: string;
  browser: boolean;
  json?: boolean;
}

/** Reads a secret from the terminal without echoing it. */
async function promptHidden(question: string, ctx: CliContext): Promise<string> {
  const stdin = process.stdin;
  // Echo goes off before the question appears: a secret pasted the moment the prompt shows must not
  // reach the terminal.
  stdin.setRawMode?.(true);
  ctx.err.write(question);
  return new Promise((resolve, reject) => {
    let value = '';
    stdin.resume();
    const onData = (d: Buffer) => {
      for (const ch of d.toString('utf8')) {
        if (ch === '\r' || ch === '\n') {
          stdin.setRawMode?.(false);
          stdin.pause();
          stdin.off('data', onData);
          ctx.err.write('\n');
          return resolve(value);
        }
        if (ch === '\u0003') {
          stdin.setRawMode?.(false);
          stdin.off('data', onData);
          return reject(new UsageError('Cancelled.'));
        }
        if (ch === '\u007f') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on('data', onData);
  });
}

function readSecret(opts: AddOptions, ctx: CliContext): string | undefined {
  if (opts.clientSecretEnv) {
    const v = ctx.env[opts.clientSecretEnv];
    if (!v) throw new Relay365Error('SECRET_UNAVAILABLE', `Environment variable ${opts.clientSecretEnv} (--client-secret-env) is empty or not set.`);
    return v;
  }
  if (opts.clientSecretFile) {
    try {
      return readFileSync(opts.clientSecretFile, 'utf8').trim();
    } catch (e) {
      throw new Relay365Error('SECRET_UNAVAILABLE', `Cannot read --client-secret-file ${opts.clientSecretFile}: ${(e as Error).message}`);
    }
  }
  if (opts.clientSecret) {
    ctx.warn('--client-secret puts the secret in the process list; prefer --client-secret-env or --client-secret-file.');
    return opts.clientSecret;
  }
  return undefined;
}

function openBrowser(url: string): boolean {
  if (!process.env.DISPLAY && !process.env.WAYLAND_DISPLAY && process.platform === 'linux') return false;
  const cmd = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'cmd' : 'xdg-open';
  const args = process.platform === 'win32' ? ['/c', 'start', '', url] : [url];
  try {
    spawn(cmd, args, { stdio: 'ignore', detached: true }).on('error', () => {}).unref();
    return true;
  } catch {
    return false;
  }
}

/** Runs the interactive/non-interactive flow for a record and stores the result. */
async function signIn(rec: AccountRecord, ctx: CliContext, opts: { json?: boolean; browser?: boolean; username?: string; password?: string }): Promise<TokenSet> {
  const flow = flowContextFor(rec);
  const cloud = CLOUDS[rec.cloud ?? 'global'] ?? CLOUDS.global!;
  const group = resourceGroup(rec.purposes[0] ?? 'smtp');
  const scope = rec.scope ?? scopeFor(group, rec.purposes, rec.flow === 'client-credentials', cloud);
  switch (rec.flow) {
    case 'client-credentials':
      return clientCredentials(flow, scope);
    case 'password':
      if (!opts.username || !opts.password) throw new UsageError('--flow password needs --username and --password-env (ROPC is discouraged: it fails with MFA and Conditional Access).');
      return passwordGrant(flow, opts.username, opts.password, scope);
    case 'browser': {
      const pasted = !process.stdin.isTTY
        ? undefined
        : new Promise<string>((resolve) => {
            const rl = createInterface({ input: process.stdin });
            rl.once('line', (l) => {
              rl.close();
              resolve(l);
            });
          });
      return authorizationCode(flow, {
        scope,
        redirectUri: rec.redirectUri,
        loginHint: rec.email,
        pastedRedirect: pasted,
        onAuthorizeUrl: (url) => {
          if (opts.json) ctx.print(JSON.stringify({ authorize_url: url }));
          else {
            const opened = opts.browser !== false && openBrowser(url);
            ctx.err.write(`${opened ? 'A browser window was opened. If it did not appear, open' : 'Open'} this URL to sign in:\n\n  ${url}\n\nWithout a browser on this machine (SSH), sign in elsewhere and paste the final redirect URL here.\n`);
          }
        },
      });
    }
    default:
      return deviceCode(flow, scope, (p) => {
        if (opts.json) ctx.print(JSON.stringify({ verification_uri: p.verification_uri, user_code: p.user_code, expires_in: p.expires_in, message: p.message }));
        else ctx.err.write(`${p.message ?? `To sign in, open ${p.verification_uri} and enter the code ${p.user_code}.`}\n`);
      });
  }
}

export function register(program: Command, ctx: CliContext): void {
  const manager = () => openTokenManager({ stateDir: ctx.stateDir(), caFile: ctx.env.RELAY365_CA_FILE, env: ctx.env });
  const account = program.command('account').description('Add, list, show, re-authorize and remove accounts (OAuth settings and tokens)');

  account
    .command('add')
    .argument('<email>', 'mailbox address (for app-only access: the mailbox to act on, or a label)')
    .description('Run an OAuth flow and store the account')
    .requiredOption('--tenant <tenant>', 'tenant id or verified domain (organizations/common/consumers for delegated flows)')
    .requiredOption('--client-id <id>', 'application (client) id')
    .option('--flow <flow>', 'device | browser | client-credentials | password (ROPC, discouraged); default: device, or client-credentials when a secret/certificate is given')
    .option('--client-secret <secret>', 'client secret VALUE (visible in ps: prefer --client-secret-env/--client-secret-file)')
    .option('--client-secret-env <var>', 'read the client secret from this environment variable')
    .option('--client-secret-file <file>', 'read the client secret from this file')
    .option('--certificate <file>', 'certificate credential: PEM (cert, optionally with key) or PFX/P12')
    .option('--key <file>', 'private key PEM for --certificate')
    .option('--key-passphrase-env <var>', 'environment variable holding the key or PFX passphrase')
    .option('--cert-alg <alg>', 'PS256 (x5t#S256, default) or RS256 (x5t)', 'PS256')
    .option('--scopes <list>', 'smtp,imap,pop,graph', 'smtp')
    .option('--scope <scopes>', 'explicit OAuth scope string instead of the presets (custom servers)')
    .option('--mailbox <address>', 'mailbox for SASL user= (shared mailbox, or the target of app-only access)')
    .option('--cloud <name>', `national cloud: ${Object.keys(CLOUDS).join(', ')}`, 'global')
    .option('--authority-host <url>', 'identity platform host, e.g. https://login.microsoftonline.com')
    .option('--token-endpoint <url>', 'full token endpoint override')
    .option('--device-endpoint <url>', 'full device-code endpoint override')
    .option('--authorize-endpoint <url>', 'full authorize endpoint override')
    .option('--redirect-uri <uri>', 'fixed loopback redirect URI for --flow browser (e.g. http://localhost:8001/myapp/)')
    .option('--ca-file <file>', 'extra CA certificate (PEM) for the identity platform')
    .option('--username <upn>', 'user for --flow password')
    .option('--password-env <var>', 'environment variable holding the password for --flow password')
    .option('--no-browser', 'do not try to open a browser (print the URL)')
    .option('--json', 'machine-readable prompts and result')
    .action(async (email: string, opts: AddOptions) => {
      let secret = readSecret(opts, ctx);
      // A confidential flow without a secret source asks on the terminal (no echo, nothing in ps).
      if (!secret && !opts.certificate && opts.flow === 'client-credentials' && process.stdin.isTTY) secret = await promptHidden('Client secret (input hidden): ', ctx);
      if (opts.scope) checkCustomScopes(opts.scope.split(/\s+/).filter(Boolean));
      const purposes: TokenPurpose[] = parsePurposes(opts.scopes);
      const cloud = CLOUDS[opts.cloud];
      if (!cloud) throw new UsageError(`--cloud must be one of ${Object.keys(CLOUDS).join(', ')}`);
      const flow = (opts.flow ?? (secret || opts.certificate ? 'client-credentials' : 'device')) as AccountRecord['flow'];
      if (!['device', 'browser', 'client-credentials', 'password'].includes(flow)) throw new UsageError(`--flow must be device, browser, client-credentials or password, got "${flow}"`);
      if (flow === 'client-credentials' && !secret && !opts.certificate) throw new UsageError('--flow client-credentials needs a client secret or --certificate.');
      const passphrase = opts.keyPassphraseEnv ? ctx.env[opts.keyPassphraseEnv] : undefined;
      registerSecret(secret);
      registerSecret(passphrase);
      const now = new Date().toISOString();
      const rec: AccountRecord = {
        email: email.toLowerCase(),
        mailbox: opts.mailbox?.toLowerCase(),
        tenant: opts.tenant,
        clientId: opts.clientId,
        flow,
        authorityHost: opts.authorityHost ?? cloud.authorityHost,
        endpoints: opts.tokenEndpoint || opts.deviceEndpoint || opts.authorizeEndpoint ? { token: opts.tokenEndpoint, device: opts.deviceEndpoint, authorize: opts.authorizeEndpoint } : undefined,
        cloud: opts.cloud,
        caFile: opts.caFile,
        purposes,
        scope: opts.scope,
        redirectUri: opts.redirectUri,
        credential: opts.certificate
          ? { type: 'certificate', certFile: opts.certificate, keyFile: opts.key, keyPassphrase: passphrase, alg: opts.certAlg === 'RS256' ? 'RS256' : 'PS256' }
          : secret
            ? { type: 'secret', secret }
            : { type: 'none' },
        state: 'valid',
        createdAt: now,
        updatedAt: now,
      };
      const set = await signIn(rec, ctx, { json: opts.json, browser: opts.browser, username: opts.username, password: opts.passwordEnv ? ctx.env[opts.passwordEnv] : undefined });
      await storeGrant(manager(), rec, set, 'add');
      if (opts.json) ctx.print(JSON.stringify({ added: rec.email, flow: rec.flow, purposes: rec.purposes, expires_at: new Date(set.expiresAt).toISOString(), refresh_token: set.refreshToken ? 'stored' : 'none' }));
      else ctx.print(`Account ${rec.email} added (${rec.flow}); token valid until ${new Date(set.expiresAt).toISOString()}${set.refreshToken ? '; refresh token stored' : ''}.`);
    });

  account
    .command('list')
    .description('List accounts with their token state')
    .option('--json', 'JSON output')
    .action(async (opts: { json?: boolean }) => {
      const list = await manager().accounts();
      if (opts.json) return ctx.printJson(list);
      if (list.length === 0) return ctx.print('No accounts. Add one with `relay365 account add EMAIL --tenant T --client-id ID`.');
      for (const a of list) {
        ctx.print(`${a.email.padEnd(40)} ${a.state.padEnd(13)} ${a.flow.padEnd(18)} ${a.expiresInSeconds !== undefined ? `${Math.round(a.expiresInSeconds / 60)} min left` : 'no token'}${a.fix ? `  → ${a.fix}` : ''}`);
      }
    });

  account
    .command('show')
    .argument('<email>')
    .description('Show one account (secrets masked)')
    .option('--json', 'JSON output')
    .action(async (email: string, opts: { json?: boolean }) => {
      const a = (await manager().accounts()).find((x) => x.email === email.toLowerCase());
      if (!a) throw new Relay365Error('ACCOUNT_NOT_FOUND', `No account ${email}.`);
      if (opts.json) return ctx.printJson(a);
      ctx.print(Object.entries(a).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join('\n'));
    });

  account
    .command('remove')
    .argument('<email>')
    .description('Remove an account and its tokens from the store')
    .action(async (email: string) => {
      if (!(await manager().store.remove(email))) throw new Relay365Error('ACCOUNT_NOT_FOUND', `No account ${email}.`);
      ctx.print(`Removed ${email}.`);
    });

  account
    .command('reauth')
    .argument('<email>')
    .description('Sign in again with the stored settings (after AADSTS50173, 700082, MFA changes …)')
    .option('--no-browser', 'do not try to open a browser')
    .option('--json', 'machine-readable prompts and result')
    .action(async (email: string, opts: { json?: boolean; browser: boolean }) => {
      const m = manager();
      const rec = await m.store.get(email);
      if (!rec) throw new Relay365Error('ACCOUNT_NOT_FOUND', `No account ${email}.`);
      if (rec.flow === 'imported') rec.flow = rec.redirectUri ? 'browser' : 'device';
      const set = await signIn(rec, ctx, { json: opts.json, browser: opts.browser });
      await storeGrant(m, rec, set, 'reauth');
      if (opts.json) ctx.print(JSON.stringify({ reauthorized: rec.email, expires_at: new Date(set.expiresAt).toISOString() }));
      else ctx.print(`Account ${rec.email} re-authorized.`);
    });

  const token = program
    .command('token')
    .description('Print a valid access token (refreshing if needed), or import/export token files')
    .argument('[email]', 'account')
    .option('--protocol <p>', 'smtp | imap | pop | graph', 'smtp')
    .option('--xoauth2', 'print the base64 SASL XOAUTH2 initial response instead')
    .option('--decode', 'print the JWT claims instead of the token')
    .option('--min-validity <seconds>', 'refresh if fewer seconds are left', '300')
    .action(async (email: string | undefined, opts: { protocol: string; xoauth2?: boolean; decode?: boolean; minValidity: string }) => {
      if (!email) {
        token.help();
        return;
      }
      const purpose = parsePurposes(opts.protocol)[0]!;
      const t = await manager().getAccessToken(email, { purpose, minValiditySeconds: Number(opts.minValidity) });
      if (opts.decode) {
        const parts = t.token.split('.');
        if (parts.length !== 3) throw new OAuthError('OAUTH_FLOW', 'This access token is opaque (not a JWT), so it has no readable claims.');
        const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
        ctx.printJson({ ...claims, _expires_in_seconds: Math.round((t.expiresAt - Date.now()) / 1000) });
      } else if (opts.xoauth2) {
        ctx.print(Buffer.from(`user=${t.username}\x01auth=Bearer ${t.token}\x01\x01`).toString('base64'));
      } else ctx.print(t.token);
    });

  token
    .command('import')
    .argument('<file>', 'sasl-xoauth2 token file (JSON) or SMAIL smail_refresh_token.ini')
    .description('Import a refresh token from sasl-xoauth2 or SMAIL')
    .option('--email <address>', 'account address (default: SMAIL UserID or the token file name)')
    .option('--sasl-conf <file>', 'sasl-xoauth2.conf with client_id/client_secret/token_endpoint', undefined)
    .option('--scopes <list>', 'smtp,imap,pop,graph')
    .option('--ca-file <file>', 'extra CA for the token endpoint')
    .option('--json', 'JSON output')
    .action(async (file: string, opts: { email?: string; saslConf?: string; scopes?: string; caFile?: string; json?: boolean }) => {
      const rec = importTokenFile(file, { email: opts.email, saslConf: opts.saslConf, caFile: opts.caFile, purposes: opts.scopes ? parsePurposes(opts.scopes) : undefined });
      await manager().store.put(rec);
      if (opts.json) ctx.print(JSON.stringify({ imported: rec.email, tenant: rec.tenant, client_id: rec.clientId }));
      else ctx.print(`Imported ${rec.email} (tenant ${rec.tenant}). Check it with \`relay365 token ${rec.email} --decode\`.`);
    });

  token
    .command('export')
    .argument('<email>')
    .description('Write the account as a sasl-xoauth2 token file to stdout')
    .requiredOption('--format <format>', 'sasl-xoauth2')
    .action(async (email: string, opts: { format: string }) => {
      if (opts.format !== 'sasl-xoauth2') throw new UsageError('--format must be sasl-xoauth2');
      const m = manager();
      await m.getAccessToken(email, { purpose: 'smtp' });
      const rec = await m.store.get(email);
      ctx.out.write(exportSaslXoauth2(rec!));
    });
}
