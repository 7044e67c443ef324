/**
 * The shape of a `relay365 check` report: per protocol, an ordered list of steps, each passed,
 * failed or skipped, with its duration, the facts it found and — on failure — the cause and fix
 * (from the Microsoft error catalogue, or from ./advice.ts for problems on our side of the wire).
 */
export type CheckProtocol = 'smtp' | 'imap' | 'pop3' | 'graph';

export type StepId =
  | 'configuration'
  | 'dns'
  | 'tcp'
  | 'tls'
  | 'greeting'
  | 'capabilities'
  | 'token'
  | 'claims'
  | 'auth'
  | 'mailbox'
  | 'mail-from'
  | 'test-message';

export interface Explanation {
  /** Catalogue entry id (e.g. smtp-5.7.139-mailbox, AADSTS50173) or advice id (e.g. tls-unverified). */
  id: string;
  temporary: boolean;
  en: { cause: string; fix: string };
  ja: { cause: string; fix: string };
}

export interface CheckStep {
  id: StepId;
  status: 'pass' | 'fail' | 'skip' | 'warn';
  durationMs: number;
  /** What the step found, in technical words (host names, versions, claims). */
  detail: string;
  /** The server reply that made the step fail, verbatim (redacted). */
  reply?: string;
  explanation?: Explanation;
}

export interface ProtocolReport {
  protocol: CheckProtocol;
  target: string;
  ok: boolean;
  steps: CheckStep[];
  /** Every protocol line, secrets redacted. */
  transcript: string[];
}

export interface CheckReport {
  account: string;
  ok: boolean;
  protocols: ProtocolReport[];
}
