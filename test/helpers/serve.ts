/**
 * `relay365 serve` in a child process, as a supervisor runs it: the real CLI (src via tsx) with its
 * own state directory. Start-up has got far enough when <state>/relay.json names this process: the
 * relay writes it once its SMTP listeners are bound, and serve writes it again with the admin URL
 * once the admin page listens (`admin: true` waits for that second write).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { childEnv, cliEntry, repoRoot } from './cli.js';

/** What `<state>/relay.json` holds. */
export interface RelayInfo {
  pid: number;
  smtp: Array<{ address: string; port: number; tls: string }>;
  web?: string;
}

/** How the process ended: an exit code, or the signal that killed it. */
export interface ServeExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServeOptions {
  state: string;
  configFile?: string;
  /** RELAY365_LOG_LEVEL of the child; default 'info', so tests can read its log lines. */
  logLevel?: string;
  env?: NodeJS.ProcessEnv;
  /** Wait until relay.json has the admin URL as well (the configuration must enable web). */
  admin?: boolean;
  /** How long start-up may take before `ready` rejects (default 60 s). */
  timeoutMs?: number;
  /** The node arguments that run the CLI (default: src through tsx; the benchmark passes compiled JavaScript). */
  cli?: string[];
}

export interface ServeProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** relay.json written by this process; rejects with its stderr if it ends or times out first. */
  readonly ready: Promise<RelayInfo>;
  /** Resolves once the process has ended and its stderr has been read to the end. */
  readonly exited: Promise<ServeExit>;
  stderr(): string;
  /** Sends `signal` (default SIGTERM), then SIGKILL after `graceMs`; resolves with how it ended. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<ServeExit>;
}

export interface StartedServe extends ServeProcess {
  /** The first SMTP listener's port. */
  port: number;
  info: RelayInfo;
}

/** Spawns `relay365 serve` without waiting for it (for tests of the start-up itself). */
export function spawnServe(options: ServeOptions): ServeProcess {
  const file = join(options.state, 'relay.json');
  rmSync(file, { force: true });
  const args = [...(options.cli ?? ['--import', 'tsx', cliEntry]), '--state', options.state, ...(options.configFile ? ['--config', options.configFile] : []), 'serve'];
  const child = spawn(process.execPath, args, { cwd: repoRoot, env: childEnv({ RELAY365_LOG_LEVEL: options.logLevel ?? 'info', ...options.env }), stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  let ended: ServeExit | undefined;
  const exited = new Promise<ServeExit>((resolve) =>
    child.on('close', (code, signal) => {
      ended = { code, signal };
      resolve(ended);
    }),
  );

  const ready = (async () => {
    const deadline = Date.now() + (options.timeoutMs ?? 60_000);
    for (;;) {
      if (existsSync(file)) {
        const info = JSON.parse(readFileSync(file, 'utf8')) as RelayInfo;
        if (info.pid === child.pid && (!options.admin || info.web)) return info;
      }
      if (ended) throw new Error(`relay365 serve ended during start-up (${ended.signal ?? `exit code ${ended.code}`}): ${stderr}`);
      if (Date.now() > deadline) throw new Error(`relay365 serve did not write ${file} in time: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  // A test that stops the process during start-up never awaits `ready`.
  ready.catch(() => {});

  return {
    child,
    pid: child.pid!,
    ready,
    exited,
    stderr: () => stderr,
    async stop(signal = 'SIGTERM', graceMs = 30_000) {
      if (ended) return ended;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** Spawns `relay365 serve` and resolves once relay.json shows it started. */
export async function startServe(options: ServeOptions): Promise<StartedServe> {
  const serve = spawnServe(options);
  try {
    const info = await serve.ready;
    return Object.assign(serve, { info, port: info.smtp[0]!.port });
  } catch (err) {
    await serve.stop('SIGKILL');
    throw err;
  }
}
