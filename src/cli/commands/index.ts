/**
 * The command registry. Each module registers its own subcommands; add one line per module.
 */
import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { register as registerConfig } from './config.js';
import { register as registerSandbox } from './sandbox.js';
import { register as registerAccount } from './account.js';
import { register as registerServe } from './serve.js';
import { register as registerQueue } from './queue.js';
import { register as registerSend } from './send.js';
import { register as registerExplain } from './explain.js';
import { register as registerFetch } from './fetch.js';
import { register as registerCheck } from './check.js';

export type Registrar = (program: Command, ctx: CliContext) => void;

export const registrars: Registrar[] = [
  registerConfig,
  registerSandbox,
  registerAccount,
  registerServe,
  registerQueue,
  registerSend,
  registerExplain,
  registerFetch,
  registerCheck,
];
