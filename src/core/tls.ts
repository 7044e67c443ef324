import { readFileSync } from 'node:fs';
import tls from 'node:tls';

/**
 * Node's built-in roots plus the PEM in `caFile` (`delivery.ca_file`, a route's `ca_file`,
 * `--ca-file`): an extra CA, as documented. Passing the file alone as `ca` would replace the
 * roots, and a private CA for one smarthost would then break every public endpoint, the identity
 * platform first. Read at each call, so a missing file is reported where it is set up.
 */
export function trustedCas(caFile?: string): string[] | undefined {
  return caFile ? [...tls.rootCertificates, readFileSync(caFile, 'utf8')] : undefined;
}
