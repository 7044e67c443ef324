import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { redactText, sanitize, registerSecret, REDACTED } from '../../src/core/redact.js';
import { createLogger } from '../../src/core/log.js';
import { Relay365Error } from '../../src/core/errors.js';

const jwt = 'eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL291dGxvb2sub2ZmaWNlLmNvbSJ9.c2lnbmF0dXJlLXZhbHVl';
const xoauth2 = Buffer.from(`user=a@contoso.com\x01auth=Bearer ${jwt}\x01\x01`).toString('base64');

test('redactText masks JWTs, bearer headers, SASL payloads and form fields', () => {
  const text = `Authorization: Bearer ${jwt}\nAUTH XOAUTH2 ${xoauth2}\nrefresh_token=M.C507_BAY.0.U.-Cpabcdefghijklmnopqrstuvwxyz&client_secret=s3cr3t-value&grant_type=refresh_token`;
  const out = redactText(text);
  assert.ok(!out.includes(jwt), 'jwt masked');
  assert.ok(!out.includes(xoauth2), 'sasl masked');
  assert.ok(!out.includes('M.C507_BAY'), 'refresh token masked');
  assert.ok(!out.includes('s3cr3t-value'), 'client secret masked');
  assert.ok(out.includes('grant_type=refresh_token'), 'harmless fields kept');
});

test('registered secrets are masked anywhere', () => {
  registerSecret('very-private-passphrase');
  assert.equal(redactText('the key is very-private-passphrase!'), `the key is ${REDACTED}!`);
});

test('sanitize masks secret-named keys deeply', () => {
  const out = sanitize({ account: 'a@b', tokens: { access_token: 'abc', refresh_token: 'def' }, client_secret: 'x', nested: [{ password: 'p' }] }) as any;
  assert.equal(out.account, 'a@b');
  assert.equal(out.tokens.access_token, REDACTED);
  assert.equal(out.tokens.refresh_token, REDACTED);
  assert.equal(out.client_secret, REDACTED);
  assert.equal(out.nested[0].password, REDACTED);
});

test('the logger never writes a token, even when handed one', () => {
  let output = '';
  const sink = new Writable({ write(chunk, _enc, cb) { output += chunk; cb(); } });
  const logger = createLogger({ level: 'debug', destination: sink });
  logger.info({ token: jwt, headers: { authorization: `Bearer ${jwt}` }, body: `refresh_token=${jwt}` }, `sent AUTH XOAUTH2 ${xoauth2}`);
  logger.debug(new Error(`failed with ${jwt}`), 'oops');
  assert.ok(output.length > 0);
  assert.ok(!output.includes(jwt), output);
  assert.ok(!output.includes(xoauth2), output);
});

test('error messages are scrubbed and carry code, hint and exit code', () => {
  const err = new Relay365Error('SMTP_TEMPORARY', `server said no to ${jwt}`);
  assert.ok(!err.message.includes(jwt));
  assert.equal(err.temporary, true);
  assert.equal(err.exitCode, 75);
  assert.equal(new Relay365Error('SMTP_REJECTED', 'no').exitCode, 1);
});
