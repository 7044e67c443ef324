/**
 * One catalogue of the identity-platform (AADSTS) codes and the Exchange Online SMTP/IMAP/POP and
 * Graph replies relay365 meets (fact sheet §1.8, §3, §4.3, §6.6, §7): the cause in plain words and
 * the fix, in English and Japanese. Used by `relay365 explain`, error hints and the relay's logs.
 */

export type Lang = 'en' | 'ja';

export interface CatalogueEntry {
  id: string;
  kind: 'aadsts' | 'smtp' | 'imap' | 'pop' | 'graph';
  /** AADSTS number, or reply matcher. */
  aadsts?: number;
  match?: RegExp;
  temporary: boolean;
  en: { cause: string; fix: string };
  ja: { cause: string; fix: string };
}

const REAUTH = { en: 'Run `relay365 account reauth <account>` and sign in again.', ja: '`relay365 account reauth <アカウント>` を実行して再度サインインしてください。' };

const E = (id: string, kind: CatalogueEntry['kind'], key: number | RegExp, temporary: boolean, en: [string, string], ja: [string, string]): CatalogueEntry => ({
  id,
  kind,
  ...(typeof key === 'number' ? { aadsts: key } : { match: key }),
  temporary,
  en: { cause: en[0], fix: en[1] },
  ja: { cause: ja[0], fix: ja[1] },
});

export const CATALOGUE: CatalogueEntry[] = [
  E('AADSTS7000215', 'aadsts', 7000215, false, ['The client secret is wrong — often the secret ID was pasted instead of the secret value.', 'Copy the secret VALUE (shown once when created) from App registrations > Certificates & secrets, or create a new secret.'], ['クライアントシークレットが正しくありません（シークレット ID を貼り付けていることが多い）。', '「証明書とシークレット」でシークレットの「値」をコピーするか、新しいシークレットを作成してください。']),
  E('AADSTS7000222', 'aadsts', 7000222, false, ['The client secret has expired.', 'Create a new client secret (App registrations > Certificates & secrets) and update the account, or use a certificate.'], ['クライアントシークレットの有効期限が切れています。', '新しいクライアントシークレットを作成してアカウントを更新するか、証明書を使用してください。']),
  E('AADSTS7000218', 'aadsts', 7000218, false, ['The app is confidential but no secret or assertion was sent — typical for device-code sign-in with "Allow public client flows" off.', 'Set "Allow public client flows" to Yes (App registration > Authentication), or pass the client secret.'], ['機密クライアントなのにシークレットが送られていません（「パブリック クライアント フローを許可する」が無効のままデバイスコードを使った場合など）。', 'アプリ登録の「認証」で「パブリック クライアント フローを許可する」を「はい」にするか、クライアントシークレットを指定してください。']),
  E('AADSTS700025', 'aadsts', 700025, false, ['The app is a public client, so it must not send a client secret.', 'Remove the secret from the account, or make the app confidential.'], ['パブリッククライアントのためシークレットは送信できません。', 'アカウントからシークレットを削除してください。']),
  E('AADSTS700016', 'aadsts', 700016, false, ['The application (client) id was not found in this tenant.', 'Check --client-id and --tenant; an admin may need to consent to the app in this tenant.'], ['このテナントにアプリケーション（クライアント）ID が見つかりません。', '--client-id と --tenant を確認し、必要なら管理者がテナントでアプリに同意してください。']),
  E('AADSTS90002', 'aadsts', 90002, false, ['The tenant does not exist (typo, or another cloud such as GCC High).', 'Use the tenant id (GUID) or a verified domain, and the right --cloud.'], ['テナントが見つかりません（入力ミス、または GCC High など別クラウド）。', 'テナント ID（GUID）または確認済みドメインと、正しい --cloud を指定してください。']),
  E('AADSTS50194', 'aadsts', 50194, false, ['A single-tenant app was used on the /common endpoint.', 'Use the tenant id or domain as --tenant.'], ['シングルテナントのアプリを /common で使用しています。', '--tenant にテナント ID またはドメインを指定してください。']),
  E('AADSTS9001023', 'aadsts', 9001023, false, ['Client credentials cannot use /common or /consumers.', 'Use --tenant <tenant id or domain>.'], ['クライアント資格情報フローは /common や /consumers では使えません。', '--tenant にテナント ID またはドメインを指定してください。']),
  E('AADSTS50059', 'aadsts', 50059, false, ['The tenant could not be determined from the request.', 'Use a tenant-specific authority (--tenant).'], ['要求からテナントを特定できません。', 'テナント固有の --tenant を指定してください。']),
  E('AADSTS65001', 'aadsts', 65001, false, ['Consent is missing for the app and these permissions.', 'Sign in interactively once, or have an admin grant consent (Enterprise applications > Permissions > Grant admin consent).'], ['アプリとアクセス許可への同意がありません。', '一度対話的にサインインするか、管理者に「管理者の同意を与えます」を実行してもらってください。']),
  E('AADSTS90094', 'aadsts', 90094, false, ['Admin consent is required by tenant policy.', 'Ask an administrator to grant admin consent for the app.'], ['テナントのポリシーにより管理者の同意が必要です。', '管理者にアプリへの同意を依頼してください。']),
  E('AADSTS70011', 'aadsts', 70011, false, ['A scope is not valid — for example SMTP.Send without the https://outlook.office.com/ prefix, or .default missing.', 'Use https://outlook.office.com/SMTP.Send (delegated) or https://outlook.office365.com/.default (application); `--scopes smtp,imap,pop` chooses them for you.'], ['スコープが不正です（https://outlook.office.com/ の付かない SMTP.Send、.default の欠落など）。', '委任は https://outlook.office.com/SMTP.Send、アプリケーションは https://outlook.office365.com/.default を使用してください。']),
  E('AADSTS1002012', 'aadsts', 1002012, false, ['Client credentials were requested with a delegated scope.', 'Use https://outlook.office365.com/.default with the application permission SMTP.SendAsApp / IMAP.AccessAsApp / POP.AccessAsApp.'], ['クライアント資格情報フローで委任スコープを要求しています。', 'アプリケーションのアクセス許可と https://outlook.office365.com/.default を使用してください。']),
  E('AADSTS500011', 'aadsts', 500011, false, ['The resource (e.g. Office 365 Exchange Online) was not found in the tenant — misspelled, or Exchange is not licensed.', 'Check the scope spelling and the tenant\'s Exchange Online licence.'], ['リソース（Exchange Online など）がテナントに見つかりません。', 'スコープのつづりと Exchange Online のライセンスを確認してください。']),
  E('AADSTS50173', 'aadsts', 50173, false, ['The refresh token was revoked — the user changed or reset the password, or an admin revoked sessions.', REAUTH.en], ['リフレッシュトークンが失効しました（パスワード変更・リセット、または管理者によるセッション取り消し）。', REAUTH.ja]),
  E('AADSTS700082', 'aadsts', 700082, false, ['The refresh token expired after 90 days without use.', `${REAUTH.en} relay365 refreshes idle accounts in the background to avoid this.`], ['リフレッシュトークンが 90 日間未使用で期限切れになりました。', `${REAUTH.ja} relay365 は未使用のアカウントをバックグラウンドで更新してこれを防ぎます。`]),
  E('AADSTS70008', 'aadsts', 70008, false, ['The authorization code or refresh token expired.', REAUTH.en], ['認可コードまたはリフレッシュトークンの期限切れです。', REAUTH.ja]),
  E('AADSTS70000', 'aadsts', 70000, false, ['The grant is invalid or malformed (truncated token, or a token of another app).', REAUTH.en], ['許可が無効または不正な形式です（切り詰められたトークンや別アプリのトークン）。', REAUTH.ja]),
  E('AADSTS54005', 'aadsts', 54005, false, ['The authorization code was already redeemed.', 'Start the sign-in again.'], ['認可コードは使用済みです。', 'サインインをやり直してください。']),
  E('AADSTS50076', 'aadsts', 50076, false, ['Multi-factor authentication is required.', 'Use the device-code or browser flow (not password/ROPC): `relay365 account reauth <account>`.'], ['多要素認証が必要です。', 'パスワード（ROPC）ではなくデバイスコードまたはブラウザーのフローを使用してください。']),
  E('AADSTS53003', 'aadsts', 53003, false, ['A Conditional Access policy blocks this sign-in.', 'An administrator must allow this client, location or device in Conditional Access.'], ['条件付きアクセス ポリシーによりサインインがブロックされています。', '管理者に条件付きアクセスでこのクライアント・場所・デバイスを許可してもらってください。']),
  E('AADSTS530035', 'aadsts', 530035, false, ['Security Defaults block this sign-in.', 'Turn off Security Defaults (Entra ID > Properties) and use Conditional Access instead.'], ['セキュリティの既定値群によりブロックされています。', 'セキュリティの既定値群を無効にし、条件付きアクセスを使用してください。']),
  E('AADSTS50126', 'aadsts', 50126, false, ['Wrong user name or password.', 'Check the credentials (ROPC only).'], ['ユーザー名またはパスワードが違います。', '資格情報を確認してください。']),
  E('AADSTS50034', 'aadsts', 50034, false, ['The user account does not exist in this tenant.', 'Check the address and the tenant.'], ['ユーザーがこのテナントに存在しません。', 'アドレスとテナントを確認してください。']),
  E('AADSTS50055', 'aadsts', 50055, false, ['The password has expired.', 'Change the password, then re-authorize the account.'], ['パスワードの有効期限が切れています。', 'パスワードを変更してからアカウントを再認証してください。']),
  E('AADSTS50057', 'aadsts', 50057, false, ['The user account is disabled.', 'Enable the account in Entra ID.'], ['ユーザーアカウントが無効です。', 'Entra ID でアカウントを有効にしてください。']),
  E('AADSTS50053', 'aadsts', 50053, true, ['The account is locked (too many attempts).', 'Wait, then sign in again; check for clients with old passwords.'], ['試行回数超過によりアカウントがロックされています。', 'しばらく待ってから再試行してください。']),
  E('AADSTS700024', 'aadsts', 700024, false, ['The client assertion is outside its validity window (clock skew).', 'Fix the system clock (NTP).'], ['クライアントアサーションの有効期間外です（時刻のずれ）。', 'システム時刻（NTP）を修正してください。']),
  E('AADSTS700027', 'aadsts', 700027, false, ['The certificate is not registered on the app, or the signature is wrong.', 'Upload the certificate (.cer/.pem) under Certificates & secrets.'], ['証明書がアプリに登録されていないか、署名が不正です。', '「証明書とシークレット」に証明書をアップロードしてください。']),
  E('AADSTS50027', 'aadsts', 50027, false, ['The client assertion has no certificate thumbprint header.', 'relay365 sets x5t#S256 (PS256) or x5t (RS256); check custom token endpoints.'], ['クライアントアサーションに証明書の拇印ヘッダーがありません。', 'カスタムのトークンエンドポイントを確認してください。']),
  E('AADSTS70016', 'aadsts', 70016, true, ['Device-code sign-in is pending.', 'Open the page shown and enter the code.'], ['デバイスコードのサインイン待ちです。', '表示されたページを開いてコードを入力してください。']),
  E('AADSTS70020', 'aadsts', 70020, false, ['The device code expired before sign-in finished.', 'Run the command again and sign in within 15 minutes.'], ['サインイン完了前にデバイスコードの期限が切れました。', 'コマンドを再実行し、15 分以内にサインインしてください。']),

  E('smtp-5.7.139-tenant', 'smtp', /5\.7\.139.*disabled for the Tenant/i, false, ['SMTP AUTH is disabled for the whole tenant; this applies to OAuth too.', 'Set-TransportConfig -SmtpClientAuthenticationDisabled $false, or enable only this mailbox: Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false'], ['テナント全体で SMTP AUTH が無効です（OAuth でも同じです）。', 'Set-TransportConfig -SmtpClientAuthenticationDisabled $false、またはメールボックスのみ Set-CASMailbox -Identity <メールボックス> -SmtpClientAuthenticationDisabled $false']),
  E('smtp-5.7.139-mailbox', 'smtp', /5\.7\.139.*disabled for the Mailbox/i, false, ['SMTP AUTH is disabled for this mailbox.', 'Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false'], ['このメールボックスで SMTP AUTH が無効です。', 'Set-CASMailbox -Identity <メールボックス> -SmtpClientAuthenticationDisabled $false']),
  E('smtp-5.7.139-security-defaults', 'smtp', /5\.7\.139.*security defaults/i, false, ['Security Defaults are on; SMTP AUTH does not work with them.', 'Turn off Security Defaults and protect sign-ins with Conditional Access.'], ['セキュリティの既定値群が有効で、SMTP AUTH が使えません。', 'セキュリティの既定値群を無効にし、条件付きアクセスで保護してください。']),
  E('smtp-5.7.139-basic', 'smtp', /5\.7\.139.*basic authentication is disabled/i, false, ['Basic authentication (user name and password) is disabled.', 'Use OAuth: `relay365 account add` and an SMTP route with XOAUTH2.'], ['基本認証（ユーザー名とパスワード）は無効です。', 'OAuth を使用してください（relay365 account add）。']),
  E('smtp-5.7.139', 'smtp', /5\.7\.139/, false, ['Exchange refused SMTP AUTH by policy (Conditional Access, authentication policy, or missing SMTP.SendAsApp for app-only tokens).', 'Check Conditional Access sign-in logs; for application tokens grant SMTP.SendAsApp and admin consent.'], ['ポリシーにより SMTP AUTH が拒否されました。', 'サインインログを確認し、アプリ トークンなら SMTP.SendAsApp と管理者の同意を付与してください。']),
  E('smtp-5.7.3', 'smtp', /5\.7\.3\b/, false, ['The token was refused: wrong audience or scope (a bare SMTP.Send gives a Graph token), user= is not the signed-in mailbox, the token expired, or (app-only) the Exchange service principal or mailbox permission is missing.', 'Check `relay365 token <account> --decode` (aud https://outlook.office.com, scp SMTP.Send or roles SMTP.SendAsApp). For app-only: New-ServicePrincipal -AppId <app id> -ObjectId <Enterprise Application object id> and Add-MailboxPermission -Identity <mailbox> -User <service principal> -AccessRights FullAccess.'], ['トークンが拒否されました（対象・スコープ違い、user= がサインインしたメールボックスでない、期限切れ、アプリの場合はサービス プリンシパルや権限の不足）。', '`relay365 token <アカウント> --decode` で aud と scp/roles を確認してください。アプリの場合は New-ServicePrincipal（エンタープライズ アプリケーションのオブジェクト ID）と Add-MailboxPermission を実行してください。']),
  E('smtp-5.7.57', 'smtp', /5\.7\.57/, false, ['The client sent MAIL FROM without authenticating.', 'Configure an account for this route.'], ['認証せずに MAIL FROM を送信しました。', 'このルートにアカウントを設定してください。']),
  E('smtp-5.7.30', 'smtp', /5\.7\.30/, false, ['Basic authentication is no longer supported for client submission.', 'Switch to OAuth (XOAUTH2) with relay365.'], ['クライアント送信で基本認証はサポートされなくなりました。', 'relay365 で OAuth（XOAUTH2）に切り替えてください。']),
  E('smtp-5.7.4', 'smtp', /5\.7\.4\b/, false, ['AUTH was sent before STARTTLS, or the mechanism is unknown.', 'Use STARTTLS on port 587 before AUTH XOAUTH2.'], ['STARTTLS 前に AUTH を送ったか、未知の認証方式です。', 'ポート 587 で STARTTLS の後に AUTH XOAUTH2 を使用してください。']),
  E('smtp-sendas', 'smtp', /5\.7\.60|5\.2\.252|SendAsDenied/i, false, ['The mailbox may not send as this From address.', 'Add-RecipientPermission -Identity <From address> -Trustee <mailbox> -AccessRights SendAs, or enable rewrite_sender on the route.'], ['このメールボックスは指定された From アドレスとして送信できません。', 'Add-RecipientPermission -Identity <From アドレス> -Trustee <メールボックス> -AccessRights SendAs を実行するか、ルートで rewrite_sender を有効にしてください。']),
  E('smtp-quota', 'smtp', /SubmissionQuotaExceeded/i, true, ['The mailbox exceeded its daily recipient limit (10,000 per 24 hours).', 'Wait for the 24-hour window; relay365 holds the account\'s deliveries. Spread traffic over several mailboxes or use HVE.'], ['1 日の受信者上限（24 時間で 10,000）を超えました。', '24 時間待つ必要があります（relay365 は配送を保留します）。複数のメールボックスや HVE に分散してください。']),
  E('smtp-4.3.2', 'smtp', /4\.3\.2/, true, ['More than 3 concurrent connections for this mailbox.', 'relay365 caps its own pool at 3; another client sends as the same mailbox.'], ['このメールボックスの同時接続が 3 を超えました。', 'relay365 自身は 3 接続までです。同じメールボックスで送信している他のクライアントを確認してください。']),
  E('smtp-430-logon', 'smtp', /MapiExceptionLogonFailed|^430 4\.2\.0/i, true, ['The application token was accepted but the service principal cannot open the mailbox.', 'Add-MailboxPermission -Identity <mailbox> -User <service principal id> -AccessRights FullAccess'], ['アプリのトークンは受け付けられましたが、サービス プリンシパルがメールボックスを開けません。', 'Add-MailboxPermission -Identity <メールボックス> -User <サービス プリンシパル> -AccessRights FullAccess']),
  E('smtp-4.7.66', 'smtp', /4\.7\.66/, false, ['TLS 1.0/1.1 are refused; TLS 1.2 or later is required.', 'relay365 uses TLS 1.2+; check proxies that terminate TLS.'], ['TLS 1.0/1.1 は拒否されます（TLS 1.2 以上が必要）。', 'TLS を終端するプロキシを確認してください。']),
  E('smtp-5.5.127', 'smtp', /5\.5\.127/, true, ['HVE rejects tokens with less than 10 minutes left.', 'relay365 refreshes earlier for HVE routes (preset hve).'], ['HVE は残り 10 分未満のトークンを拒否します。', 'HVE ルート（preset: hve）では relay365 が早めに更新します。']),
  E('smtp-5.5.124', 'smtp', /5\.5\.124/, false, ['HVE refused the XOAUTH2 data.', 'Use an application token (https://outlook.office365.com/.default) granted with Add-HVEAppAccess.'], ['HVE が XOAUTH2 データを拒否しました。', 'Add-HVEAppAccess で許可したアプリのトークンを使用してください。']),
  E('smtp-4.5.3', 'smtp', /4\.5\.3|5\.2\.254/, true, ['Too many recipients in one message (Exchange: 500).', 'relay365 limits recipients per message; split large mailings.'], ['1 通の受信者が多すぎます（Exchange: 500）。', '大量送信は分割してください。']),
  E('smtp-size', 'smtp', /5\.3\.4|MessageSubmissionExceeded/i, false, ['The message is larger than the mailbox may send (default 35 MB).', 'Raise MaxSendSize (Set-Mailbox) or send smaller attachments.'], ['メッセージがメールボックスの送信上限（既定 35 MB）を超えています。', 'Set-Mailbox で MaxSendSize を上げるか、添付を小さくしてください。']),

  E('imap-not-connected', 'imap', /authenticated but not connected/i, false, ['The token was accepted, but its identity has no access to the mailbox in user= (typical for app-only access without FullAccess, or the App registration\'s object id used in New-ServicePrincipal instead of the Enterprise Application\'s).', 'Add-MailboxPermission -Identity <mailbox> -User <service principal> -AccessRights FullAccess; register the SP with the Enterprise Application object id.'], ['トークンは受け付けられましたが、user= のメールボックスにアクセス権がありません（FullAccess 不足、または New-ServicePrincipal にアプリ登録のオブジェクト ID を使った場合）。', 'Add-MailboxPermission で FullAccess を付与し、サービス プリンシパルはエンタープライズ アプリケーションのオブジェクト ID で登録してください。']),
  E('imap-auth-failed', 'imap', /AUTHENTICATE failed/i, false, ['IMAP refused the token (audience/scope, expiry, user=, or a missing Exchange service principal).', 'Check `relay365 token <account> --protocol imap --decode`; for app-only run New-ServicePrincipal.'], ['IMAP がトークンを拒否しました。', '`relay365 token <アカウント> --protocol imap --decode` を確認し、アプリの場合は New-ServicePrincipal を実行してください。']),
  E('pop-auth-failed', 'pop', /-ERR Authentication failure/i, false, ['POP3 refused the token, or the identity has no FullAccess on the mailbox.', 'Check the POP scope (POP.AccessAsUser.All / POP.AccessAsApp), the service principal and Add-MailboxPermission.'], ['POP3 がトークンを拒否したか、メールボックスへの FullAccess がありません。', 'POP のスコープ、サービス プリンシパル、Add-MailboxPermission を確認してください。']),

  E('graph-ErrorSendAsDenied', 'graph', /ErrorSendAsDenied/, false, ['Graph: the mailbox may not send as the From address.', 'Grant SendAs, or send from the account mailbox.'], ['Graph: From アドレスとして送信する権限がありません。', 'SendAs を付与するか、アカウントのメールボックスから送信してください。']),
  E('graph-ErrorAccessDenied', 'graph', /ErrorAccessDenied/, false, ['Graph: the token lacks Mail.Send for this mailbox.', 'Delegated tokens send only as the signed-in user; application tokens need Mail.Send with admin consent.'], ['Graph: このメールボックスに対する Mail.Send がありません。', '委任はサインインユーザーのみ、アプリは管理者の同意付きの Mail.Send が必要です。']),
  E('graph-NoPermissionsInAccessToken', 'graph', /NoPermissionsInAccessToken/, false, ['Graph: the app-only token has no roles.', 'Grant the Microsoft Graph application permission Mail.Send and admin consent.'], ['Graph: アプリ トークンにロールがありません。', 'Microsoft Graph の Mail.Send（アプリケーション）と管理者の同意を付与してください。']),
  E('graph-InvalidAuthenticationToken', 'graph', /InvalidAuthenticationToken/, false, ['Graph: the token is expired or not for Graph (audience https://graph.microsoft.com).', 'Use the graph scope preset (--scopes graph).'], ['Graph: トークンの期限切れ、または Graph 用ではありません。', '--scopes graph を使用してください。']),
  E('graph-MailboxNotEnabledForRESTAPI', 'graph', /MailboxNotEnabledForRESTAPI/, false, ['Graph: the mailbox has no Exchange Online licence or is on-premises.', 'Assign an Exchange Online licence or use SMTP.'], ['Graph: メールボックスに Exchange Online ライセンスがないか、オンプレミスです。', 'ライセンスを割り当てるか SMTP を使用してください。']),
];

export function explainAadsts(code: number): CatalogueEntry | undefined {
  return CATALOGUE.find((e) => e.aadsts === code);
}

export function explainReply(text: string): CatalogueEntry | undefined {
  return CATALOGUE.find((e) => e.match && e.match.test(text));
}

/** "AADSTS50173", "50173" or a pasted server reply / error body. */
export function explain(input: string): CatalogueEntry | undefined {
  const aad = /AADSTS(\d+)/i.exec(input) ?? /^\s*(\d{5,7})\s*$/.exec(input);
  if (aad) {
    const e = explainAadsts(Number(aad[1]));
    if (e) return e;
  }
  return explainReply(input);
}

export function langFrom(env: NodeJS.ProcessEnv, flag?: string): Lang {
  if (flag === 'ja' || flag === 'en') return flag;
  return /^ja/i.test(env.LC_ALL || env.LC_MESSAGES || env.LANG || '') ? 'ja' : 'en';
}
