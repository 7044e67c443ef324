/**
 * The inbound SMTP server in a thread of its own. Under load, accepting (SMTP parsing, a socket
 * write per reply, the queue's group commit) and delivering each keep a core busy; in one event
 * loop they took turns, which halved both. The thread owns the listeners and its own queue
 * connection (SQLite in WAL mode and PostgreSQL both take several writers); the main thread keeps
 * delivery, the token manager, the admin page and metrics, and hears of every accepted message and
 * connection by message. Data still flows one way: inbound → queue → delivery.
 * Per-client limits stay exact: every client connection is handled by this one thread.
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import type { LevelWithSilent } from 'pino';
import type { Config } from '../config/schema.js';
import type { ErrorCode } from '../core/codes.js';
import { Relay365Error } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { sanitize } from '../core/redact.js';
import { useWriteLock, writeLockMemory, type QueueEntry } from '../queue/index.js';
import type { Handoff } from './handoff.js';

type Bound = Array<{ address: string; port: number; tls: string }>;

interface ThreadData {
  relay365: 'inbound';
  handoff?: Handoff;
  /** The SQLite queue's write lock, shared with delivery (../queue/write-lock.ts). */
  writeLock: SharedArrayBuffer;
  config: Config;
  stateDir: string;
  hostname: string;
  logLevel: LevelWithSilent;
}

type ToThread = { t: 'reconfigure'; config: Config } | { t: 'stop' };
type FromThread =
  | { t: 'listening'; bound: Bound }
  | { t: 'failed'; error: { code: ErrorCode; message: string; hint?: string; temporary?: boolean } }
  | { t: 'events'; accepted: QueueEntry[]; connections: number }
  | { t: 'log'; level: LogLevel; obj: unknown; msg?: string }
  | { t: 'stopped' };

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
type LogLevel = (typeof LOG_LEVELS)[number];

export interface InboundThreadDeps {
  config: Config;
  stateDir: string;
  hostname: string;
  log: Logger;
  onAccepted(entry: QueueEntry): void;
  onConnection?(): void;
  /** Shared with the thread (its Int32Array lives in a SharedArrayBuffer). */
  handoff?: Handoff;
}

/** The main thread's handle: the same surface as InboundServer (start, stop, reconfigure, bound). */
export class InboundThread {
  bound: Bound = [];
  private worker?: Worker;
  /** Listening: from then on the thread ending by itself is fatal. */
  private running = false;
  private stopping = false;
  private stopped?: () => void;

  constructor(private readonly deps: InboundThreadDeps) {}

  async start(): Promise<void> {
    const data: ThreadData = { relay365: 'inbound', handoff: this.deps.handoff, writeLock: writeLockMemory(), config: this.deps.config, stateDir: this.deps.stateDir, hostname: this.deps.hostname, logLevel: this.deps.log.level as LevelWithSilent };
    const [entry, evalOption] = threadEntry();
    // A small young generation: the thread's garbage is mostly per-command strings and buffers
    // that die at once, and the default (16 MB semi-spaces) would hold megabytes of it in RSS.
    const worker = new Worker(entry, { ...evalOption, workerData: data, resourceLimits: { maxYoungGenerationSizeMb: 2 } });
    this.worker = worker;
    await new Promise<void>((resolve, reject) => {
      worker.on('message', (m: FromThread) => {
        switch (m.t) {
          case 'listening':
            this.bound = m.bound;
            this.running = true;
            return resolve();
          case 'failed':
            return reject(new Relay365Error(m.error.code, m.error.message, { hint: m.error.hint, temporary: m.error.temporary }));
          case 'events':
            for (let i = 0; i < m.connections; i++) this.deps.onConnection?.();
            for (const e of m.accepted) this.deps.onAccepted(e);
            return;
          case 'log':
            return this.deps.log[m.level](m.obj as object, m.msg);
          case 'stopped':
            return this.stopped?.();
        }
      });
      worker.once('error', (err) => {
        reject(err);
        if (this.running && !this.stopping) this.deps.log.fatal({ err }, 'the inbound SMTP thread failed; relay365 stops so that its supervisor restarts it');
      });
      worker.once('exit', (code) => {
        reject(new Relay365Error('INTERNAL', `The inbound SMTP thread exited with code ${code} while starting.`));
        this.stopped?.();
        // Accepted messages are safe in the queue; without listeners the relay is of no use, and
        // a restart by the supervisor (systemd, Docker) is the cleanest recovery.
        if (this.running && !this.stopping) process.exit(70);
      });
    });
  }

  reconfigure(config: Config): void {
    this.worker?.postMessage({ t: 'reconfigure', config } satisfies ToThread);
  }

  /** Stops accepting, lets the thread finish its queue writes, then ends it. */
  async stop(): Promise<void> {
    const worker = this.worker;
    if (!worker || this.stopping) return;
    this.stopping = true;
    await new Promise<void>((resolve) => {
      this.stopped = resolve;
      worker.postMessage({ t: 'stop' } satisfies ToThread);
    });
    await worker.terminate();
    this.worker = undefined;
  }
}

/**
 * What the Worker runs: this file. Installed, it is JavaScript; under tsx (the tests, the
 * benchmark's --tsx) it is TypeScript, and Node 20 does not pass `--import tsx` on to workers, so
 * a two-line bootstrap registers tsx in the thread first.
 */
function threadEntry(): [URL] | [string, { eval: true }] {
  if (!import.meta.url.endsWith('.ts')) return [new URL(import.meta.url)];
  const tsx = import.meta.resolve('tsx/esm/api');
  return [`import(${JSON.stringify(tsx)}).then((m) => m.register()).then(() => import(${JSON.stringify(import.meta.url)}));`, { eval: true }];
}

/** The thread's side: an InboundServer with its own queue connection. */
async function runThread(data: ThreadData): Promise<void> {
  const port = parentPort!;
  const post = (m: FromThread) => port.postMessage(m);
  const log = forwardingLogger(post, data.logLevel);
  const [{ InboundServer }, { openQueue }] = await Promise.all([import('./inbound.js'), import('../queue/index.js')]);
  useWriteLock(data.writeLock);
  const { config } = data;
  let queue: Awaited<ReturnType<typeof openQueue>> | undefined;
  let server: InstanceType<typeof InboundServer> | undefined;
  try {
    queue = await openQueue({ backend: config.queue.backend, dir: config.queue.dir, postgres_url: config.queue.postgres_url, max_message_size: config.relay.max_message_size, max_lifetime_seconds: config.delivery.max_lifetime_seconds }, { stateDir: data.stateDir, log });
    // Reported once per turn of the event loop: a group commit accepts many messages at once, and
    // one message for all of them is one wake-up (and one queue claim) for delivery.
    let pending: { accepted: QueueEntry[]; connections: number } | undefined;
    const report = () => {
      if (pending) return pending;
      pending = { accepted: [], connections: 0 };
      setImmediate(() => {
        post({ t: 'events', ...pending! });
        pending = undefined;
      });
      return pending;
    };
    server = new InboundServer({ config, queue, log, hostname: data.hostname, handoff: data.handoff, onAccepted: (entry) => void report().accepted.push(entry), onConnection: () => void report().connections++ });
    await server.start();
  } catch (err) {
    const e = err instanceof Relay365Error ? err : new Relay365Error('INTERNAL', (err as Error).message);
    await server?.stop().catch(() => {});
    await queue?.close().catch(() => {});
    post({ t: 'failed', error: { code: e.code, message: e.message, hint: e.hint, temporary: e.temporary } });
    port.close();
    return;
  }
  post({ t: 'listening', bound: server.bound });
  port.on('message', (m: ToThread) => {
    if (m.t === 'reconfigure') {
      // Test-only trigger (test/relay/serve-supervision.test.ts): with this variable set, a reload
      // (SIGHUP) throws here as a bug in the thread would, and the thread dies after start-up.
      if (process.env.RELAY365_TEST_INBOUND_THREAD_DIES_ON_RELOAD) throw new Error('the inbound thread died on reload (RELAY365_TEST_INBOUND_THREAD_DIES_ON_RELOAD is set)');
      server!.reconfigure(m.config);
    } else if (m.t === 'stop') {
      void (async () => {
        await server!.stop();
        await queue!.close();
        await new Promise((r) => setImmediate(r));
        post({ t: 'stopped' });
        port.close();
      })();
    }
  });
}

/**
 * The thread's logger hands each record to the main thread's, so there is one pino and one output
 * (and pino's few megabytes are not loaded twice). Records are sanitised here, as they must be
 * cloned to cross; the main logger sanitises again as it always does.
 */
function forwardingLogger(post: (m: FromThread) => void, level: LevelWithSilent): Logger {
  const min = level === 'silent' ? LOG_LEVELS.length : LOG_LEVELS.indexOf(level);
  const method = (l: LogLevel) => (objOrMsg: unknown, msg?: string) => {
    if (LOG_LEVELS.indexOf(l) < min) return;
    const [obj, text] = typeof objOrMsg === 'string' ? [{}, objOrMsg] : [objOrMsg, msg];
    post({ t: 'log', level: l, obj: sanitize(obj), msg: text });
  };
  const logger: Record<string, unknown> = { level, child: () => logger };
  for (const l of LOG_LEVELS) logger[l] = method(l);
  return logger as unknown as Logger;
}

if (!isMainThread && (workerData as Partial<ThreadData> | null)?.relay365 === 'inbound') void runThread(workerData as ThreadData);
