/**
 * Secret scrubbing shared by logs, protocol transcripts, error messages and the web page.
 * Two layers: known secret values registered at run time (client secrets, passwords read from
 * config) are replaced wherever they appear, and shapes that are always credentials (JWTs,
 * bearer tokens, SASL XOAUTH2/OAUTHBEARER payloads, form fields such as refresh_token=) are
 * masked even when nobody registered them.
 */

export const REDACTED = '[REDACTED]';

const knownSecrets = new Set<string>();

/** Remember a secret value so every later redactText() call masks it. Short values are ignored. */
export function registerSecret(value: string | undefined | null): void {
  if (typeof value === 'string' && value.length >= 6) knownSecrets.add(value);
}

/** Key names whose values are always secret, whatever they contain. */
export const SECRET_KEY_PATTERN =
  /(?:^|_|-|\b)(?:access_?token|refresh_?token|id_?token|token|secret|client_?secret|password|passwd|passphrase|authorization|client_?assertion|assertion|cookie|set-cookie|device_?code|code_?verifier|xoauth2?|oauthbearer|sasl|private_?key|key_?pem|pfx|csrf)(?:$|_|-|\b)/i;

const PATTERNS: Array<[RegExp, string]> = [
  // JSON Web Tokens (header always starts with base64url '{"').
  [/eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g, '[REDACTED-JWT]'],
  // Authorization headers and SASL bearer fields.
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{6,}/gi, `$1 ${REDACTED}`],
  [/auth=Bearer [^\x01\s]+/g, `auth=Bearer ${REDACTED}`],
  // SASL initial responses: base64 of "user=" (XOAUTH2) or "n,a=" / "n,," (OAUTHBEARER).
  [/\b(?:dXNlcj1|bixh|biws)[A-Za-z0-9+/]{8,}={0,2}/g, '[REDACTED-SASL]'],
  // Microsoft personal-account opaque tokens.
  [/\b(?:EwB|EwA|M\.C\d)[A-Za-z0-9!*._\-+/=$]{20,}/g, REDACTED],
  // Form-encoded or query parameters that carry credentials.
  [
    /\b(access_token|refresh_token|id_token|client_secret|client_assertion|password|code_verifier|device_code|code|assertion)=([^&\s"']+)/g,
    `$1=${REDACTED}`,
  ],
  // JSON string fields that carry credentials.
  [
    /"(access_token|refresh_token|id_token|client_secret|client_assertion|password|device_code|code_verifier|refreshToken|accessToken|clientSecret)"\s*:\s*"[^"]*"/g,
    `"$1":"${REDACTED}"`,
  ],
  // PEM private keys.
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g, `-----BEGIN PRIVATE KEY-----${REDACTED}-----END PRIVATE KEY-----`],
];

export function redactText(text: string): string {
  let out = text;
  for (const secret of knownSecrets) {
    if (out.includes(secret)) out = out.split(secret).join(REDACTED);
  }
  for (const [re, replacement] of PATTERNS) out = out.replace(re, replacement);
  return out;
}

/** Deep copy of a value with secret-named keys masked and every string scrubbed. */
export function sanitize(value: unknown, depth = 0): unknown {
  if (depth > 8) return '[…]';
  if (typeof value === 'string') return redactText(value);
  if (value === null || typeof value !== 'object') return value;
  if (Buffer.isBuffer(value)) return `[${value.length} bytes]`;
  if (value instanceof Error) {
    return sanitize({ type: value.name, message: value.message, stack: value.stack, ...(value as unknown as Record<string, unknown>) }, depth + 1);
  }
  if (Array.isArray(value)) return value.map((v) => sanitize(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (SECRET_KEY_PATTERN.test(k) && v !== undefined && v !== null && v !== '' && typeof v !== 'boolean' && typeof v !== 'number') {
      out[k] = REDACTED;
    } else {
      out[k] = sanitize(v, depth + 1);
    }
  }
  return out;
}
