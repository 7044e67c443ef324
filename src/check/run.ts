/**
 * `relay365 check`: walks one account through every stage of a connection — configuration, DNS,
 * TCP, TLS, greeting and capabilities, token, token claims, AUTH, mailbox access / MAIL FROM, and
 * optionally a test message — and says for the first failure what it means and how to fix it.
 *
 * The SMTP, IMAP and POP3 sessions are scripted over ./../fetch/line-socket.ts rather than driven
 * through nodemailer or imapflow: a diagnostic has to time each stage separately, stop before the
 * token is sent over an unverified connection, and show every raw line, which those libraries hide.
 */
import { promises as dns } from 'node:dns';
import { performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import { Relay365Error, OAuthError, TransportError } from '../core/errors.js';
import { redactText, registerSecret } from '../core/redact.js';
import { xoauth2 } from '../sasl/index.js';
import { loadUndici, makeAgent } from '../oauth/http.js';
import type { TokenManager, AccountSummary } from '../oauth/index.js';
import type { AccessToken, TokenPurpose } from '../oauth/types.js';
import { LineSocket } from '../fetch/line-socket.js';
import { trustedCas } from '../core/tls.js';
import { ADVICE, explainAadstsCode, explainServerReply, fromCatalogue } from './advice.js';
import { explainReply } from '../core/catalogue.js';
import { judgeClaims } from './claims.js';
import type { CheckProtocol, CheckReport, CheckStep, Explanation, ProtocolReport, StepId } from './types.js';

export interface Endpoint {
  host: string;
  port: number;
  tls: 'starttls' | 'implicit';
}

export interface CheckOptions {
  account: string;
  protocols: CheckProtocol[];
  /** SASL user= / Graph /users/{id}; default: the account's mailbox. */
  mailbox?: string;
  tokens: TokenManager;
  /** Per-protocol endpoints (after --host/--port/--tls overrides). */
  endpoints: Partial<Record<Exclude<CheckProtocol, 'graph'>, Endpoint>>;
  graphUrl?: string;
  caFile?: string;
  sendTestTo?: string;
  /** The longest wait for any one answer (connect, TLS, a reply, an HTTP response); default 20 s. */
  timeoutMs?: number;
  /** EHLO name. */
  ehloName?: string;
}

export const DEFAULT_ENDPOINTS: Record<Exclude<CheckProtocol, 'graph'>, Endpoint> = {
  smtp: { host: 'smtp.office365.com', port: 587, tls: 'starttls' },
  imap: { host: 'outlook.office365.com', port: 993, tls: 'implicit' },
  pop3: { host: 'outlook.office365.com', port: 995, tls: 'implicit' },
};

const PLANS: Record<CheckProtocol, StepId[]> = {
  smtp: ['configuration', 'dns', 'tcp', 'greeting', 'tls', 'capabilities', 'token', 'claims', 'auth', 'mail-from', 'test-message'],
  imap: ['configuration', 'dns', 'tcp', 'tls', 'greeting', 'capabilities', 'token', 'claims', 'auth', 'mailbox'],
  pop3: ['configuration', 'dns', 'tcp', 'tls', 'greeting', 'capabilities', 'token', 'claims', 'auth', 'mailbox'],
  graph: ['configuration', 'dns', 'tcp', 'tls', 'token', 'claims', 'auth', 'test-message'],
};

const DEFAULT_TIMEOUT_MS = 20_000;

const PURPOSE: Record<CheckProtocol, TokenPurpose> = { smtp: 'smtp', imap: 'imap', pop3: 'pop', graph: 'graph' };

/** Thrown inside a probe to end it after a failed step; the remaining planned steps are skipped. */
class StopProbe extends Error {}

interface Outcome<T> {
  status?: CheckStep['status'];
  detail: string;
  reply?: string;
  explanation?: Explanation;
  value?: T;
}

class Recorder {
  readonly steps: CheckStep[] = [];
  readonly transcript: string[] = [];

  constructor(
    private readonly plan: StepId[],
    readonly protocol: CheckProtocol,
  ) {}

  line = (direction: 'C' | 'S', text: string) => {
    this.transcript.push(`${direction}: ${text}`);
  };

  /** Runs one step; a failure ends the probe unless `continueOnFail` (the claims step: the server's answer is still worth seeing). */
  async step<T>(id: StepId, fn: () => Promise<Outcome<T>>, opts: { continueOnFail?: boolean } = {}): Promise<T> {
    const t0 = performance.now();
    let outcome: Outcome<T>;
    try {
      outcome = await fn();
    } catch (e) {
      outcome = { status: 'fail', detail: redactText((e as Error).message), explanation: explainError(e, this.protocol) };
    }
    const status = outcome.status ?? 'pass';
    this.steps.push({ id, status, durationMs: Math.round(performance.now() - t0), detail: outcome.detail, ...(outcome.reply ? { reply: redactText(outcome.reply) } : {}), ...(outcome.explanation ? { explanation: outcome.explanation } : {}) });
    if (status === 'fail' && !opts.continueOnFail) throw new StopProbe(id);
    return outcome.value as T;
  }

  skip(id: StepId, detail: string): void {
    this.steps.push({ id, status: 'skip', durationMs: 0, detail });
  }

  finish(target: string): ProtocolReport {
    const done = new Set(this.steps.map((s) => s.id));
    const failed = this.steps.some((s) => s.status === 'fail');
    for (const id of this.plan) if (!done.has(id)) this.steps.push({ id, status: 'skip', durationMs: 0, detail: failed ? 'not run: an earlier step failed' : 'not requested' });
    const order = new Map(this.plan.map((id, i) => [id, i]));
    this.steps.sort((a, b) => (order.get(a.id) ?? 0) - (order.get(b.id) ?? 0));
    return { protocol: this.protocol, target, ok: !failed, steps: this.steps, transcript: this.transcript };
  }
}

function explainError(e: unknown, protocol: CheckProtocol): Explanation | undefined {
  if (e instanceof OAuthError || (e instanceof Relay365Error && e.code.startsWith('ACCOUNT'))) {
    const byCode = explainAadstsCode(e.aadsts);
    if (byCode) return byCode;
    if (e.code === 'ACCOUNT_NOT_FOUND') return ADVICE.accountMissing;
    if (e.code === 'ACCOUNT_REAUTH_REQUIRED') return ADVICE.needsReauth;
    return ADVICE.tokenFailed;
  }
  if (e instanceof Relay365Error) {
    if (e.code === 'TLS') return ADVICE.tlsUnverified;
    if (e.code === 'NETWORK') return e.details?.noAnswer ? ADVICE.noAnswer : ADVICE.tcp;
    const entry = explainReply(e.message, protocol);
    if (entry) return fromCatalogue(entry);
  }
  return undefined;
}

export async function runCheck(o: CheckOptions): Promise<CheckReport> {
  const protocols: ProtocolReport[] = [];
  for (const p of o.protocols) protocols.push(await checkProtocol(o, p));
  return { account: o.account, ok: protocols.every((p) => p.ok), protocols };
}

async function checkProtocol(o: CheckOptions, protocol: CheckProtocol): Promise<ProtocolReport> {
  const rec = new Recorder(PLANS[protocol], protocol);
  const endpoint = protocol === 'graph' ? graphEndpoint(o.graphUrl) : (o.endpoints[protocol] ?? DEFAULT_ENDPOINTS[protocol]);
  const target = protocol === 'graph' ? (o.graphUrl ?? 'https://graph.microsoft.com') : `${endpoint.host}:${endpoint.port} (${endpoint.tls === 'implicit' ? 'TLS' : 'STARTTLS'})`;
  let sock: LineSocket | undefined;
  try {
    const account = await rec.step('configuration', () => configurationStep(o, protocol));
    const mailbox = (o.mailbox ?? account.mailbox ?? o.account).toLowerCase();
    await rec.step('dns', async () => {
      try {
        const addrs = await dns.lookup(endpoint.host, { all: true });
        return { detail: `${endpoint.host} → ${addrs.map((a) => a.address).join(', ')}` };
      } catch (e) {
        return { status: 'fail', detail: `${endpoint.host}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, explanation: ADVICE.dns };
      }
    });
    sock = await rec.step('tcp', async () => {
      const s = await LineSocket.connect({ host: endpoint.host, port: endpoint.port, caFile: o.caFile, timeoutMs: o.timeoutMs ?? DEFAULT_TIMEOUT_MS, transcript: rec.line, reportUnverified: true });
      return { detail: `connected to ${endpoint.host}:${endpoint.port}`, value: s };
    });
    const s = sock;
    if (protocol === 'graph') {
      await tlsStep(rec, s);
      s.close();
      return await graphProbe(o, rec, mailbox, target);
    }
    if (endpoint.tls === 'implicit') await tlsStep(rec, s);
    if (protocol === 'smtp') await smtpProbe(o, rec, s, endpoint, mailbox);
    else if (protocol === 'imap') await imapProbe(o, rec, s, endpoint, mailbox);
    else await pop3Probe(o, rec, s, endpoint, mailbox);
  } catch (e) {
    if (!(e instanceof StopProbe)) throw e;
  } finally {
    sock?.close();
  }
  return rec.finish(target);
}

function graphEndpoint(url = 'https://graph.microsoft.com'): Endpoint {
  const u = new URL(url);
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 443), tls: 'implicit' };
}

async function configurationStep(o: CheckOptions, protocol: CheckProtocol): Promise<Outcome<AccountSummary>> {
  const account = (await o.tokens.accounts()).find((a) => a.email.toLowerCase() === o.account.toLowerCase());
  if (!account) return { status: 'fail', detail: `no account ${o.account} in ${o.tokens.store.dir}`, explanation: ADVICE.accountMissing };
  const detail = `account ${account.email} (${account.flow}, tenant ${account.tenant}, client ${account.clientId}), mailbox ${o.mailbox ?? account.mailbox}, purposes ${account.purposes.join(',')}, state ${account.state}`;
  if (account.state === 'needs-reauth') return { status: 'fail', detail: `${detail}${account.lastError ? `: ${account.lastError.message}` : ''}`, explanation: explainAadstsCode(account.lastError?.aadsts) ?? ADVICE.needsReauth, value: account };
  if (!account.purposes.includes(PURPOSE[protocol])) return { status: 'warn', detail: `${detail}; not set up for ${protocol}`, explanation: ADVICE.purposeMissing, value: account };
  return { detail, value: account };
}

async function tlsStep(rec: Recorder, s: LineSocket): Promise<void> {
  await rec.step('tls', async () => {
    await s.upgrade();
    const t = s.tlsDetails()!;
    const detail = `${t.protocol} ${t.cipher}, certificate ${t.subject ?? '?'} issued by ${t.issuer ?? '?'}, valid until ${t.validTo} (${t.daysLeft} days)${t.authorized ? ', chain verified' : `, NOT verified: ${t.authorizationError}`}`;
    if (!t.authorized) return { status: 'fail', detail, explanation: ADVICE.tlsUnverified };
    if (t.protocol && /^TLSv1(\.[01])?$|^SSL/.test(t.protocol)) return { status: 'fail', detail, explanation: ADVICE.tlsOld };
    if (t.daysLeft !== undefined && t.daysLeft < 0) return { status: 'fail', detail, explanation: ADVICE.certExpired };
    return { status: t.daysLeft !== undefined && t.daysLeft < 14 ? 'warn' : 'pass', detail };
  });
}

async function tokenAndClaims(o: CheckOptions, rec: Recorder, protocol: CheckProtocol, mailbox: string): Promise<AccessToken> {
  const t = await rec.step('token', async () => {
    // A fresh token, not the cached one: the check is about whether acquiring one works now.
    const token = await o.tokens.getAccessToken(o.account, { purpose: PURPOSE[protocol], forceRefresh: true });
    registerSecret(token.token);
    return { detail: `access token for ${PURPOSE[protocol]} (${Math.floor((token.expiresAt - Date.now()) / 60_000)} min left)`, value: token };
  });
  await rec.step('claims', async () => judgeClaims(t.token, protocol, mailbox, t.expiresAt), { continueOnFail: true });
  return t;
}

// ---------------------------------------------------------------------------------------- SMTP

interface SmtpReplyLines {
  code: number;
  lines: string[];
  text: string;
}

async function smtpRead(s: LineSocket): Promise<SmtpReplyLines> {
  const lines: string[] = [];
  for (;;) {
    const l = await s.readLine();
    lines.push(l);
    if (!/^\d{3}-/.test(l)) break;
  }
  const last = lines[lines.length - 1]!;
  return { code: Number(last.slice(0, 3)) || 0, lines, text: lines.join('\n') };
}

async function smtpCmd(s: LineSocket, line: string, secret?: string): Promise<SmtpReplyLines> {
  s.writeLine(line, secret ? { secret } : {});
  return smtpRead(s);
}

/** The last line of a (multi-line) reply: the one with the verdict. */
const finalLine = (r: SmtpReplyLines) => r.lines[r.lines.length - 1]!;

async function smtpProbe(o: CheckOptions, rec: Recorder, s: LineSocket, ep: Endpoint, mailbox: string): Promise<void> {
  const ehlo = o.ehloName ?? 'relay365-check.localdomain';
  await rec.step('greeting', async () => {
    const g = await smtpRead(s);
    if (g.code !== 220) return { status: 'fail', detail: g.text, reply: g.text, explanation: explainServerReply(g.text, 'smtp') };
    return { detail: g.text };
  });
  let caps: string[] = [];
  const ehloCaps = async () => {
    const r = await smtpCmd(s, `EHLO ${ehlo}`);
    if (r.code !== 250) throw new Relay365Error('SMTP_REJECTED', `EHLO: ${r.text}`);
    return r.lines.slice(1).map((l) => l.slice(4));
  };
  if (ep.tls === 'starttls') {
    caps = await ehloCaps();
    if (!caps.some((c) => /^STARTTLS$/i.test(c))) {
      await rec.step('tls', async () => ({ status: 'fail', detail: `EHLO lists no STARTTLS: ${caps.join(', ')}`, explanation: ADVICE.noStarttls }));
    }
    const go = await smtpCmd(s, 'STARTTLS');
    if (go.code !== 220) await rec.step('tls', async () => ({ status: 'fail', detail: go.text, reply: go.text, explanation: explainServerReply(go.text, 'smtp') }));
    await tlsStep(rec, s);
  }
  caps = await rec.step('capabilities', async () => {
    const c = await ehloCaps();
    const auth = c.find((x) => /^AUTH[ =]/i.test(x));
    if (!auth || !/\bXOAUTH2\b/i.test(auth)) return { status: 'fail', detail: c.join(', '), explanation: ADVICE.noXoauth2, value: c };
    return { detail: c.join(', '), value: c };
  });
  const t = await tokenAndClaims(o, rec, 'smtp', mailbox);
  await rec.step('auth', async () => {
    // RFC 4954 §4: a bearer token never fits the 512-octet command line, so the initial response
    // follows an empty 334 (Exchange also takes the long line; Dovecot does not).
    let reply = await smtpCmd(s, 'AUTH XOAUTH2');
    if (reply.code === 334) reply = await smtpCmd(s, xoauth2(mailbox, t.token), '<XOAUTH2 initial response>');
    // A 334 here is an error challenge (Gmail style): answer with an empty line, read the verdict.
    if (reply.code === 334) reply = await smtpCmd(s, '');
    if (reply.code !== 235) return { status: 'fail', detail: `as ${mailbox}`, reply: finalLine(reply), explanation: explainServerReply(finalLine(reply), 'smtp') };
    return { detail: `${finalLine(reply)} (user=${mailbox})` };
  });
  await rec.step('mail-from', async () => {
    const r = await smtpCmd(s, `MAIL FROM:<${mailbox}>`);
    const reset = await smtpCmd(s, 'RSET');
    if (r.code !== 250) return { status: 'fail', detail: `MAIL FROM:<${mailbox}>`, reply: finalLine(r), explanation: explainServerReply(finalLine(r), 'smtp') };
    return { detail: `${finalLine(r)}; RSET ${reset.code}` };
  });
  if (o.sendTestTo) {
    const to = o.sendTestTo;
    await rec.step('test-message', async () => {
      for (const [cmd, want] of [[`MAIL FROM:<${mailbox}>`, 250], [`RCPT TO:<${to}>`, 250], ['DATA', 354]] as const) {
        const r = await smtpCmd(s, cmd);
        if (r.code !== want) return { status: 'fail', detail: cmd, reply: finalLine(r), explanation: explainServerReply(finalLine(r), 'smtp') };
      }
      for (const l of testMessage(mailbox, to).split('\r\n')) s.writeLine(l.startsWith('.') ? `.${l}` : l);
      const end = await smtpCmd(s, '.');
      if (end.code !== 250) return { status: 'fail', detail: `to ${to}`, reply: finalLine(end), explanation: explainServerReply(finalLine(end), 'smtp') };
      return { detail: `to ${to}: ${finalLine(end)}` };
    });
  }
  await smtpCmd(s, 'QUIT').catch(() => undefined);
}

function testMessage(from: string, to: string): string {
  const domain = from.split('@')[1] ?? 'localhost';
  return [
    `From: <${from}>`,
    `To: <${to}>`,
    'Subject: relay365 check: test message',
    `Date: ${new Date().toUTCString().replace(/GMT$/, '+0000')}`,
    `Message-ID: <${randomUUID()}@${domain}>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    `This message was sent by \`relay365 check ${from} --send-test-to ${to}\`.`,
  ].join('\r\n');
}

// ---------------------------------------------------------------------------------------- IMAP

async function imapCmd(s: LineSocket, tag: string, line: string, secret?: string): Promise<{ untagged: string[]; final: string }> {
  s.writeLine(`${tag} ${line}`, secret ? { secret: `${tag} ${secret}` } : {});
  const untagged: string[] = [];
  for (;;) {
    const l = await s.readLine();
    if (l.startsWith(`${tag} `)) return { untagged, final: l };
    // An error challenge during AUTHENTICATE: answer empty, the tagged verdict follows.
    if (l.startsWith('+')) s.writeLine('');
    else untagged.push(l);
  }
}

async function imapProbe(o: CheckOptions, rec: Recorder, s: LineSocket, ep: Endpoint, mailbox: string): Promise<void> {
  await rec.step('greeting', async () => {
    const g = await s.readLine();
    if (!/^\* (OK|PREAUTH)\b/i.test(g)) return { status: 'fail', detail: g, reply: g, explanation: ADVICE.badGreeting };
    return { detail: g };
  });
  let n = 0;
  const tag = () => `C${++n}`;
  const capability = async () => (await imapCmd(s, tag(), 'CAPABILITY')).untagged.find((l) => /^\* CAPABILITY /i.test(l))?.slice(13) ?? '';
  if (ep.tls === 'starttls') {
    const before = await capability();
    if (!/\bSTARTTLS\b/i.test(before)) await rec.step('tls', async () => ({ status: 'fail', detail: `CAPABILITY lists no STARTTLS: ${before}`, explanation: ADVICE.noStarttls }));
    const r = await imapCmd(s, tag(), 'STARTTLS');
    if (!/ OK\b/i.test(r.final)) await rec.step('tls', async () => ({ status: 'fail', detail: r.final, reply: r.final, explanation: ADVICE.noStarttls }));
    await tlsStep(rec, s);
  }
  const caps = await rec.step('capabilities', async () => {
    const c = await capability();
    if (!/\bAUTH=XOAUTH2\b/i.test(c)) return { status: 'fail', detail: c, explanation: ADVICE.noXoauth2, value: c };
    return { detail: c, value: c };
  });
  const t = await tokenAndClaims(o, rec, 'imap', mailbox);
  await rec.step('auth', async () => {
    const ir = xoauth2(mailbox, t.token);
    const r = /\bSASL-IR\b/i.test(caps)
      ? await imapCmd(s, tag(), `AUTHENTICATE XOAUTH2 ${ir}`, 'AUTHENTICATE XOAUTH2 <XOAUTH2 initial response>')
      : await (async () => {
          const tg = tag();
          s.writeLine(`${tg} AUTHENTICATE XOAUTH2`);
          const go = await s.readLine();
          if (!go.startsWith('+')) return { untagged: [], final: go };
          s.writeLine(ir, { secret: '<XOAUTH2 initial response>' });
          for (;;) {
            const l = await s.readLine();
            if (l.startsWith(`${tg} `)) return { untagged: [], final: l };
            if (l.startsWith('+')) s.writeLine('');
          }
        })();
    if (!/^\S+ OK\b/i.test(r.final)) return { status: 'fail', detail: `as ${mailbox}`, reply: r.final, explanation: explainServerReply(r.final, 'imap') };
    return { detail: `${r.final} (user=${mailbox})` };
  });
  await rec.step('mailbox', async () => {
    // EXAMINE is read-only: the check never changes \Seen flags.
    const r = await imapCmd(s, tag(), 'EXAMINE INBOX');
    if (!/^\S+ OK\b/i.test(r.final)) return { status: 'fail', detail: `EXAMINE INBOX of ${mailbox}`, reply: r.final, explanation: explainServerReply(r.final, 'imap') };
    const exists = r.untagged.find((l) => /^\* \d+ EXISTS/i.test(l))?.split(' ')[1] ?? '?';
    const validity = /UIDVALIDITY (\d+)/i.exec(r.untagged.join(' '))?.[1];
    return { detail: `INBOX of ${mailbox}: ${exists} message(s)${validity ? `, UIDVALIDITY ${validity}` : ''}` };
  });
  await imapCmd(s, tag(), 'LOGOUT').catch(() => undefined);
}

// ---------------------------------------------------------------------------------------- POP3

async function popCmd(s: LineSocket, line: string, secret?: string): Promise<string> {
  s.writeLine(line, secret ? { secret } : {});
  return s.readLine();
}

async function pop3Probe(o: CheckOptions, rec: Recorder, s: LineSocket, ep: Endpoint, mailbox: string): Promise<void> {
  await rec.step('greeting', async () => {
    const g = await s.readLine();
    if (!g.startsWith('+OK')) return { status: 'fail', detail: g, reply: g, explanation: ADVICE.badGreeting };
    return { detail: g };
  });
  const capa = async () => {
    const first = await popCmd(s, 'CAPA');
    if (!first.startsWith('+OK')) return [] as string[];
    const out: string[] = [];
    for (let l = await s.readLine(); l !== '.'; l = await s.readLine()) out.push(l);
    return out;
  };
  if (ep.tls === 'starttls') {
    const before = await capa();
    if (!before.some((c) => /^STLS$/i.test(c))) await rec.step('tls', async () => ({ status: 'fail', detail: `CAPA lists no STLS: ${before.join(', ')}`, explanation: ADVICE.noStarttls }));
    const go = await popCmd(s, 'STLS');
    if (!go.startsWith('+OK')) await rec.step('tls', async () => ({ status: 'fail', detail: go, reply: go, explanation: ADVICE.noStarttls }));
    await tlsStep(rec, s);
  }
  await rec.step('capabilities', async () => {
    const c = await capa();
    if (!c.some((x) => /^SASL\b.*\bXOAUTH2\b/i.test(x))) return { status: 'fail', detail: c.join(', '), explanation: ADVICE.noXoauth2 };
    return { detail: c.join(', ') };
  });
  const t = await tokenAndClaims(o, rec, 'pop3', mailbox);
  await rec.step('auth', async () => {
    const go = await popCmd(s, 'AUTH XOAUTH2');
    if (!go.startsWith('+') || go.startsWith('+OK')) return { status: 'fail', detail: 'AUTH XOAUTH2', reply: go, explanation: explainServerReply(go, 'pop') };
    let r = await popCmd(s, xoauth2(mailbox, t.token), '<XOAUTH2 initial response>');
    if (r.startsWith('+ ') && r.length > 2) r = await popCmd(s, '');
    if (!r.startsWith('+OK')) return { status: 'fail', detail: `as ${mailbox}`, reply: r, explanation: explainServerReply(r, 'pop') };
    return { detail: `${r} (user=${mailbox})` };
  });
  await rec.step('mailbox', async () => {
    const r = await popCmd(s, 'STAT');
    if (!r.startsWith('+OK')) return { status: 'fail', detail: 'STAT', reply: r, explanation: explainServerReply(r, 'pop') };
    const [, count, size] = r.split(' ');
    return { detail: `mailbox ${mailbox}: ${count} message(s), ${size} bytes` };
  });
  await popCmd(s, 'QUIT').catch(() => undefined);
}

// --------------------------------------------------------------------------------------- Graph

/** undici's timeout errors: the agent's connect, header and body timeouts (capped at the check's timeout). */
const HTTP_TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** A Graph request that got no answer in time, as the NETWORK failure every other step reports. */
function httpTimeout(e: unknown, host: string, timeoutMs: number): TransportError | undefined {
  const code = (e as { code?: unknown })?.code;
  if (typeof code !== 'string' || !HTTP_TIMEOUT_CODES.has(code)) return undefined;
  const connecting = code === 'UND_ERR_CONNECT_TIMEOUT';
  return new TransportError('NETWORK', `${host}: ${connecting ? 'could not connect' : 'no answer'} within ${timeoutMs} ms (${code})`, {
    cause: e,
    hint: connecting ? 'Check the host, port, firewall and proxy.' : 'The server took the request but did not answer: retry later; check any proxy or firewall that inspects HTTPS.',
    details: { noAnswer: !connecting },
  });
}

async function graphProbe(o: CheckOptions, rec: Recorder, mailbox: string, target: string): Promise<ProtocolReport> {
  const base = (o.graphUrl ?? 'https://graph.microsoft.com').replace(/\/+$/, '');
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const ca = trustedCas(o.caFile);
  // undici is loaded here, not when the check module is: the relay keeps it out of memory until needed.
  const [{ request }, dispatcher] = await Promise.all([loadUndici(), makeAgent({ ca, minVersion: 'TLSv1.2', timeoutMs })]);
  try {
    const t = await tokenAndClaims(o, rec, 'graph', mailbox);
    const post = async (body: unknown) => {
      const url = `${base}/v1.0/users/${encodeURIComponent(mailbox)}/sendMail`;
      rec.line('C', `POST ${url}`);
      try {
        const res = await request(url, { method: 'POST', headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/json' }, body: JSON.stringify(body), dispatcher });
        const text = await res.body.text();
        rec.line('S', `${res.statusCode} ${redactText(text).slice(0, 500)}`);
        return { status: res.statusCode, text };
      } catch (e) {
        throw httpTimeout(e, new URL(url).host, timeoutMs) ?? e;
      }
    };
    await rec.step('auth', async () => {
      // An empty sendMail request: Graph checks the token, the permission and the mailbox before it
      // looks at the body, so a 400 about the body means authentication passed — and nothing is sent.
      const r = await post({});
      if (r.status === 400 && !/InvalidAuthenticationToken|ErrorAccessDenied|NoPermissions|MailboxNotEnabled|ErrorInvalidUser/.test(r.text)) return { detail: `token accepted for ${mailbox} (probe without a message: ${r.status} ${/"code"\s*:\s*"([^"]+)"/.exec(r.text)?.[1] ?? ''})` };
      return { status: 'fail', detail: `HTTP ${r.status}`, reply: r.text.slice(0, 500), explanation: explainServerReply(r.text, 'graph') };
    });
    if (o.sendTestTo) {
      const to = o.sendTestTo;
      await rec.step('test-message', async () => {
        const r = await post({ message: { subject: 'relay365 check: test message', body: { contentType: 'Text', content: `Sent by relay365 check ${mailbox} --protocol graph --send-test-to ${to}.` }, toRecipients: [{ emailAddress: { address: to } }] }, saveToSentItems: false });
        if (r.status !== 202) return { status: 'fail', detail: `HTTP ${r.status}`, reply: r.text.slice(0, 500), explanation: explainServerReply(r.text, 'graph') };
        return { detail: `to ${to}: 202 Accepted` };
      });
    }
  } catch (e) {
    if (!(e instanceof StopProbe)) throw e;
  } finally {
    await dispatcher.close();
  }
  return rec.finish(target);
}
