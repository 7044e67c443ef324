/**
 * What every command gets: the resolved configuration, the state directory, output helpers.
 * Commands throw Relay365Error; main() turns it into a message, a hint and an exit code.
 */
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { defaultConfig, loadConfigFile, type Config, type LoadedConfig } from '../config/index.js';
import { defaultStateDir } from '../core/fs.js';
import { createLogger, setRootLogger, type Logger } from '../core/log.js';

export interface GlobalOptions {
  config?: string;
  state?: string;
  logLevel?: string;
}

/** Where a config file is looked for when --config is not given. */
export const DEFAULT_CONFIG_PATHS = ['/etc/relay365/relay365.yaml'];

export class CliContext {
  private loaded?: LoadedConfig;
  private logger?: Logger;

  constructor(
    readonly program: Command,
    readonly out: NodeJS.WritableStream = process.stdout,
    readonly err: NodeJS.WritableStream = process.stderr,
    readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  get globals(): GlobalOptions {
    return this.program.opts<GlobalOptions>();
  }

  /** The configuration: --config FILE, $RELAY365_CONFIG, /etc/relay365/relay365.yaml, or embedded defaults. */
  config(): LoadedConfig {
    if (!this.loaded) {
      const file = this.globals.config ?? this.env.RELAY365_CONFIG ?? DEFAULT_CONFIG_PATHS.find((p) => existsSync(p));
      this.loaded = file ? loadConfigFile(file) : { config: defaultConfig(), raw: {} };
    }
    return this.loaded;
  }

  get cfg(): Config {
    return this.config().config;
  }

  /** State directory: --state, then config `state_dir`, then the platform default. */
  stateDir(): string {
    return this.globals.state ?? this.cfg.state_dir ?? defaultStateDir(this.env);
  }

  log(): Logger {
    if (!this.logger) {
      const level = (this.globals.logLevel ?? this.env.RELAY365_LOG_LEVEL ?? this.cfg.log.level) as Config['log']['level'];
      this.logger = createLogger({ level });
      setRootLogger(this.logger);
    }
    return this.logger;
  }

  print(text = ''): void {
    this.out.write(text.endsWith('\n') ? text : `${text}\n`);
  }

  printJson(value: unknown): void {
    this.out.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  warn(text: string): void {
    this.err.write(`relay365: ${text}\n`);
  }
}
