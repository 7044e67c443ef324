import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sandbox } from '../helpers/sandbox.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { addAccount } from '../helpers/accounts.js';
import { parseSendmailArgs } from '../../src/cli/sendmail.js';
import { RelayService } from '../../src/relay/index.js';
import { relayConfig } from '../helpers/relay.js';
import { createLogger } from '../../src/core/log.js';

test('sendmail option parsing: -t -oi -f -F, recipients, ignored historic flags', () => {
  assert.deepEqual(parseSendmailArgs(['-t', '-oi', '-f', 'cron@host.example', '-FCron Daemon', '-odi', 'a@x.example,b@x.example', 'c@x.example']), {
    extractRecipients: true,
    ignoreDots: true,
    from: 'cron@host.example',
    fullName: 'Cron Daemon',
    recipients: ['a@x.example', 'b@x.example', 'c@x.example'],
  });
  assert.equal(parseSendmailArgs(['-fme@x.example', 'y@x.example']).from, 'me@x.example');
});

test('relay365 sendmail -t hands the message to the running relay, which delivers it', async () => {
  const sb = await sandbox();
  const state = tempDir();
  await addAccount(sb, state, 'alice@contoso.onmicrosoft.com', { password: 'alice-Passw0rd!' });
  const relay = await RelayService.start({ config: relayConfig(sb), stateDir: state, log: createLogger({ level: 'silent' }) });
  try {
    const input = 'From: alice@contoso.onmicrosoft.com\nTo: bob@contoso.onmicrosoft.com\nBcc: info@contoso.onmicrosoft.com\nSubject: cron output\nMessage-ID: <cron-1@host>\n\nline 1\n.\nline after a lone dot (kept with -oi)\n';
    const r = await runCli(['sendmail', '-t', '-oi'], { input, env: { RELAY365_STATE_DIR: state } });
    assert.equal(r.code, 0, r.stderr);
    const rec = await sb.mail.waitForOutbound((o) => o.messageId === 'cron-1@host');
    assert.deepEqual([...rec.to].sort(), ['bob@contoso.onmicrosoft.com', 'info@contoso.onmicrosoft.com']);
    const raw = rec.raw.toString();
    assert.ok(!/^Bcc:/im.test(raw), 'Bcc header removed');
    assert.match(raw, /line after a lone dot/);
    const none = await runCli(['sendmail'], { input: 'Subject: x\n\nx\n', env: { RELAY365_STATE_DIR: state } });
    assert.equal(none.code, 2);
  } finally {
    await relay.stop();
    await sb.stop();
  }
});
