/**
 * One catalogue of the identity-platform (AADSTS) codes and the Exchange Online SMTP/IMAP/POP and
 * Graph replies relay365 meets (fact sheet §1.8, §3, §4.3, §6.6, §7): the cause in plain words and
 * the fix, in English and Japanese. Used by `relay365 explain` and `check`, error hints, the relay's
 * logs and the web page; docs/errors.md is generated from it (scripts/gen-errors-doc.ts).
 *
 * Stable API: CATALOGUE, catalogueEntries(), explainAadsts(), explainReply(), explain(), langFrom(),
 * localize(). Entries are tried in order, so the more specific reply patterns come first.
 */

export type Lang = 'en' | 'ja';
export type CatalogueKind = 'aadsts' | 'smtp' | 'imap' | 'pop' | 'graph';

export interface CatalogueEntry {
  id: string;
  kind: CatalogueKind;
  /** AADSTS number, or reply matcher. */
  aadsts?: number;
  match?: RegExp;
  /** A literal reply this entry explains (fact sheet wording); a test checks it resolves to this entry. */
  example?: string;
  temporary: boolean;
  en: { cause: string; fix: string };
  ja: { cause: string; fix: string };
}

/** An entry's text in one language, flattened for printing and JSON. */
export interface LocalizedEntry {
  id: string;
  kind: CatalogueKind;
  temporary: boolean;
  cause: string;
  fix: string;
}

const REAUTH = { en: 'Run `relay365 account reauth <account>` and sign in again.', ja: '`relay365 account reauth <アカウント>` を実行して再度サインインしてください。' };
const SP_FIX = {
  en: 'Register the app in Exchange with the Enterprise Application\'s object id (Entra ID > Enterprise applications — not the App registration\'s object id): New-ServicePrincipal -AppId <application id> -ObjectId <Enterprise Application object id>; then Add-MailboxPermission -Identity <mailbox> -User <service principal id> -AccessRights FullAccess.',
  ja: 'エンタープライズ アプリケーションのオブジェクト ID（アプリの登録のオブジェクト ID ではありません）で Exchange に登録してください: New-ServicePrincipal -AppId <アプリケーション ID> -ObjectId <エンタープライズ アプリケーションのオブジェクト ID>。その後 Add-MailboxPermission -Identity <メールボックス> -User <サービス プリンシパル ID> -AccessRights FullAccess を実行します。',
};

const E = (id: string, kind: CatalogueKind, key: number | RegExp, temporary: boolean, en: [string, string], ja: [string, string], example?: string): CatalogueEntry => ({
  id,
  kind,
  ...(typeof key === 'number' ? { aadsts: key } : { match: key }),
  ...(example !== undefined ? { example } : {}),
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
  E('AADSTS90130', 'aadsts', 90130, false, ['The application is not supported over the /common or /consumers endpoints (not registered for personal accounts).', 'Use the tenant id or domain as --tenant, or make the app registration accept personal accounts.'], ['このアプリは /common や /consumers では使えません（個人アカウント向けに登録されていません）。', '--tenant にテナント ID またはドメインを指定するか、アプリ登録で個人アカウントを許可してください。']),
  E('AADSTS90124', 'aadsts', 90124, false, ['The resource is not supported over the /common or /consumers endpoints.', 'Use the tenant id or domain as --tenant.'], ['このリソースは /common や /consumers では使えません。', '--tenant にテナント ID またはドメインを指定してください。']),
  E('AADSTS70043', 'aadsts', 70043, false, ['The refresh token expired because of a Conditional Access sign-in frequency policy.', `${REAUTH.en} Ask the administrator to exclude this account or app from the sign-in frequency policy if unattended sending is needed.`], ['条件付きアクセスのサインイン頻度ポリシーによりリフレッシュトークンが期限切れになりました。', `${REAUTH.ja} 無人運用が必要なら、管理者にサインイン頻度ポリシーの対象外にしてもらってください。`]),
  E('AADSTS700084', 'aadsts', 700084, false, ['A single-page-app refresh token reached its fixed 24-hour lifetime.', `Register a "Mobile and desktop applications" redirect URI (http://localhost) instead of a SPA one, then ${REAUTH.en.charAt(0).toLowerCase()}${REAUTH.en.slice(1)}`], ['SPA 用のリフレッシュトークンが 24 時間の固定有効期間に達しました。', `リダイレクト URI を SPA ではなく「モバイル アプリケーションとデスクトップ アプリケーション」（http://localhost）で登録し、${REAUTH.ja}`]),
  E('AADSTS50011', 'aadsts', 50011, false, ['The redirect URI in the request does not match any registered for the app (port or trailing slash differ).', 'Register http://localhost under App registration > Authentication > Mobile and desktop applications; loopback ports are then accepted.'], ['要求のリダイレクト URI がアプリに登録されたものと一致しません（ポートや末尾のスラッシュの違い）。', 'アプリ登録の「認証」>「モバイル アプリケーションとデスクトップ アプリケーション」に http://localhost を登録してください。']),
  E('AADSTS9002313', 'aadsts', 9002313, false, ['The request is malformed (bad parameter encoding).', 'Check custom token endpoints or proxies that rewrite the request body.'], ['要求の形式が不正です（パラメーターのエンコード不良）。', 'カスタムのトークンエンドポイントや要求を書き換えるプロキシを確認してください。']),
  E('AADSTS900144', 'aadsts', 900144, false, ['A required parameter is missing from the token request (e.g. device_code sent as code to the v2 endpoint).', 'Use the v2.0 endpoints; check custom --token-endpoint settings.'], ['トークン要求に必須パラメーターがありません（v2 エンドポイントに device_code ではなく code を送った場合など）。', 'v2.0 エンドポイントを使用し、カスタムのトークンエンドポイント設定を確認してください。']),
  E('AADSTS50079', 'aadsts', 50079, false, ['The user must register for multi-factor authentication.', 'Sign in once in a browser to complete MFA registration, then `relay365 account reauth <account>` with the device-code or browser flow.'], ['ユーザーが多要素認証の登録を完了する必要があります。', 'ブラウザーで一度サインインして MFA の登録を完了し、デバイスコードまたはブラウザーのフローで再認証してください。']),
  E('AADSTS50020', 'aadsts', 50020, false, ['The account belongs to another tenant or is a personal Microsoft account that is not in this tenant.', 'Sign in with an account of this tenant, use --tenant consumers/common for personal accounts, or invite the user as a guest.'], ['別テナントのアカウント、またはこのテナントにない個人用 Microsoft アカウントです。', 'このテナントのアカウントでサインインするか、個人アカウントなら --tenant consumers/common を使用してください。']),
  E('AADSTS7000112', 'aadsts', 7000112, false, ['The application is disabled.', 'An administrator must enable the app (Enterprise applications > Properties > Enabled for users to sign in).'], ['アプリケーションが無効になっています。', '管理者がエンタープライズ アプリケーションの「ユーザーのサインインを有効にする」を「はい」にしてください。']),
  E('AADSTS70018', 'aadsts', 70018, false, ['The device code entered on the sign-in page was wrong.', 'Run the command again and type the code exactly as shown.'], ['サインインページで入力したデバイスコードが間違っています。', 'コマンドを再実行し、表示されたコードを正確に入力してください。']),
  E('AADSTS70019', 'aadsts', 70019, false, ['The verification code expired.', 'Run the command again and sign in within 15 minutes.'], ['確認コードの有効期限が切れました。', 'コマンドを再実行し、15 分以内にサインインしてください。']),

  E('smtp-5.7.139-tenant', 'smtp', /5\.7\.139.*disabled for the Tenant/i, false, ['SMTP AUTH is disabled for the whole tenant; this applies to OAuth too.', 'Set-TransportConfig -SmtpClientAuthenticationDisabled $false, or enable only this mailbox: Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false'], ['テナント全体で SMTP AUTH が無効です（OAuth でも同じです）。', 'Set-TransportConfig -SmtpClientAuthenticationDisabled $false、またはメールボックスのみ Set-CASMailbox -Identity <メールボックス> -SmtpClientAuthenticationDisabled $false'], '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. [SN2PR00CA0018.namprd00.prod.outlook.com]'),
  E('smtp-5.7.139-mailbox', 'smtp', /5\.7\.139.*disabled for the Mailbox/i, false, ['SMTP AUTH is disabled for this mailbox (Microsoft 365 admin center > user > Mail > Manage email apps > Authenticated SMTP).', 'Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false'], ['このメールボックスで SMTP AUTH が無効です（Microsoft 365 管理センターの「メール アプリの管理」で「認証済み SMTP」がオフ）。', 'Set-CASMailbox -Identity <メールボックス> -SmtpClientAuthenticationDisabled $false'], '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information. [SN2PR00CA0018.namprd00.prod.outlook.com]'),
  E('smtp-5.7.139-security-defaults', 'smtp', /5\.7\.139.*security defaults/i, false, ['Security Defaults are on; SMTP AUTH does not work with them.', 'Turn off Security Defaults (Entra ID > Properties > Manage security defaults) and protect sign-ins with Conditional Access.'], ['セキュリティの既定値群が有効で、SMTP AUTH が使えません。', 'セキュリティの既定値群を無効にし（Entra ID > プロパティ > セキュリティの既定値群の管理）、条件付きアクセスで保護してください。'], "535 5.7.139 Authentication unsuccessful, user is locked by your organization's security defaults policy. Contact your administrator. [SN2PR00CA0018.namprd00.prod.outlook.com]"),
  E('smtp-5.7.139-basic', 'smtp', /5\.7\.139.*basic authentication is disabled/i, false, ['Basic authentication (user name and password) is disabled.', 'Use OAuth: `relay365 account add` and an SMTP route with XOAUTH2.'], ['基本認証（ユーザー名とパスワード）は無効です。', 'OAuth を使用してください（relay365 account add）。'], '535 5.7.139 Authentication unsuccessful, basic authentication is disabled. [SN2PR00CA0018.namprd00.prod.outlook.com]'),
  E('smtp-5.7.139', 'smtp', /5\.7\.139/, false, ['Exchange refused SMTP AUTH by policy: Conditional Access or an authentication policy, or an application token without the SMTP.SendAsApp permission (or RBAC for Applications role).', 'Check the Conditional Access sign-in logs; for application tokens grant SMTP.SendAsApp (Office 365 Exchange Online) with admin consent, or New-ManagementRoleAssignment -Role "Application SMTP.SendAsApp".'], ['ポリシーにより SMTP AUTH が拒否されました（条件付きアクセス・認証ポリシー、またはアプリ トークンに SMTP.SendAsApp がない）。', 'サインインログを確認し、アプリ トークンなら SMTP.SendAsApp（Office 365 Exchange Online）と管理者の同意を付与してください。'], '535 5.7.139 Authentication unsuccessful, the request did not meet the criteria to be authenticated successfully. Contact your administrator. [SN2PR00CA0018.namprd00.prod.outlook.com]'),
  E('smtp-5.7.3', 'smtp', /5\.7\.3\b/, false, ['The token was refused: wrong audience or scope (a bare SMTP.Send gives a Graph token), user= is not the signed-in mailbox, the token expired, or (app-only) the Exchange service principal or mailbox permission is missing.', `Check \`relay365 token <account> --decode\` (aud https://outlook.office.com, scp SMTP.Send, or roles SMTP.SendAsApp for app-only). For app-only: ${SP_FIX.en}`], ['トークンが拒否されました（対象・スコープ違い: https://outlook.office.com/ の付かない SMTP.Send は Graph 用トークンになる、user= がサインインしたメールボックスでない、期限切れ、アプリの場合はサービス プリンシパルや権限の不足）。', `\`relay365 token <アカウント> --decode\` で aud と scp/roles を確認してください。アプリの場合: ${SP_FIX.ja}`], '535 5.7.3 Authentication unsuccessful [SN2PR00CA0018.namprd00.prod.outlook.com]'),
  E('smtp-5.7.57', 'smtp', /5\.7\.57/, false, ['The client sent MAIL FROM without authenticating.', 'Configure an account for this route.'], ['認証せずに MAIL FROM を送信しました。', 'このルートにアカウントを設定してください。'], '530 5.7.57 Client not authenticated to send mail. [SN2PR00CA0018.namprd00.prod.outlook.com]'),
  E('smtp-5.7.30', 'smtp', /5\.7\.30/, false, ['Basic authentication is no longer supported for client submission.', 'Switch to OAuth (XOAUTH2) with relay365.'], ['クライアント送信で基本認証はサポートされなくなりました。', 'relay365 で OAuth（XOAUTH2）に切り替えてください。'], '550 5.7.30 Basic authentication is not supported for Client Submission.'),
  E('smtp-5.7.4', 'smtp', /5\.7\.4\b/, false, ['AUTH was sent before STARTTLS, or the mechanism is unknown.', 'Use STARTTLS on port 587 before AUTH XOAUTH2.'], ['STARTTLS 前に AUTH を送ったか、未知の認証方式です。', 'ポート 587 で STARTTLS の後に AUTH XOAUTH2 を使用してください。'], '504 5.7.4 Unrecognized authentication type'),
  E('smtp-sendas', 'smtp', /5\.7\.60|5\.2\.252|(?<!Error)SendAsDenied/i, false, ['The mailbox may not send as this From address.', 'Add-RecipientPermission -Identity <From address> -Trustee <mailbox> -AccessRights SendAs, or enable rewrite_sender on the route.'], ['このメールボックスは指定された From アドレスとして送信できません。', 'Add-RecipientPermission -Identity <From アドレス> -Trustee <メールボックス> -AccessRights SendAs を実行するか、ルートで rewrite_sender を有効にしてください。'], '550 5.7.60 SMTP; Client does not have permissions to send as this sender [SN2PR00CA0018.namprd00.prod.outlook.com]'),
  E('smtp-quota', 'smtp', /SubmissionQuotaExceeded/i, true, ['The mailbox exceeded its daily recipient limit (10,000 per 24 hours).', 'Wait for the 24-hour window; relay365 holds the account\'s deliveries. Spread traffic over several mailboxes or use HVE.'], ['1 日の受信者上限（24 時間で 10,000）を超えました。', '24 時間待つ必要があります（relay365 は配送を保留します）。複数のメールボックスや HVE に分散してください。'], '554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception'),
  E('smtp-mailbox-full', 'smtp', /5\.2\.2\b|ShutoffQuotaExceeded|5\.2\.251/i, false, ['The sending mailbox is full, so Exchange cannot save the copy in Sent Items (after repeated failures the sender is throttled, 5.2.251).', 'Free space in the mailbox (empty Deleted Items / Sent Items) or raise its quota.'], ['送信元メールボックスが一杯で、送信済みアイテムに保存できません（繰り返すと 5.2.251 で送信が制限されます）。', 'メールボックスの容量を空けるか、クォータを増やしてください。'], '554 5.2.2 mailbox full; STOREDRV.Submission.Exception:QuotaExceededException.MapiExceptionShutoffQuotaExceeded; Failed to process message'),
  E('smtp-5.2.253', 'smtp', /5\.2\.253/, false, ['The sender is throttled because its licence is invalid (continuous-error throttling).', 'Assign an Exchange Online licence to the mailbox.'], ['ライセンスが無効なため送信が制限されています。', 'メールボックスに Exchange Online ライセンスを割り当ててください。'], '550 5.2.253 Sender throttled due to continuous invalid license errors.'),
  E('smtp-5.2.255', 'smtp', /5\.2\.255/, false, ['The sender is throttled after repeatedly sending to invalid recipients.', 'Fix the recipient addresses (check the application\'s address list) and wait for the block to expire.'], ['無効な宛先への送信が続いたため送信が制限されています。', '宛先アドレスを修正し、制限が解除されるまで待ってください。'], '550 5.2.255 Sender throttled due to continuous invalid recipients errors.'),
  E('smtp-4.3.2', 'smtp', /4\.3\.2/, true, ['More than 3 concurrent connections for this mailbox.', 'relay365 caps its own pool at 3; another client sends as the same mailbox.'], ['このメールボックスの同時接続が 3 を超えました。', 'relay365 自身は 3 接続までです。同じメールボックスで送信している他のクライアントを確認してください。'], '432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded'),
  E('smtp-430-logon', 'smtp', /MapiExceptionLogonFailed|^430 4\.2\.0/i, true, ['The application token was accepted but the service principal cannot open the mailbox (no FullAccess).', 'Add-MailboxPermission -Identity <mailbox> -User <service principal id> -AccessRights FullAccess'], ['アプリのトークンは受け付けられましたが、サービス プリンシパルがメールボックスを開けません（FullAccess なし）。', 'Add-MailboxPermission -Identity <メールボックス> -User <サービス プリンシパル ID> -AccessRights FullAccess'], '430 4.2.0 STOREDRV; mailbox logon failure; STOREDRV.Submission.Exception:ConnectionFailedTransientException.MapiExceptionLogonFailed; Cannot open mailbox.'),
  E('smtp-4.7.66', 'smtp', /4\.7\.66/, true, ['TLS 1.0/1.1 are refused; TLS 1.2 or later is required.', 'relay365 uses TLS 1.2+; check proxies that terminate TLS.'], ['TLS 1.0/1.1 は拒否されます（TLS 1.2 以上が必要）。', 'TLS を終端するプロキシを確認してください。'], '421 4.7.66 TLS 1.0 and 1.1 are not supported. Please upgrade/update your client to support TLS 1.2. Visit https://aka.ms/smtp_auth_tls. [SA9P221CA0019.NAMP221.PROD.OUTLOOK.COM]'),
  E('smtp-5.5.127', 'smtp', /5\.5\.127/, true, ['HVE rejects tokens with less than 10 minutes left.', 'relay365 refreshes earlier for HVE routes (preset hve).'], ['HVE は残り 10 分未満のトークンを拒否します。', 'HVE ルート（preset: hve）では relay365 が早めに更新します。'], '501 5.5.127 Invalid XOAUTH2 auth data - Token will expire soon'),
  E('smtp-5.5.124', 'smtp', /5\.5\.124/, false, ['HVE refused the XOAUTH2 data.', 'Use an application token (https://outlook.office365.com/.default) granted with Add-HVEAppAccess.'], ['HVE が XOAUTH2 データを拒否しました。', 'Add-HVEAppAccess で許可したアプリのトークンを使用してください。'], '501 5.5.124 Invalid XOAUTH2 auth data'),
  E('smtp-5.5.105', 'smtp', /5\.5\.105|External sending is not supported/i, false, ['High Volume Email accounts may send only to recipients inside the organisation.', 'Send external mail through a normal mailbox route (smtp.office365.com) instead of HVE.'], ['HVE アカウントは組織内の宛先にしか送信できません。', '外部宛ては HVE ではなく通常のメールボックス（smtp.office365.com）経由で送信してください。'], '550 5.5.105 External sending is not supported for High Volume Email accounts'),
  E('smtp-4.5.3', 'smtp', /4\.5\.3|5\.2\.254/, true, ['Too many recipients in one message (Exchange: 500).', 'relay365 limits recipients per message; split large mailings.'], ['1 通の受信者が多すぎます（Exchange: 500）。', '大量送信は分割してください。'], '452 4.5.3 Too many recipients'),
  E('smtp-header-size', 'smtp', /Header size exceeds/i, false, ['The message header block is larger than Exchange accepts (256 KB).', 'Remove oversized headers (long Received chains, huge custom headers) from the message.'], ['メッセージヘッダーが上限（256 KB）を超えています。', '大きすぎるヘッダー（長い Received やカスタムヘッダー）を削除してください。'], '552 5.3.4 Header size exceeds fixed maximum size'),
  E('smtp-size', 'smtp', /5\.3\.4|MessageSubmissionExceeded|MaxSubmissionExceeded/i, false, ['The message is larger than the mailbox may send (default 35 MB).', 'Raise MaxSendSize (Set-Mailbox) or send smaller attachments.'], ['メッセージがメールボックスの送信上限（既定 35 MB）を超えています。', 'Set-Mailbox で MaxSendSize を上げるか、添付を小さくしてください。'], '552 5.3.4 MapiExceptionMaxSubmissionExceeded; Message size exceeds maximum size limit.; STOREDRV.Submission.Exception:MessageSubmissionExceededException'),
  E('smtp-outbound-spam', 'smtp', /OutboundSpamException|bad outbound sender|5\.1\.8\b/i, false, ['Exchange Online Protection blocked the sender for outbound spam (the account may be on the Restricted entities list).', 'An administrator must check Microsoft Defender > Restricted entities, release the user and investigate what sent the mail.'], ['送信スパムとして送信者がブロックされました（「制限付きエンティティ」に登録された可能性）。', '管理者が Microsoft Defender の「制限付きエンティティ」を確認し、ブロックを解除して原因を調査してください。'], '554 5.2.0 STOREDRV.Submission.Exception:OutboundSpamException; WASCL UserAction verdict is not None'),
  E('smtp-5.7.70x', 'smtp', /5\.7\.(705|708|750)/, false, ['The tenant or the sending IP is blocked for spam or low reputation (5.7.705 tenant, 5.7.708 IP, 5.7.750 unregistered domain) — relay/connector traffic, not SMTP AUTH quota.', 'Open a support case from the Microsoft 365 admin center; for 5.7.750 add and verify the sending domain.'], ['テナントまたは送信元 IP がスパム・低評価のためブロックされています（5.7.705 テナント、5.7.708 IP、5.7.750 未登録ドメイン）。', 'Microsoft 365 管理センターからサポートに問い合わせてください。5.7.750 の場合は送信ドメインを追加・確認してください。'], '550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP.'),
  E('smtp-gmail-badcredentials', 'smtp', /5\.7\.[18].*(Username and Password not accepted|BadCredentials)/i, false, ['Gmail refused the credentials or the OAuth token (expired, revoked, or scope not https://mail.google.com/).', 'Sign in again for the account; for OAuth request the scope https://mail.google.com/.'], ['Gmail が資格情報または OAuth トークンを拒否しました（期限切れ・取り消し、またはスコープ違い）。', 'アカウントで再度サインインし、OAuth ではスコープ https://mail.google.com/ を要求してください。'], '535 5.7.8 Username and Password not accepted. For more information, go to https://support.google.com/mail/?p=BadCredentials'),
  E('smtp-4.7.0-login-attempts', 'smtp', /4\.7\.0.*Too many login attempts/i, true, ['Too many login attempts; the server rate-limits authentication.', 'Wait a few minutes; check for another client retrying with bad credentials.'], ['ログイン試行が多すぎるため、一時的に認証が制限されています。', '数分待ってから再試行し、誤った資格情報で再試行している他のクライアントを確認してください。'], '454 4.7.0 Too many login attempts, please try again later.'),

  E('imap-not-connected', 'imap', /authenticated but not connected/i, false, ['The token was accepted, but its identity has no access to the mailbox in user= (typical for app-only access without FullAccess, a delegated user without FullAccess on a shared mailbox, or New-ServicePrincipal run with the App registration\'s object id instead of the Enterprise Application\'s).', `Add-MailboxPermission -Identity <mailbox> -User <service principal id or user> -AccessRights FullAccess. ${SP_FIX.en}`], ['トークンは受け付けられましたが、user= のメールボックスにアクセス権がありません（アプリに FullAccess がない、共有メールボックスへの FullAccess がない、または New-ServicePrincipal にアプリの登録のオブジェクト ID を使った場合）。', `Add-MailboxPermission -Identity <メールボックス> -User <サービス プリンシパル ID またはユーザー> -AccessRights FullAccess。${SP_FIX.ja}`], 'A02 BAD User is authenticated but not connected.'),
  E('imap-auth-failed', 'imap', /AUTHENTICATE failed/i, false, ['IMAP refused the token: wrong audience or scope (needs IMAP.AccessAsUser.All or IMAP.AccessAsApp on https://outlook.office.com / outlook.office365.com), expired, user= mismatch, or for app-only no Exchange service principal.', `Check \`relay365 check <account> --protocol imap\`. For app-only: ${SP_FIX.en}`], ['IMAP がトークンを拒否しました（対象・スコープ違い、期限切れ、user= の不一致、アプリの場合は Exchange のサービス プリンシパル未登録）。', `\`relay365 check <アカウント> --protocol imap\` で確認してください。アプリの場合: ${SP_FIX.ja}`], 'A01 NO AUTHENTICATE failed.'),
  E('imap-login-failed', 'imap', /NO LOGIN failed/i, false, ['IMAP LOGIN (basic authentication) is disabled in Exchange Online.', 'Use OAuth: `relay365 account add <email> --scopes imap` and `relay365 fetch --protocol imap`.'], ['Exchange Online では IMAP の LOGIN（基本認証）は無効です。', 'OAuth を使用してください（relay365 account add <メール> --scopes imap）。'], 'A01 NO LOGIN failed.'),
  E('imap-gmail-authfailed', 'imap', /AUTHENTICATIONFAILED|SASL authentication failed/i, false, ['The IMAP server (Gmail style) refused the token or credentials.', 'Sign in again for the account; check the token scope.'], ['IMAP サーバー（Gmail 形式）がトークンまたは資格情報を拒否しました。', 'アカウントで再度サインインし、トークンのスコープを確認してください。'], 'A01 NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)'),

  E('pop-auth-failed', 'pop', /-ERR Authentication failure/i, false, ['POP3 refused the token, or the identity has no FullAccess on the mailbox (POP has no "authenticated but not connected" state).', `Check the POP scope (POP.AccessAsUser.All / POP.AccessAsApp), then: ${SP_FIX.en}`], ['POP3 がトークンを拒否したか、メールボックスへの FullAccess がありません（POP には「authenticated but not connected」の状態がありません）。', `POP のスコープ（POP.AccessAsUser.All / POP.AccessAsApp）を確認し、${SP_FIX.ja}`], '-ERR Authentication failure: unknown user name or bad password.'),
  E('pop-logon-failure', 'pop', /-ERR Logon failure/i, false, ['POP3 USER/PASS (basic authentication) is disabled in Exchange Online.', 'Use OAuth: `relay365 account add <email> --scopes pop` and `relay365 fetch --protocol pop3`.'], ['Exchange Online では POP3 の USER/PASS（基本認証）は無効です。', 'OAuth を使用してください（relay365 account add <メール> --scopes pop）。'], '-ERR Logon failure: unknown user name or bad password.'),

  E('graph-ErrorSendAsDenied', 'graph', /ErrorSendAsDenied/, false, ['Graph: the mailbox may not send as the From address.', 'Grant SendAs (Add-RecipientPermission), or send from the account mailbox.'], ['Graph: From アドレスとして送信する権限がありません。', 'SendAs を付与する（Add-RecipientPermission）か、アカウントのメールボックスから送信してください。'], '{"error":{"code":"ErrorSendAsDenied","message":"The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message."}}'),
  E('graph-ErrorAccessDenied', 'graph', /ErrorAccessDenied/, false, ['Graph: the token lacks Mail.Send for this mailbox, or an application access policy blocks it.', 'Delegated tokens send only as the signed-in user; application tokens need Mail.Send (Microsoft Graph, application) with admin consent.'], ['Graph: このメールボックスに対する Mail.Send がないか、アプリケーション アクセス ポリシーでブロックされています。', '委任はサインインユーザーのみ、アプリは管理者の同意付きの Mail.Send（アプリケーション）が必要です。'], '{"error":{"code":"ErrorAccessDenied","message":"Access is denied. Check credentials and try again."}}'),
  E('graph-NoPermissionsInAccessToken', 'graph', /NoPermissionsInAccessToken/, false, ['Graph: the app-only token has no roles.', 'Grant the Microsoft Graph application permission Mail.Send and admin consent.'], ['Graph: アプリ トークンにロールがありません。', 'Microsoft Graph の Mail.Send（アプリケーション）と管理者の同意を付与してください。'], '{"error":{"code":"NoPermissionsInAccessToken","message":"The token contains no permissions, or permissions can not be understood."}}'),
  E('graph-InvalidAuthenticationToken', 'graph', /InvalidAuthenticationToken/, false, ['Graph: the token is expired or not for Graph (audience https://graph.microsoft.com; an Outlook-audience token does not work here).', 'Use the graph scope preset (--scopes graph).'], ['Graph: トークンの期限切れ、または Graph 用ではありません（Outlook 用トークンは使えません）。', '--scopes graph を使用してください。'], '{"error":{"code":"InvalidAuthenticationToken","message":"Access token validation failure. Invalid audience."}}'),
  E('graph-MailboxNotEnabledForRESTAPI', 'graph', /MailboxNotEnabledForRESTAPI/, false, ['Graph: the mailbox has no Exchange Online licence or is on-premises.', 'Assign an Exchange Online licence or use SMTP.'], ['Graph: メールボックスに Exchange Online ライセンスがないか、オンプレミスです。', 'ライセンスを割り当てるか SMTP を使用してください。'], '{"error":{"code":"MailboxNotEnabledForRESTAPI","message":"The mailbox is either inactive, soft-deleted, or is hosted on-premise."}}'),
  E('graph-ErrorMimeContentInvalidBase64String', 'graph', /ErrorMimeContentInvalidBase64String/, false, ['Graph: the MIME body was not valid base64.', 'relay365 base64-encodes MIME itself; check proxies or custom code that alter the request body.'], ['Graph: MIME 本文が正しい base64 ではありません。', 'relay365 は自動で base64 化します。要求本文を変更するプロキシやコードを確認してください。'], '{"error":{"code":"ErrorMimeContentInvalidBase64String","message":"Invalid base64 string for MIME content."}}'),
  E('graph-request-too-large', 'graph', /maximum request length|Request Entity Too Large/i, false, ['Graph: the request is larger than 4 MB (about 3 MB of MIME after base64).', 'Send large messages over SMTP, or with an upload session for attachments.'], ['Graph: 要求が 4 MB（base64 後の MIME で約 3 MB）を超えています。', '大きなメッセージは SMTP で送るか、添付ファイルのアップロード セッションを使用してください。'], '{"error":{"code":"BadRequest","message":"The maximum request length supported is 4MB."}}'),
  E('graph-ErrorInvalidRecipients', 'graph', /ErrorInvalidRecipients|ErrorInvalidUser/, false, ['Graph: a recipient address is invalid, or the user in /users/{id} does not exist.', 'Check the recipient addresses and the account mailbox.'], ['Graph: 宛先アドレスが不正か、/users/{id} のユーザーが存在しません。', '宛先アドレスとアカウントのメールボックスを確認してください。'], '{"error":{"code":"ErrorInvalidRecipients","message":"At least one recipient is not valid."}}'),
  E('graph-TooManyRequests', 'graph', /TooManyRequests|"429"/, true, ['Graph throttled the requests (10,000 per 10 minutes and 4 concurrent per app and mailbox).', 'relay365 honours Retry-After and retries; spread traffic if it persists.'], ['Graph が要求を制限しました（アプリとメールボックスごとに 10 分で 10,000 件、同時 4 件）。', 'relay365 は Retry-After に従って再試行します。続く場合は送信を分散してください。'], '{"error":{"code":"TooManyRequests","message":"Please retry again later."}}'),
  E('graph-ServiceNotAvailable', 'graph', /ServiceNotAvailable|UnknownError/, true, ['Graph is temporarily unavailable (503/504).', 'relay365 retries with back-off.'], ['Graph が一時的に利用できません（503/504）。', 'relay365 がバックオフしながら再試行します。'], '{"error":{"code":"ServiceNotAvailable","message":"Service unavailable."}}'),
];

/** Every entry, in match order. */
export function catalogueEntries(): readonly CatalogueEntry[] {
  return CATALOGUE;
}

/** The entry for an AADSTS number (50173, "50173" or "AADSTS50173"). */
export function explainAadsts(code: number | string): CatalogueEntry | undefined {
  const n = typeof code === 'number' ? code : Number(/(\d+)/.exec(code)?.[1] ?? NaN);
  return Number.isFinite(n) ? CATALOGUE.find((e) => e.aadsts === n) : undefined;
}

export type ReplyInput = string | { code?: number; enhanced?: string; text?: string };
export type ReplyProtocol = CatalogueKind | 'pop3';

/**
 * The entry for a server reply: a pasted line, or a parsed SMTP reply `{code, enhanced, text}`.
 * With `protocol`, only that protocol's entries are tried. An AADSTS code inside the text (Graph
 * and token errors quote them) is the fallback.
 */
export function explainReply(reply: ReplyInput, protocol?: ReplyProtocol): CatalogueEntry | undefined {
  const text = typeof reply === 'string' ? reply : [reply.code, reply.enhanced, reply.text].filter((v) => v !== undefined && v !== '').join(' ');
  const kind = protocol === 'pop3' ? 'pop' : protocol;
  const hit = CATALOGUE.find((e) => e.match && (!kind || e.kind === kind) && e.match.test(text));
  if (hit) return hit;
  const aad = /AADSTS(\d+)/i.exec(text);
  return aad ? explainAadsts(Number(aad[1])) : undefined;
}

/** "AADSTS50173", "50173", or a pasted server reply / error body. */
export function explain(input: string): CatalogueEntry | undefined {
  const aad = /AADSTS(\d+)/i.exec(input) ?? /^\s*(\d{5,7})\s*$/.exec(input);
  if (aad) {
    const e = explainAadsts(Number(aad[1]));
    if (e) return e;
  }
  return explainReply(input, guessProtocol(input)) ?? explainReply(input);
}

/** Which protocol a pasted reply most likely comes from, so e.g. Graph's ErrorSendAsDenied is not read as SMTP. */
function guessProtocol(text: string): CatalogueKind | undefined {
  if (/"error"\s*:\s*\{/.test(text)) return 'graph';
  if (/^\s*[+-](OK|ERR)\b/.test(text)) return 'pop';
  if (/^\s*[A-Za-z0-9.*]+ (OK|NO|BAD)\b/.test(text)) return 'imap';
  if (/^\s*\d{3}[ -]/.test(text)) return 'smtp';
  return undefined;
}

/** `--lang` wins; otherwise Japanese when LC_ALL / LC_MESSAGES / LANG starts with "ja". */
export function langFrom(env: NodeJS.ProcessEnv, flag?: string): Lang {
  if (flag === 'ja' || flag === 'en') return flag;
  return /^ja/i.test(env.LC_ALL || env.LC_MESSAGES || env.LANG || '') ? 'ja' : 'en';
}

/** The entry in one language; `account` fills the `<account>` placeholders of the fix. */
export function localize(entry: CatalogueEntry, lang: Lang, account?: string): LocalizedEntry {
  const t = entry[lang];
  const fill = (s: string) => (account ? s.replace(/<account>|<アカウント>/g, account) : s);
  return { id: entry.id, kind: entry.kind, temporary: entry.temporary, cause: fill(t.cause), fix: fill(t.fix) };
}

/** Labels for printing an explanation. */
export const LABELS: Record<Lang, { cause: string; fix: string; temporary: string; permanent: string }> = {
  en: { cause: 'Cause', fix: 'Fix', temporary: 'temporary', permanent: 'permanent' },
  ja: { cause: '原因', fix: '対処', temporary: '一時的なエラー', permanent: '恒久的なエラー' },
};
