import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CATALOGUE, explain } from '../../src/core/catalogue.js';
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
