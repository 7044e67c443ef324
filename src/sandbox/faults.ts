/**
 * Run-time fault injection for reliability tests: a test (or the admin endpoint) queues faults
 * for a protocol stage and the servers consume them as they pass that stage.
 */
export type FaultAction =
  | { kind: 'reply'; reply: string }
  | { kind: 'drop' }
  | { kind: 'delay'; ms: number }
  | { kind: 'http'; status: number; body?: unknown; retryAfter?: number };

export type FaultStage =
  | 'token'
  | 'devicecode'
  | 'smtp.connect'
  | 'smtp.ehlo'
  | 'smtp.auth'
  | 'smtp.mail'
  | 'smtp.rcpt'
  | 'smtp.data'
  | 'smtp.dataEnd'
  | 'imap.auth'
  | 'pop.auth'
  | 'graph.sendMail';

export interface Fault {
  stage: FaultStage;
  action: FaultAction;
  /** How many times it fires; -1 until cleared. Default 1. */
  count?: number;
  /** Only for this user / client id / recipient (substring match, case-insensitive). */
  match?: string;
}

export class FaultInjector {
  private faults: Array<Fault & { remaining: number }> = [];

  add(fault: Fault): void {
    this.faults.push({ ...fault, remaining: fault.count ?? 1 });
  }

  clear(): void {
    this.faults = [];
  }

  list(): Fault[] {
    return this.faults.map(({ remaining, ...f }) => ({ ...f, count: remaining }));
  }

  /** The next fault for this stage (and subject), consuming one use. */
  take(stage: FaultStage, subject = ''): FaultAction | undefined {
    const s = subject.toLowerCase();
    const i = this.faults.findIndex((f) => f.stage === stage && (!f.match || s.includes(f.match.toLowerCase())));
    if (i < 0) return undefined;
    const f = this.faults[i]!;
    if (f.remaining > 0) f.remaining -= 1;
    if (f.remaining === 0) this.faults.splice(i, 1);
    return f.action;
  }
}
