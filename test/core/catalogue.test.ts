import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CATALOGUE, catalogueEntries, explain, explainAadsts, explainReply, langFrom, localize } from '../../src/core/catalogue.js';
import { runCli } from '../helpers/cli.js';

test('every entry has English and Japanese cause and fix', () => {
  const ids = new Set<string>();
  for (const e of CATALOGUE) {
    assert.ok(!ids.has(e.id), `duplicate ${e.id}`);
    ids.add(e.id);
    for (const lang of ['en', 'ja'] as const) {
      assert.ok(e[lang].cause.length > 10 && e[lang].fix.length > 10, `${e.id} ${lang}`);
    }
    assert.match(e.ja.cause, /[\u3040-\u30ff\u4e00-\u9fff]/, `${e.id} ja is Japanese`);
  }
});

test('lookups: AADSTS numbers and pasted replies, most specific first', () => {
  assert.equal(explain('AADSTS50173')?.id, 'AADSTS50173');
  assert.equal(explain('700082')?.id, 'AADSTS700082');
  assert.equal(explain('535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. Visit https://aka.ms/smtp_auth_disabled')?.id, 'smtp-5.7.139-mailbox');
  assert.equal(explain('535 5.7.3 Authentication unsuccessful [SN2PR00CA0018.namprd00.prod.outlook.com]')?.id, 'smtp-5.7.3');
  assert.equal(explain('A02 BAD User is authenticated but not connected.')?.id, 'imap-not-connected');
  assert.equal(explain('{"error":"invalid_client","error_description":"AADSTS7000222: The provided client secret keys for app ... are expired."}')?.id, 'AADSTS7000222');
});

test('relay365 explain in English and Japanese; unknown input is a usage error', async () => {
  const en = await runCli(['explain', '535', '5.7.139', 'Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.']);
  assert.equal(en.code, 0, en.stderr);
  assert.match(en.stdout, /Cause: SMTP AUTH is disabled for the whole tenant/);
  assert.match(en.stdout, /Set-TransportConfig -SmtpClientAuthenticationDisabled \$false/);
  const ja = await runCli(['explain', 'AADSTS50173'], { env: { LANG: 'ja_JP.UTF-8' } });
  assert.match(ja.stdout, /原因: リフレッシュトークンが失効しました/);
  assert.match(ja.stdout, /対処: `relay365 account reauth/);
  const json = JSON.parse((await runCli(['explain', '--lang', 'en', '--json', 'AADSTS7000218'])).stdout);
  assert.equal(json.id, 'AADSTS7000218');
  assert.match(json.fix, /Allow public client flows/);
  assert.equal((await runCli(['explain', 'nothing like this'])).code, 2);
});

test('every reply entry explains its own literal example, and every AADSTS entry its code', () => {
  for (const e of CATALOGUE) {
    if (e.aadsts !== undefined) {
      assert.equal(explainAadsts(e.aadsts)?.id, e.id);
      assert.equal(explain(`{"error":"x","error_description":"AADSTS${e.aadsts}: text\\r\\nTrace ID: 0000"}`)?.id, e.id);
    } else {
      assert.ok(e.example, `${e.id} has an example reply`);
      assert.equal(explainReply(e.example!, e.kind)?.id, e.id, `${e.id} example`);
      assert.equal(explain(e.example!)?.id, e.id, `${e.id} example without protocol`);
    }
  }
  assert.ok(catalogueEntries().length >= 80, 'the fact sheet has at least this many codes and replies');
});

test('parsed SMTP replies, protocol filters and the fact sheet codes', () => {
  assert.equal(explainReply({ code: 535, enhanced: '5.7.139', text: 'Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox.' })?.id, 'smtp-5.7.139-mailbox');
  assert.equal(explainReply({ code: 430, enhanced: '4.2.0', text: 'STOREDRV; mailbox logon failure; MapiExceptionLogonFailed' })?.id, 'smtp-430-logon');
  assert.equal(explainReply('A01 NO AUTHENTICATE failed.', 'smtp'), undefined, 'IMAP text is not an SMTP reply');
  assert.equal(explainReply('-ERR Authentication failure: unknown user name or bad password.', 'pop3')?.id, 'pop-auth-failed');
  assert.equal(explainAadsts('AADSTS90002')?.id, 'AADSTS90002');
  assert.equal(explainReply('{"error":{"code":"InvalidAuthenticationToken","message":"Access token has expired or is not yet valid."}}', 'graph')?.temporary, false);
  // Every AADSTS code the fact sheet's §1.8 table lists has an entry.
  for (const n of [7000215, 7000222, 7000218, 700025, 700016, 90002, 50194, 9001023, 90130, 90124, 50059, 65001, 90094, 70011, 1002012, 500011, 50173, 700082, 70008, 70043, 700084, 54005, 50011, 70000, 9002313, 900144, 50076, 50079, 53003, 530035, 50034, 50126, 50055, 50057, 50053, 50020, 7000112, 700024, 700027, 50027, 70016, 70018, 70019, 70020]) {
    assert.ok(explainAadsts(n), `AADSTS${n}`);
  }
  const ja = localize(explainAadsts(50173)!, 'ja', 'alice@contoso.com');
  assert.match(ja.fix, /relay365 account reauth alice@contoso\.com/);
  assert.equal(langFrom({ LANG: 'ja_JP.UTF-8' }), 'ja');
  assert.equal(langFrom({ LANG: 'ja_JP.UTF-8' }, 'en'), 'en');
  assert.equal(langFrom({ LANG: 'C.UTF-8' }), 'en');
});
