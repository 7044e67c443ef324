/**
 * relay365 vs Debian Postfix as a store-and-forward relay, driven by Postfix's smtp-source.
 * Usage: node --import tsx bench/relay.ts [--smoke]      (needs root and the postfix package)
 *
 * Both relays forward to the same upstream, Postfix's smtp-sink on a free loopback port
 * (relay365 through a `smarthost` route, Postfix through `relayhost`): the sandbox's SMTP wants
 * STARTTLS + XOAUTH2, which Postfix cannot do, and a C sink keeps the upstream out of the
 * measurement. relay365 runs as its own process (`relay365 serve`) with its embedded SQLite
 * queue, so its RSS is measured alone: compiled JavaScript, as installed (src is compiled with
 * tsc into a temp dir first, ~5 s; `--tsx` runs src through tsx instead, which adds ~55 MB RSS;
 * `--smoke` implies --tsx). Then, separately: RSS with 1,000 idle clients, RSS
 * growth for one 100 MB message, and token requests per account against the sandbox.
 * See bench/README.md for what is measured and the recorded figures.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { closeSync, copyFileSync, fstatSync, openSync, readFileSync, readSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { cliEntry, repoRoot, tempDir } from '../test/helpers/cli.js';
import { freePort, POSTFIX_BIN, postfixMissing, startPostfix, type Postfix } from '../test/helpers/postfix.js';
import { startServe } from '../test/helpers/serve.js';
import { addAccount } from '../test/helpers/accounts.js';
import { startSandbox } from '../src/sandbox/index.js';

const run = promisify(execFile);
const smoke = process.argv.includes('--smoke');
const useTsx = smoke || process.argv.includes('--tsx');
/** --single-thread: relay365 with `relay.inbound_thread: false` (accepting and delivering in one event loop). */
const singleThread = process.argv.includes('--single-thread');
/** --memory-only: only the memory measurements (quick checks while working on memory). */
const memoryOnly = process.argv.includes('--memory-only');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const KB = 1024;
const MB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// The upstream: smtp-sink, counting received messages (its -c counter, "… mesg=N\r").

interface Sink {
  port: number;
  received(): number;
  waitFor(count: number, timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

async function startSink(): Promise<Sink> {
  const port = await freePort();
  // Its counter ("… mesg=N\r" after every message) goes to a file read every 20 ms: reading it
  // from a pipe woke this process once per message, CPU taken from both relays while measured.
  const out = join(tempDir('relay365-bench-sink-'), 'counter');
  const fd = openSync(out, 'w+');
  // -u: the user to run as (root is refused); backlog 1024.
  const child = spawn(POSTFIX_BIN.smtpSink, ['-c', '-u', 'nobody', `127.0.0.1:${port}`, '1024'], { stdio: ['ignore', fd, 'pipe'] });
  const tail = Buffer.alloc(256);
  const count = () => {
    const size = fstatSync(fd).size;
    const n = readSync(fd, tail, 0, Math.min(tail.length, size), Math.max(0, size - tail.length));
    const all = [...tail.toString('latin1', 0, n).matchAll(/mesg=(\d+)/g)];
    return all.length ? Number(all.at(-1)![1]) : 0;
  };
  await waitListening(port, 10_000);
  return {
    port,
    received: count,
    async waitFor(n, timeoutMs) {
      const end = Date.now() + timeoutMs;
      for (let got = count(); got < n; got = count()) {
        if (Date.now() > end) throw new Error(`sink: ${got}/${n} messages after ${timeoutMs} ms`);
        await sleep(20);
      }
    },
    async stop() {
      await stopChild(child);
      closeSync(fd);
    },
  };
}

async function waitListening(port: number, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`nothing listens on 127.0.0.1:${port}`);
    await sleep(50);
  }
}

function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill(signal);
  });
}

// ---------------------------------------------------------------------------------------------
// relay365 as a child process (`relay365 serve`), so its memory is its own.

interface Relay {
  port: number;
  pid: number;
  state: string;
  rss(): { rss: number; hwm: number };
  stop(): Promise<void>;
}

/** The node arguments that run the relay365 CLI: compiled once into a temp dir, or src via tsx. */
let cliArgs: string[] = ['--import', 'tsx', cliEntry];

async function buildRelay(): Promise<void> {
  // <root>/dist/cli/run.js reads <root>/package.json (its version) and resolves packages from
  // <root>/node_modules, as in the repository.
  const root = tempDir('relay365-bench-build-');
  await run(process.execPath, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(repoRoot, 'tsconfig.build.json'), '--outDir', join(root, 'dist')], { cwd: repoRoot, timeout: 5 * 60_000 });
  copyFileSync(join(repoRoot, 'package.json'), join(root, 'package.json'));
  symlinkSync(join(repoRoot, 'node_modules'), join(root, 'node_modules'));
  cliArgs = [join(root, 'dist', 'cli', 'run.js')];
}

async function startRelay(yaml: string, state = tempDir('relay365-bench-')): Promise<Relay> {
  const configFile = join(state, 'relay365.yaml');
  writeFileSync(configFile, yaml);
  // relay.json names the SMTP listener once it is bound.
  const serve = await startServe({ state, configFile, logLevel: 'warn', cli: cliArgs, timeoutMs: 30_000 });
  return {
    port: serve.port,
    pid: serve.pid,
    state,
    rss: () => procMemory(serve.pid),
    stop: async () => {
      await serve.stop('SIGTERM', 10_000);
    },
  };
}

/** VmRSS and VmHWM (peak RSS) of a process, in bytes. */
function procMemory(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

function sinkRelayYaml(sinkPort: number): string {
  // Inbound limits raised above the defaults (50 connections, 600 messages/minute per client IP,
  // 35 MB): every load here comes from 127.0.0.1 and must not be throttled by policy.
  return `relay:
  listen: [{ address: 127.0.0.1, port: 0 }]
  hostname: relay.bench
  max_message_size: ${200 * MB}
  max_connections_per_client: 5000
  max_messages_per_minute_per_client: 100000000
  inbound_thread: ${!singleThread}
  routes:
    sink: { type: smarthost, host: 127.0.0.1, port: ${sinkPort}, security: none }
  default_route: sink
web:
  enabled: false
`;
}

// ---------------------------------------------------------------------------------------------
// Load: smtp-source.

interface Scenario {
  sessions: number;
  size: number;
  messages: number;
  /** -d: keep the connection for the next message. */
  reuse: boolean;
}

async function smtpSource(port: number, s: Scenario, from = 'sender@bench.test', to = 'rcpt@upstream.test'): Promise<void> {
  const args = ['-m', String(s.messages), '-s', String(s.sessions), '-l', String(s.size), '-f', from, '-t', to, ...(s.reuse ? ['-d'] : []), `127.0.0.1:${port}`];
  await run(POSTFIX_BIN.smtpSource, args, { timeout: 30 * 60_000, maxBuffer: 16 * MB });
}

interface Result {
  acceptPerSec: number;
  endToEndPerSec: number;
}

async function measure(port: number, sink: Sink, s: Scenario): Promise<Result> {
  // Warm-up, not timed: the same load once before, so neither relay is measured while it starts
  // processes (Postfix) or while its JIT compiler and heap sizing settle (relay365, which needs a
  // couple of thousand messages: a tenth of the load left its first scenario a third below its
  // steady state).
  if (!smoke) {
    const before = sink.received();
    await smtpSource(port, s);
    await sink.waitFor(before + s.messages, 10 * 60_000);
  }
  const base = sink.received();
  const t0 = performance.now();
  await smtpSource(port, s);
  const accepted = performance.now() - t0;
  await sink.waitFor(base + s.messages, 30 * 60_000);
  const e2e = performance.now() - t0;
  return { acceptPerSec: (s.messages * 1000) / accepted, endToEndPerSec: (s.messages * 1000) / e2e };
}

/** --only=10:1MB:per,50:1KB:reused — a subset of the throughput table (quick checks). */
const only = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length).split(',');
const scenarioName = (s: Scenario) => `${s.sessions}:${s.size === KB ? '1KB' : '1MB'}:${s.reuse ? 'reused' : 'per'}`;

/**
 * 10,000 messages of 1 KB and 1,000 of 1 MB per timed run: at 1,300–5,000 messages/s the former
 * 2,000 and 200 lasted 0.4–1.5 s, so the first connections and the last message's trip (and the
 * sink counter's 20 ms polling) weighed on the figures.
 */
function scenarios(): Scenario[] {
  const out: Scenario[] = [];
  for (const sessions of smoke ? [10] : [10, 50])
    for (const size of [KB, MB])
      for (const reuse of [false, true]) out.push({ sessions, size, reuse, messages: smoke ? (size === KB ? 40 : 10) : size === KB ? 10_000 : 1_000 });
  return only ? out.filter((s) => only.includes(scenarioName(s))) : out;
}

const fmt = (n: number, d = 1) => n.toFixed(d);
const mb = (n: number) => `${(n / MB).toFixed(1)} MB`;

// ---------------------------------------------------------------------------------------------
// Memory: 1,000 idle clients; one 100 MB message.

async function idleConnections(port: number, count: number): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  const greet = (s: net.Socket) =>
    new Promise<void>((resolve, reject) => {
      let buf = '';
      s.on('data', function onData(d: Buffer) {
        buf += d.toString('latin1');
        if (/^220 /m.test(buf)) {
          s.off('data', onData);
          resolve();
        } else if (/^[45]\d\d /m.test(buf)) reject(new Error(`refused: ${buf.trim()}`));
      });
      s.once('error', reject);
    });
  // In batches, as a burst of 1,000 SYNs would overflow the listen backlog.
  for (let i = 0; i < count; i += 100) {
    const batch = Array.from({ length: Math.min(100, count - i) }, () => net.connect(port, '127.0.0.1'));
    sockets.push(...batch);
    await Promise.all(batch.map(greet));
  }
  return sockets;
}

async function memoryIdle(sink: Sink, count: number): Promise<{ before: number; after: number }> {
  const relay = await startRelay(sinkRelayYaml(sink.port));
  try {
    // Warm up: one message through, so lazily loaded code paths are already in the baseline.
    await smtpSource(relay.port, { sessions: 1, size: KB, messages: 1, reuse: false });
    await sleep(1000);
    const before = relay.rss().rss;
    const sockets = await idleConnections(relay.port, count);
    await sleep(2000);
    const after = relay.rss().rss;
    for (const s of sockets) s.destroy();
    return { before, after };
  } finally {
    await relay.stop();
  }
}

async function memoryBigMessage(sink: Sink, size: number): Promise<{ before: number; peak: number; ms: number }> {
  const relay = await startRelay(sinkRelayYaml(sink.port));
  try {
    await smtpSource(relay.port, { sessions: 1, size: KB, messages: 1, reuse: false });
    await sleep(1000);
    const before = relay.rss().rss;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, relay.rss().rss)), 20);
    const base = sink.received();
    const t0 = performance.now();
    await smtpSource(relay.port, { sessions: 1, size, messages: 1, reuse: false });
    await sink.waitFor(base + 1, 10 * 60_000);
    const ms = performance.now() - t0;
    clearInterval(sampler);
    // VmHWM catches a peak between two samples.
    return { before, peak: Math.max(peak, relay.rss().hwm), ms };
  } finally {
    await relay.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Tokens: relay365 → sandbox SMTP (XOAUTH2) for two accounts; count token requests.

async function tokenRun(messagesPerAccount: number, tokenLifetimeSeconds: number, spreadMs: number): Promise<{ accounts: number; requests: number; byGrant: Record<string, number>; seconds: number }> {
  const sb = await startSandbox({ stateDir: tempDir('relay365-bench-sandbox-'), tokenLifetimeSeconds, limits: { messagesPerMinute: 100_000_000 } });
  const state = tempDir('relay365-bench-');
  const accounts = ['alice@contoso.onmicrosoft.com', 'bob@contoso.onmicrosoft.com'];
  try {
    for (const a of accounts) await addAccount(sb, state, a, { password: `${a.split('@')[0]}-Passw0rd!` });
    const yaml = `relay:
  listen: [{ address: 127.0.0.1, port: 0 }]
  max_messages_per_minute_per_client: 100000000
  inbound_thread: ${!singleThread}
delivery:
  ca_file: ${sb.caFile}
  smtp_host: 127.0.0.1
  smtp_port: ${sb.endpoints.smtp.port}
  messages_per_minute_per_account: 100000000
web:
  enabled: false
`;
    const relay = await startRelay(yaml, state);
    const before = { ...sb.identity.stats, tokenRequestsByGrant: { ...sb.identity.stats.tokenRequestsByGrant } };
    const t0 = performance.now();
    try {
      // Messages spread over `spreadMs`, so the run spans several token lifetimes.
      const rounds = Math.max(1, Math.ceil(spreadMs / 1000));
      const perRound = Math.max(1, Math.ceil(messagesPerAccount / rounds));
      let sent = 0;
      for (let r = 0; r < rounds && sent < messagesPerAccount; r++) {
        const n = Math.min(perRound, messagesPerAccount - sent);
        const roundStart = performance.now();
        await Promise.all(accounts.map((a) => smtpSource(relay.port, { sessions: 2, size: KB, messages: n, reuse: true }, a, 'someone@example.net')));
        sent += n;
        const left = 1000 - (performance.now() - roundStart);
        if (rounds > 1 && left > 0) await sleep(left);
      }
      const end = Date.now() + 120_000;
      while (sb.mail.outbound().length < messagesPerAccount * accounts.length && Date.now() < end) await sleep(50);
      if (sb.mail.outbound().length < messagesPerAccount * accounts.length) throw new Error(`sandbox received ${sb.mail.outbound().length}/${messagesPerAccount * accounts.length}`);
    } finally {
      await relay.stop();
    }
    const byGrant: Record<string, number> = {};
    for (const [g, n] of Object.entries(sb.identity.stats.tokenRequestsByGrant)) byGrant[g] = n - (before.tokenRequestsByGrant[g] ?? 0);
    return { accounts: accounts.length, requests: sb.identity.stats.tokenRequests - before.tokenRequests, byGrant, seconds: (performance.now() - t0) / 1000 };
  } finally {
    await sb.stop();
  }
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const missing = postfixMissing();
  if (missing) {
    console.error(`bench: ${missing}`);
    process.exit(2);
  }
  if (!useTsx) await buildRelay();
  console.log(`# relay365 bench${smoke ? ' (smoke)' : ''}${useTsx ? ', relay365 via tsx' : ', relay365 compiled'}${singleThread ? ', inbound_thread: false' : ''} — ${new Date().toISOString()}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${mb(os.totalmem())} RAM, Node ${process.version}`);
  const sink = await startSink();
  let relay: Relay | undefined;
  let pf: Postfix | undefined;
  if (!memoryOnly) try {
    relay = await startRelay(sinkRelayYaml(sink.port));
    pf = await startPostfix({ relayHost: { host: '127.0.0.1', port: sink.port }, main: { message_size_limit: 200 * MB, queue_run_delay: '300s', minimal_backoff_time: '300s', maximal_backoff_time: '4000s' } });
    console.log('\n## Throughput (messages/s): smtp-source → relay → smtp-sink');
    console.log('| sessions | size | connection | relay365 accept | Postfix accept | ratio | relay365 end-to-end | Postfix end-to-end | ratio |');
    console.log('|---:|---:|---|---:|---:|---:|---:|---:|---:|');
    for (const s of scenarios()) {
      const r = await measure(relay.port, sink, s);
      const p = await measure(pf.port, sink, s);
      await pf.waitForEmptyQueue(60_000);
      console.log(`| ${s.sessions} | ${s.size === KB ? '1 KB' : '1 MB'} | ${s.reuse ? 'reused' : 'per message'} | ${fmt(r.acceptPerSec)} | ${fmt(p.acceptPerSec)} | ${fmt(r.acceptPerSec / p.acceptPerSec, 2)} | ${fmt(r.endToEndPerSec)} | ${fmt(p.endToEndPerSec)} | ${fmt(r.endToEndPerSec / p.endToEndPerSec, 2)} |`);
    }
    console.log(`(relay365 RSS after the throughput runs: ${mb(relay.rss().rss)}, peak ${mb(relay.rss().hwm)})`);
  } finally {
    await relay?.stop();
    await pf?.stop();
  }

  if (only) {
    await sink.stop();
    return;
  }
  try {
    console.log('\n## Memory (relay365 process, fresh start for each)');
    const idle = smoke ? 100 : 1000;
    const m1 = await memoryIdle(sink, idle);
    console.log(`- ${idle} idle connections: RSS ${mb(m1.before)} → ${mb(m1.after)} (+${mb(m1.after - m1.before)})`);
    const big = smoke ? 10 * MB : 100 * MB;
    const m2 = await memoryBigMessage(sink, big);
    console.log(`- one ${mb(big)} message: RSS before ${mb(m2.before)}, peak ${mb(m2.peak)} (+${mb(m2.peak - m2.before)}), relayed in ${fmt(m2.ms / 1000)} s`);
  } finally {
    await sink.stop();
  }

  if (memoryOnly) return;
  console.log('\n## Token requests (relay365 → sandbox SMTP, XOAUTH2, 2 accounts)');
  const lifetime = smoke ? 3599 : 20;
  const t = await tokenRun(smoke ? 5 : 150, lifetime, smoke ? 0 : 50_000);
  console.log(`- token lifetime ${lifetime} s, ${fmt(t.seconds)} s run: ${t.requests} token requests for ${t.accounts} accounts (${fmt(t.requests / t.accounts, 1)} per account; ${fmt(t.seconds / lifetime, 1)} lifetimes) ${JSON.stringify(t.byGrant)}`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
