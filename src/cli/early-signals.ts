/**
 * Signals that arrive while the CLI's modules load are held instead of meeting Node's default
 * action, which kills the process. Loading takes a few hundred milliseconds before `serve` can
 * install its own handlers, and a SIGHUP at that moment (logrotate's postrotate, a configuration
 * tool) used to kill a relay that was just starting; a SIGTERM from a supervisor skipped the
 * graceful stop. `serve` claims what was held; every other command gets it back as soon as the
 * command is known, with the default action it would have had.
 *
 * Only the process entry point (./run.ts) holds signals, before it loads anything else; tests that
 * call main() in-process never do.
 */
const HELD = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

const pending: NodeJS.Signals[] = [];
const hold = (signal: NodeJS.Signals) => void pending.push(signal);
let holding = false;

export function holdSignals(): void {
  if (holding) return;
  holding = true;
  for (const s of HELD) process.on(s, hold);
}

function stopHolding(): void {
  if (!holding) return;
  holding = false;
  for (const s of HELD) process.off(s, hold);
}

/** For `serve`: the signals held so far, in order; from now on its own handlers take them. */
export function claimHeldSignals(): NodeJS.Signals[] {
  stopHolding();
  return pending.splice(0);
}

/** For any other command: held signals are raised again, to meet their default action now. */
export function releaseHeldSignals(): void {
  const wasHolding = holding;
  stopHolding();
  if (!wasHolding) return;
  for (const s of pending.splice(0)) process.kill(process.pid, s);
}
