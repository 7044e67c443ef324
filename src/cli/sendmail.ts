// Placeholder until the sendmail(8)-compatible entry point lands (issue 4).
import { ExitCode } from '../core/exit.js';

export async function runSendmail(_args: string[], io: { out: NodeJS.WritableStream; err: NodeJS.WritableStream }): Promise<number> {
  io.err.write('relay365: sendmail mode is not implemented yet\n');
  return ExitCode.SOFTWARE;
}
