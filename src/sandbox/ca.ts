/**
 * The sandbox's own certificate authority and server certificate. Clients trust the sandbox by
 * pointing their CA-file option at `<state>/ca.pem`; nothing is installed system-wide.
 * Keys come from node:crypto (fast); node-forge only assembles the X.509 structures.
 */
import { generateKeyPairSync, createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import forge from 'node-forge';

export interface SandboxTls {
  ca: string;
  caFile: string;
  key: string;
  cert: string;
}

function newKeyPair(): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

function serial(): string {
  // Positive serial number: clear the top bit.
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  return b.toString('hex');
}

export interface CertificateOptions {
  commonName: string;
  altNames?: Array<{ dns?: string; ip?: string }>;
  issuer?: { certPem: string; keyPem: string };
  isCa?: boolean;
  days?: number;
}

/** Create a certificate (self-signed when no issuer). Returns PEMs. */
export function createCertificate(opts: CertificateOptions): { certPem: string; keyPem: string } {
  const keys = newKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(keys.publicPem);
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + (opts.days ?? 825) * 86_400_000);
  const subject = [{ name: 'commonName', value: opts.commonName }, { name: 'organizationName', value: 'relay365 sandbox' }];
  cert.setSubject(subject);
  const issuerCert = opts.issuer ? forge.pki.certificateFromPem(opts.issuer.certPem) : undefined;
  cert.setIssuer(issuerCert ? issuerCert.subject.attributes : subject);
  const extensions: any[] = [
    { name: 'basicConstraints', cA: !!opts.isCa, critical: true },
    opts.isCa
      ? { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true }
      : { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ];
  if (!opts.isCa) extensions.push({ name: 'extKeyUsage', serverAuth: true, clientAuth: true });
  if (opts.altNames?.length) {
    extensions.push({
      name: 'subjectAltName',
      altNames: opts.altNames.map((a) => (a.ip ? { type: 7, ip: a.ip } : { type: 2, value: a.dns })),
    });
  }
  cert.setExtensions(extensions);
  const signingKey = forge.pki.privateKeyFromPem(opts.issuer ? opts.issuer.keyPem : keys.privatePem);
  cert.sign(signingKey as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: keys.privatePem };
}

/** DER bytes of a PEM certificate. */
export function certificateDer(certPem: string): Buffer {
  const b64 = certPem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
  return Buffer.from(b64, 'base64');
}

export function thumbprints(certPem: string): { sha1: string; sha256: string } {
  const der = certificateDer(certPem);
  return {
    sha1: createHash('sha1').update(der).digest('base64url'),
    sha256: createHash('sha256').update(der).digest('base64url'),
  };
}

/** Load or create the CA and the server certificate under `dir`. */
export function loadOrCreateTls(dir: string): SandboxTls {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caFile = join(dir, 'ca.pem');
  const caKeyFile = join(dir, 'ca.key');
  const certFile = join(dir, 'server.pem');
  const keyFile = join(dir, 'server.key');
  if (![caFile, caKeyFile, certFile, keyFile].every((f) => existsSync(f))) {
    const ca = createCertificate({ commonName: 'relay365 sandbox CA', isCa: true, days: 3650 });
    const server = createCertificate({
      commonName: 'localhost',
      altNames: [{ dns: 'localhost' }, { ip: '127.0.0.1' }, { ip: '::1' }, { dns: 'smtp.office365.com' }, { dns: 'outlook.office365.com' }, { dns: 'login.microsoftonline.com' }, { dns: 'graph.microsoft.com' }],
      issuer: { certPem: ca.certPem, keyPem: ca.keyPem },
    });
    writeFileSync(caKeyFile, ca.keyPem, { mode: 0o600 });
    writeFileSync(keyFile, server.keyPem, { mode: 0o600 });
    writeFileSync(certFile, server.certPem, { mode: 0o644 });
    writeFileSync(caFile, ca.certPem, { mode: 0o644 });
  }
  return {
    ca: readFileSync(caFile, 'utf8'),
    caFile,
    key: readFileSync(keyFile, 'utf8'),
    cert: readFileSync(certFile, 'utf8'),
  };
}
