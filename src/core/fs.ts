/**
 * Durable file writes: write to a private temp file in the same directory, fsync it, rename over
 * the target, fsync the directory. Readers never see half-written files and a crash leaves
 * either the old or the new version (Postfix's queue-file discipline).
 */
import { promises as fsp, constants as fsc } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { homedir } from 'node:os';
import { StoreError } from './errors.js';

export async function ensurePrivateDir(dir: string): Promise<void> {
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
}

export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const dir = dirname(path);
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(tmp, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, mode);
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fsp.rename(tmp, path);
    await fsyncDir(dir);
  } catch (err) {
    await handle?.close().catch(() => {});
    await fsp.rm(tmp, { force: true }).catch(() => {});
    throw new StoreError('STORE_IO', `Could not write ${path}: ${(err as Error).message}`, { cause: err });
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  const h = await fsp.open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/**
 * The state directory: $RELAY365_STATE_DIR, systemd's $STATE_DIRECTORY, or
 * $XDG_STATE_HOME/relay365 (~/.local/state/relay365).
 */
export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.RELAY365_STATE_DIR) return env.RELAY365_STATE_DIR;
  if (env.STATE_DIRECTORY) return env.STATE_DIRECTORY.split(':')[0]!;
  const base = env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  return join(base, 'relay365');
}
