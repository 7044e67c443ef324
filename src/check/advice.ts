/**
 * Causes and fixes for check failures that are not a Microsoft reply (DNS, TCP, TLS, token claims,
 * local configuration), in English and Japanese, plus the bridge from catalogue entries.
 */
import { explainAadsts, explainReply, type CatalogueEntry, type ReplyProtocol } from '../core/catalogue.js';
import type { Explanation } from './types.js';

const A = (id: string, temporary: boolean, en: [string, string], ja: [string, string]): Explanation => ({ id, temporary, en: { cause: en[0], fix: en[1] }, ja: { cause: ja[0], fix: ja[1] } });

export const ADVICE = {
  accountMissing: A('account-missing', false, ['No account with this address is in the token store.', 'Add it: `relay365 account add <email> --tenant <tenant> --client-id <app id>` (see `relay365 account add --help`), or pass --state for the right state directory.'], ['このアドレスのアカウントがトークンストアにありません。', '`relay365 account add <メール> --tenant <テナント> --client-id <アプリ ID>` で追加するか、--state で正しい状態ディレクトリを指定してください。']),
  needsReauth: A('account-needs-reauth', false, ['The account\'s refresh token is no longer valid.', 'Run `relay365 account reauth <account>` and sign in again.'], ['アカウントのリフレッシュトークンが無効になっています。', '`relay365 account reauth <アカウント>` を実行して再度サインインしてください。']),
  purposeMissing: A('account-purpose-missing', false, ['The account was not set up for this protocol, so its token has no permission for it.', 'Add the protocol to the account: `relay365 account add <email> --scopes smtp,imap,pop,graph` (delegated: sign in again; application: grant the matching permission and admin consent).'], ['アカウントがこのプロトコル用に設定されていないため、トークンに権限がありません。', '`relay365 account add <メール> --scopes smtp,imap,pop,graph` でプロトコルを追加してください（委任は再サインイン、アプリはアクセス許可と管理者の同意が必要）。']),
  dns: A('dns-failed', true, ['The host name does not resolve.', 'Check the spelling of --host, the DNS resolver (/etc/resolv.conf) and any proxy requirements.'], ['ホスト名を解決できません。', '--host のつづり、DNS リゾルバー（/etc/resolv.conf）、プロキシの要否を確認してください。']),
  tcp: A('tcp-failed', true, ['The TCP connection failed or timed out — a firewall, a proxy or a wrong port.', 'Check outbound access to the port (587 SMTP, 993 IMAP, 995 POP3, 443 Graph); many providers block outbound SMTP ports.'], ['TCP 接続に失敗またはタイムアウトしました（ファイアウォール、プロキシ、ポート違い）。', '送信方向のポート（SMTP 587、IMAP 993、POP3 995、Graph 443）への通信を確認してください。']),
  noAnswer: A('no-answer', true, ['The server accepted the connection but did not answer in time.', 'Try again in a few minutes. If it keeps happening, check any proxy or firewall between this machine and the server (many hold or inspect HTTPS), and the server address (--host, --graph-url).'], ['サーバーは接続を受け付けましたが、時間内に応答しませんでした。', '数分後に再試行してください。続く場合は、このマシンとサーバーの間のプロキシやファイアウォール（HTTPS を保留・検査するものが多くあります）と、サーバーのアドレス（--host、--graph-url）を確認してください。']),
  tlsUnverified: A('tls-unverified', false, ['The server certificate could not be verified, so no credentials were sent.', 'Check the host name (it must be on the certificate) and the CA; for a private CA pass --ca-file. Do not disable verification in production.'], ['サーバー証明書を検証できないため、資格情報は送信していません。', 'ホスト名（証明書に含まれている必要があります）と CA を確認し、独自 CA の場合は --ca-file を指定してください。']),
  tlsOld: A('tls-old', false, ['The connection negotiated TLS older than 1.2, which Exchange Online refuses (421 4.7.66).', 'Update OpenSSL/Node.js or the TLS-terminating proxy to TLS 1.2 or later.'], ['TLS 1.2 未満で接続しました（Exchange Online は 421 4.7.66 で拒否します）。', 'OpenSSL/Node.js や TLS を終端するプロキシを TLS 1.2 以上に更新してください。']),
  certExpired: A('tls-cert-expired', false, ['The server certificate has expired.', 'The server operator must renew the certificate; check the system clock too.'], ['サーバー証明書の有効期限が切れています。', 'サーバー管理者が証明書を更新する必要があります。システム時刻も確認してください。']),
  noStarttls: A('starttls-missing', false, ['The server does not offer STARTTLS, so the token would travel in clear text.', 'Use the TLS port (--tls implicit) or the right host; relay365 never authenticates without TLS.'], ['サーバーが STARTTLS を提供していないため、トークンが平文で送られてしまいます。', 'TLS ポート（--tls implicit）または正しいホストを使用してください。']),
  noXoauth2: A('xoauth2-missing', false, ['The server does not advertise AUTH XOAUTH2 after TLS.', 'Check that the host is Exchange Online (smtp.office365.com / outlook.office365.com) and that SMTP AUTH / IMAP / POP are enabled for the mailbox.'], ['サーバーが TLS 後に AUTH XOAUTH2 を提示していません。', 'ホストが Exchange Online であること、メールボックスで SMTP AUTH / IMAP / POP が有効であることを確認してください。']),
  badGreeting: A('greeting-refused', true, ['The server refused the session at the greeting.', 'Read the reply; the server may be overloaded or block this address.'], ['サーバーが接続直後に拒否しました。', '応答を確認してください（過負荷、または接続元のブロック）。']),
  audienceGraph: A('claims-graph-audience', false, ['The token is for Microsoft Graph (aud https://graph.microsoft.com), not for Exchange — the classic result of requesting a bare "SMTP.Send" / "IMAP.AccessAsUser.All" scope. SMTP/IMAP/POP answer 535 5.7.3 / NO AUTHENTICATE failed.', 'Request https://outlook.office.com/SMTP.Send (etc.), or let relay365 choose: `relay365 account add <email> --scopes smtp,imap,pop`; for app-only use https://outlook.office365.com/.default.'], ['トークンが Exchange 用ではなく Microsoft Graph 用です（aud https://graph.microsoft.com）。プレフィックスのない SMTP.Send などを要求した典型的な結果で、SMTP/IMAP/POP は 535 5.7.3 / NO AUTHENTICATE failed を返します。', 'https://outlook.office.com/SMTP.Send などを要求するか、`relay365 account add <メール> --scopes smtp,imap,pop` を使用してください。アプリの場合は https://outlook.office365.com/.default です。']),
  audienceOutlook: A('claims-outlook-audience', false, ['The token is for Exchange (outlook.office.com), not for Microsoft Graph; Graph answers 401 InvalidAuthenticationToken.', 'Add the graph preset: `relay365 account add <email> --scopes graph` (application: Microsoft Graph Mail.Send with admin consent).'], ['トークンが Graph 用ではなく Exchange 用です。Graph は 401 InvalidAuthenticationToken を返します。', '`relay365 account add <メール> --scopes graph` を使用してください（アプリは Microsoft Graph の Mail.Send と管理者の同意）。']),
  audienceOther: A('claims-wrong-audience', false, ['The token is for another resource than this protocol needs.', 'Check the account\'s scope (`relay365 token <account> --decode`); use the presets (--scopes smtp,imap,pop,graph).'], ['トークンの対象リソースがこのプロトコルに合っていません。', '`relay365 token <アカウント> --decode` でスコープを確認し、プリセット（--scopes）を使用してください。']),
  permissionMissing: A('claims-permission-missing', false, ['The token does not carry the permission this protocol needs (scp for delegated, roles for application tokens).', 'Delegated: add the scope and sign in again. Application: add the permission (Office 365 Exchange Online: SMTP.SendAsApp / IMAP.AccessAsApp / POP.AccessAsApp; Microsoft Graph: Mail.Send) and grant admin consent.'], ['トークンにこのプロトコルに必要な権限（委任は scp、アプリは roles）がありません。', '委任: スコープを追加して再サインイン。アプリ: アクセス許可（Office 365 Exchange Online の SMTP.SendAsApp / IMAP.AccessAsApp / POP.AccessAsApp、Graph の Mail.Send）を追加して管理者の同意を与えてください。']),
  tokenExpired: A('claims-expired', true, ['The access token has expired.', 'relay365 refreshes automatically; if this persists, check the system clock (NTP).'], ['アクセストークンの有効期限が切れています。', 'relay365 が自動更新します。続く場合はシステム時刻（NTP）を確認してください。']),
  upnMismatch: A('claims-upn-mismatch', false, ['The token belongs to another user than the mailbox in user=; this works only with FullAccess (IMAP/POP) or SendAs rights on that mailbox.', 'Add-MailboxPermission -Identity <mailbox> -User <signed-in user> -AccessRights FullAccess, or sign in as the mailbox itself.'], ['トークンのユーザーと user= のメールボックスが異なります。そのメールボックスへの FullAccess（IMAP/POP）や SendAs がある場合のみ動作します。', 'Add-MailboxPermission -Identity <メールボックス> -User <サインインユーザー> -AccessRights FullAccess を実行するか、メールボックス自身でサインインしてください。']),
  tokenFailed: A('token-failed', true, ['No access token could be obtained.', 'Read the message above; `relay365 account list` shows the account state.'], ['アクセストークンを取得できませんでした。', '上のメッセージを確認してください。`relay365 account list` でアカウントの状態を確認できます。']),
  unexpectedReply: A('unexpected-reply', false, ['The server answered with a reply relay365 has no explanation for.', 'Paste the reply into `relay365 explain`, or search for it with the enhanced status code.'], ['relay365 に説明のない応答が返されました。', '応答を `relay365 explain` に貼り付けるか、拡張ステータスコードで検索してください。']),
} as const;

export function fromCatalogue(entry: CatalogueEntry): Explanation {
  return { id: entry.id, temporary: entry.temporary, en: entry.en, ja: entry.ja };
}

/** The explanation for a server reply, or the generic advice when the catalogue has nothing. */
export function explainServerReply(reply: string, protocol: ReplyProtocol): Explanation {
  const e = explainReply(reply, protocol);
  return e ? fromCatalogue(e) : ADVICE.unexpectedReply;
}

export function explainAadstsCode(code: number | undefined): Explanation | undefined {
  const e = code === undefined ? undefined : explainAadsts(code);
  return e ? fromCatalogue(e) : undefined;
}
