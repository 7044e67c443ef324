/**
 * Every reply of the fact sheet's §4.3 catalogue, played by the sandbox at the stage where Exchange
 * sends it, through the real SMTP transport: the typed error (code family, temporary/permanent, the
 * hint from the catalogue) and what the relay's failure policy does with it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { sandbox } from '../helpers/sandbox.js';
import { tempDir } from '../helpers/cli.js';
import { addAccount } from '../helpers/accounts.js';
import { openTokenManager, type TokenManager } from '../../src/oauth/index.js';
import { SmtpTransport } from '../../src/transport/index.js';
import { decide, failureOf } from '../../src/relay/trouble.js';
import { TransportError } from '../../src/core/errors.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import type { FaultStage } from '../../src/sandbox/faults.js';

const ALICE = 'alice@contoso.onmicrosoft.com';
const BOB = 'bob@contoso.onmicrosoft.com';
const HOST = '[Hostname=SN2PR00MB0001.namprd00.prod.outlook.com]';
let sb: Sandbox;
let tokens: TokenManager;

before(async () => {
  sb = await sandbox();
  const state = tempDir();
  await addAccount(sb, state, ALICE, { password: 'alice-Passw0rd!', scopes: 'smtp' });
  tokens = openTokenManager({ stateDir: state });
});
after(() => sb.stop());

interface Case {
  reply: string;
  stage: FaultStage;
  code: 'SMTP_AUTH' | 'SMTP_TEMPORARY' | 'SMTP_REJECTED';
  temporary: boolean;
  hint: RegExp;
  action: ReturnType<typeof decide>['action'];
  /** How often the sandbox must say it (535 5.7.3 is retried once with a fresh token). */
  count?: number;
}

const CASES: Case[] = [
  { reply: '535 5.7.3 Authentication unsuccessful [SN2PR00CA0018.namprd00.prod.outlook.com 2026-11-23T09:00:00.000Z 08DB0000]', stage: 'smtp.auth', count: 2, code: 'SMTP_AUTH', temporary: false, hint: /audience|scope/, action: 'defer-account' },
  { reply: '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.', stage: 'smtp.auth', code: 'SMTP_AUTH', temporary: false, hint: /Set-TransportConfig -SmtpClientAuthenticationDisabled \$false/, action: 'defer-account' },
  { reply: '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information.', stage: 'smtp.auth', code: 'SMTP_AUTH', temporary: false, hint: /Set-CASMailbox -Identity .* -SmtpClientAuthenticationDisabled \$false/, action: 'defer-account' },
  { reply: '535 5.7.139 Authentication unsuccessful, basic authentication is disabled.', stage: 'smtp.auth', code: 'SMTP_AUTH', temporary: false, hint: /OAuth/, action: 'defer-account' },
  { reply: '535 5.7.139 Authentication unsuccessful, the request did not meet the criteria to be authenticated successfully. Contact your administrator.', stage: 'smtp.auth', code: 'SMTP_AUTH', temporary: false, hint: /Conditional Access/, action: 'defer-account' },
  { reply: "535 5.7.139 Authentication unsuccessful, user is locked by your organization's security defaults policy. Contact your administrator.", stage: 'smtp.auth', code: 'SMTP_AUTH', temporary: false, hint: /Security Defaults/, action: 'defer-account' },
  { reply: '550 5.7.30 Basic authentication is not supported for Client Submission.', stage: 'smtp.auth', code: 'SMTP_AUTH', temporary: false, hint: /OAuth/, action: 'defer-account' },
  { reply: '504 5.7.4 Unrecognized authentication type', stage: 'smtp.auth', code: 'SMTP_AUTH', temporary: false, hint: /STARTTLS/, action: 'defer-account' },
  { reply: '501 5.5.124 Invalid XOAUTH2 auth data', stage: 'smtp.auth', code: 'SMTP_AUTH', temporary: false, hint: /Add-HVEAppAccess/, action: 'defer-account' },
  { reply: '501 5.5.127 Invalid XOAUTH2 auth data - Token will expire soon', stage: 'smtp.auth', code: 'SMTP_AUTH', temporary: true, hint: /10 minutes/, action: 'defer' },
  { reply: '530 5.7.57 Client not authenticated to send mail.', stage: 'smtp.mail', code: 'SMTP_AUTH', temporary: false, hint: /account/, action: 'defer-account' },
  { reply: `550 5.7.60 SMTP; Client does not have permissions to send as this sender ${HOST}`, stage: 'smtp.dataEnd', code: 'SMTP_REJECTED', temporary: false, hint: /Add-RecipientPermission .* -AccessRights SendAs/, action: 'bounce' },
  { reply: `554 5.2.252 SendAsDenied; ${ALICE} not allowed to send as other@contoso.onmicrosoft.com; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due to a permanent exception ${HOST}`, stage: 'smtp.dataEnd', code: 'SMTP_REJECTED', temporary: false, hint: /SendAs/, action: 'bounce' },
  { reply: '554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due to a permanent exception with message Cannot submit message.', stage: 'smtp.dataEnd', code: 'SMTP_REJECTED', temporary: false, hint: /SendAs/, action: 'bounce' },
  { reply: `432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded. Visit aka.ms/concurrent_sending for more info. ${HOST}`, stage: 'smtp.mail', code: 'SMTP_TEMPORARY', temporary: true, hint: /3 concurrent/, action: 'defer' },
  { reply: `432 4.3.2 Concurrent connections limit exceeded. Visit https://aka.ms/concurrent_sending for more information. ${HOST}`, stage: 'smtp.mail', code: 'SMTP_TEMPORARY', temporary: true, hint: /3 concurrent/, action: 'defer' },
  { reply: "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception with message The message can't be submitted because the sender's submission quota was exceeded.", stage: 'smtp.dataEnd', code: 'SMTP_TEMPORARY', temporary: true, hint: /10,000/, action: 'hold-account' },
  { reply: '554 5.2.2 mailbox full; STOREDRV.Submission.Exception:QuotaExceededException.MapiExceptionShutoffQuotaExceeded; Failed to process message', stage: 'smtp.dataEnd', code: 'SMTP_REJECTED', temporary: false, hint: /Sent Items/, action: 'bounce' },
  { reply: '550 5.2.251 Sender throttled due to continuous mailbox full errors.', stage: 'smtp.mail', code: 'SMTP_REJECTED', temporary: false, hint: /mailbox is full/, action: 'bounce' },
  { reply: '550 5.2.253 Sender throttled due to continuous invalid license errors.', stage: 'smtp.mail', code: 'SMTP_REJECTED', temporary: false, hint: /licence/, action: 'bounce' },
  { reply: '550 5.2.254 Sender throttled due to continuous recipient limit exceeded errors.', stage: 'smtp.mail', code: 'SMTP_TEMPORARY', temporary: true, hint: /recipients/, action: 'bounce' },
  { reply: '550 5.2.255 Sender throttled due to continuous invalid recipient errors.', stage: 'smtp.mail', code: 'SMTP_REJECTED', temporary: false, hint: /recipient addresses/, action: 'bounce' },
  { reply: '552 5.3.4 Message size exceeds fixed maximum message size. MapiExceptionMaxSubmissionExceeded; STOREDRV.Submission.Exception:MessageSubmissionExceededException', stage: 'smtp.dataEnd', code: 'SMTP_REJECTED', temporary: false, hint: /MaxSendSize/, action: 'bounce' },
  { reply: '552 5.3.4 Header size exceeds fixed maximum size', stage: 'smtp.dataEnd', code: 'SMTP_REJECTED', temporary: false, hint: /256 KB/, action: 'bounce' },
  { reply: '452 4.5.3 Too many recipients', stage: 'smtp.rcpt', code: 'SMTP_TEMPORARY', temporary: true, hint: /500/, action: 'defer' },
  { reply: '430 4.2.0 STOREDRV; mailbox logon failure; STOREDRV.Submission.Exception:ConnectionFailedTransientException.MapiExceptionLogonFailed; Cannot open mailbox.', stage: 'smtp.dataEnd', code: 'SMTP_TEMPORARY', temporary: true, hint: /Add-MailboxPermission .* -AccessRights FullAccess/, action: 'defer' },
  { reply: '554 5.2.0 STOREDRV.Submission.Exception:OutboundSpamException; WASCL UserAction verdict is not None', stage: 'smtp.dataEnd', code: 'SMTP_REJECTED', temporary: false, hint: /Restricted entities|outbound spam/i, action: 'bounce' },
  { reply: '550 5.1.8 Access denied, bad outbound sender', stage: 'smtp.mail', code: 'SMTP_REJECTED', temporary: false, hint: /Restricted entities|outbound spam/i, action: 'bounce' },
  { reply: '550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP.', stage: 'smtp.mail', code: 'SMTP_REJECTED', temporary: false, hint: /support|reputation|connector/i, action: 'bounce' },
  { reply: '421 4.7.66 TLS 1.0 and 1.1 are not supported. Please upgrade/update your client to support TLS 1.2.', stage: 'smtp.ehlo', code: 'SMTP_TEMPORARY', temporary: true, hint: /TLS 1\.2/, action: 'defer' },
];

const message = (id: string) => () => Readable.from([Buffer.from(`From: ${ALICE}\r\nTo: ${BOB}\r\nSubject: ${id}\r\nMessage-ID: <${id}>\r\n\r\nbody\r\n`)]);

test('every §4.3 reply, said by the sandbox at its stage, becomes the right typed error, hint and relay decision', async () => {
  let n = 0;
  for (const c of CASES) {
    const t = new SmtpTransport({ host: '127.0.0.1', port: sb.endpoints.smtp.port, security: 'starttls', caFile: sb.caFile, auth: { kind: 'oauth', account: ALICE, mechanism: 'XOAUTH2' } }, { tokens });
    sb.faults.clear();
    sb.faults.add({ stage: c.stage, action: { kind: 'reply', reply: c.reply }, count: c.count ?? 1 });
    try {
      await assert.rejects(t.deliver({ from: ALICE, to: [BOB] }, message(`case-${n++}@test`)), (e: unknown) => {
        assert.ok(e instanceof TransportError, `${c.reply}: ${String(e)}`);
        const [code, enhanced] = c.reply.split(' ');
        assert.equal(e.smtp?.code, Number(code), c.reply);
        assert.equal(e.smtp?.enhanced, enhanced, c.reply);
        assert.equal(e.code, c.code, c.reply);
        assert.equal(e.temporary, c.temporary, c.reply);
        assert.match(e.hint ?? '', c.hint, c.reply);
        assert.equal(decide(failureOf(e)).action, c.action, c.reply);
        return true;
      });
    } finally {
      await t.close();
    }
  }
  sb.faults.clear();
});

test('a reply the catalogue does not know falls back to its class', async () => {
  for (const [reply, temporary, action] of [['451 4.4.0 Some new transient thing', true, 'defer'], ['550 5.9.9 Some new permanent thing', false, 'bounce']] as const) {
    const t = new SmtpTransport({ host: '127.0.0.1', port: sb.endpoints.smtp.port, security: 'starttls', caFile: sb.caFile, auth: { kind: 'oauth', account: ALICE, mechanism: 'XOAUTH2' } }, { tokens });
    sb.faults.add({ stage: 'smtp.rcpt', action: { kind: 'reply', reply } });
    try {
      await assert.rejects(t.deliver({ from: ALICE, to: [BOB] }, message(`fallback-${temporary}@test`)), (e: TransportError) => {
        assert.equal(e.temporary, temporary);
        assert.equal(e.code, temporary ? 'SMTP_TEMPORARY' : 'SMTP_REJECTED');
        assert.match(e.hint ?? '', temporary ? /try again later/ : /bounce/);
        assert.equal(decide(failureOf(e)).action, action);
        return true;
      });
    } finally {
      await t.close();
    }
  }
});
