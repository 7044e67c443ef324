import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ImapFlow } from 'imapflow';
import { sandbox, appToken, userToken, RawClient, xoauth2 } from '../helpers/sandbox.js';
import type { Sandbox } from '../../src/sandbox/index.js';

const ALICE = 'alice@contoso.onmicrosoft.com';
const dbg = (o: { msg?: string }) => console.log(o?.msg);
let sb: Sandbox;
let ca: string;
before(async () => {
  sb = await sandbox();
  ca = readFileSync(sb.caFile, 'utf8');
});
after(() => sb.stop());

test('greeting, capabilities and AUTHENTICATE XOAUTH2 literally as Exchange', async () => {
  const { access_token } = await userToken(sb, ALICE, 'alice-Passw0rd!', 'https://outlook.office.com/IMAP.AccessAsUser.All');
  const c = await RawClient.connect(sb.endpoints.imap.port, { tls: true, ca });
  assert.equal(await c.line(), `* OK The Microsoft Exchange IMAP4 service is ready. [${Buffer.from('SN2PR00CA0018.namprd00.prod.outlook.com', 'utf16le').toString('base64')}]`);
  c.send('A00 CAPABILITY');
  assert.deepEqual(await c.until(/^A00 /), ['* CAPABILITY IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+', 'A00 OK CAPABILITY completed.']);
  c.send('A01 AUTHENTICATE XOAUTH2 ' + xoauth2(ALICE, 'bad-token'));
  assert.equal(await c.line(), 'A01 NO AUTHENTICATE failed.');
  c.send('A02 AUTHENTICATE XOAUTH2');
  assert.equal(await c.line(), '+ ');
  c.send(xoauth2(ALICE, access_token));
  assert.equal(await c.line(), 'A02 OK AUTHENTICATE completed.');
  c.send('A03 CAPABILITY');
  assert.match((await c.until(/^A03 /))[0]!, /MOVE .*CLIENTACCESSRULES CLIENTNETWORKPRESENCELOCATION BACKENDAUTHENTICATE$/);
  c.close();
});

test('"User is authenticated but not connected." for an app without FullAccess on the mailbox', async () => {
  const daemon = await appToken(sb);
  const c = await RawClient.connect(sb.endpoints.imap.port, { tls: true, ca });
  await c.line();
  c.send(`A01 AUTHENTICATE XOAUTH2 ${xoauth2('bob@contoso.onmicrosoft.com', daemon)}`);
  assert.equal(await c.line(), 'A01 OK AUTHENTICATE completed.');
  c.send('A02 SELECT INBOX');
  assert.equal(await c.line(), 'A02 BAD User is authenticated but not connected.');
  assert.equal(await c.line(), '* BYE Connection closed. 14');
});

test('imapflow (a client we did not write) over STARTTLS: list, fetch, flag, expunge, IDLE', async () => {
  sb.mail.append('info@contoso.onmicrosoft.com', 'Subject: first\r\nMessage-ID: <i1@x>\r\n\r\none\r\n');
  sb.mail.append('info@contoso.onmicrosoft.com', 'Subject: second\r\nMessage-ID: <i2@x>\r\n\r\ntwo\r\n');
  const daemon = await appToken(sb);
  const client = new ImapFlow({ host: '127.0.0.1', port: sb.endpoints.imapStarttls.port, secure: false, tls: { ca, servername: 'localhost' }, auth: { user: 'info@contoso.onmicrosoft.com', accessToken: daemon }, logger: process.env.IMAP_DEBUG ? ({ debug: dbg, info: dbg, warn: dbg, error: dbg } as never) : false, logRaw: !!process.env.IMAP_DEBUG });
  await client.connect();
  try {
    const lock = await client.getMailboxLock('INBOX');
    try {
      const mb = client.mailbox as { exists: number; uidValidity: bigint };
      assert.equal(mb.exists, 2);
      const seen: string[] = [];
      for await (const msg of client.fetch('1:*', { uid: true, source: true, flags: true })) seen.push(msg.source!.toString());
      assert.deepEqual(seen.map((s) => /Subject: (\w+)/.exec(s)![1]), ['first', 'second']);
      const unseen = await client.search({ seen: false }, { uid: true });
      assert.equal((unseen as number[]).length, 2);
      await client.messageFlagsAdd({ uid: '1' }, ['\\Seen'], { uid: true });
      assert.equal(((await client.search({ seen: false }, { uid: true })) as number[]).length, 1);
      const arrived = new Promise<number>((resolve) => client.once('exists', (d: { count: number }) => resolve(d.count)));
      const idle = client.idle();
      sb.mail.append('info@contoso.onmicrosoft.com', 'Subject: third\r\n\r\nthree\r\n');
      assert.equal(await arrived, 3);
      await client.messageDelete({ uid: '1' }, { uid: true });
      void idle;
    } finally {
      lock.release();
    }
  } finally {
    await client.logout();
  }
  assert.deepEqual(sb.mail.mailbox('info@contoso.onmicrosoft.com').messages.map((m) => m.uid), [2, 3]);
});
