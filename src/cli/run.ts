// Source entry point (used by tests through tsx and by bin/relay365.js after the build).
// Signals are held before anything else loads (./early-signals.ts): the CLI's module graph is
// loaded by the dynamic import below, not by a static import that would load it first.
import { holdSignals, releaseHeldSignals } from './early-signals.js';

holdSignals();
const { main } = await import('./main.js');

main(process.argv).then(
  (code) => {
    process.exitCode = code;
    releaseHeldSignals();
  },
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 70;
  },
);
