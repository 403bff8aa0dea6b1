/**
 * `--workers N` (forward, proxy): N processes listen on one port, so a relay is not capped by one
 * event loop on one core. Everything about --workers is in this file; a mode calls
 * `listenerProcess()` once and learns whether it is the primary (done), a worker, or alone. The
 * primary binds nothing itself and relays nothing: it makes room in the open-file limit, starts
 * the workers (each one is sockcat running the same command), replaces a worker that dies, and on
 * SIGINT/SIGTERM tells every worker to stop accepting and drain, then exits once they are all
 * gone. Each worker is an ordinary instance of the mode (access control, --accept-proxy-protocol,
 * logins and maps, logging, drain) with its share of --max-conns.
 *
 * The kernel spreads the connections: on Node >= 22.12 (the pinned Node of the binary) each
 * worker binds its own socket on the port with SO_REUSEPORT and the kernel hashes every new
 * connection to one of them, so clients that arrive together (iperf3's four streams) land on
 * different workers. On an older Node they share one socket (SCHED_NONE: every worker
 * accept()s on it, and whichever is waiting takes the connection). Round-robin through the
 * primary would make the primary the bottleneck again.
 */
import cluster, { type Worker } from 'node:cluster';
import net from 'node:net';
import os from 'node:os';
import type { Address, TcpAddress } from '../endpoints/index';
import { clusterMetricsSource, offerToPrimary, serveMetrics } from '../metrics';
import { ensureFdLimit, isStandaloneBinary } from './fdlimit';
import { createLogger, Logger, type LoggerOptions, type LogOptions } from '../log';
import type { ServedMetrics } from './listener';
import { UsageError } from '../errors';
import type { ModeIO } from '../io';

/** Upper bound on --workers: more processes than this only cost memory on any machine sockcat targets. */
export const MAX_WORKERS = 64;
/** The environment variable the primary hands each worker its settings in. */
const WORKER_ENV = 'SOCKCAT_WORKER';
/** Stop replacing dead workers after this many deaths within DEATH_WINDOW_MS: something is wrong for good. */
const MAX_DEATHS = 5;
const DEATH_WINDOW_MS = 10_000;
/** Events only one worker logs: the others share the same socket, so the same line again would only confuse. */
const STARTUP_EVENTS = new Set(['listening', 'exposed', 'forwarding', 'proxy', 'auth-file', 'map-file']);

/** What the primary tells a worker (JSON in SOCKCAT_WORKER). */
interface WorkerSettings {
  /** This worker's share of --max-conns, already fitted to the open-file limit. */
  maxConns: number;
  /** Leave the startup lines (listening on …, forwarding …) to the first worker. */
  quiet: boolean;
  /** The port the primary picked for a LISTEN on port 0, which every worker listens on. */
  port?: number;
}

/** The message the primary sends a worker to make it stop accepting and drain. */
const STOP_MESSAGE = 'sockcat:stop';
/**
 * The message a worker sends once it listens. node:cluster tells the primary itself only for a
 * shared socket; a worker's own SO_REUSEPORT socket (exclusive) is invisible to it.
 */
const LISTENING_MESSAGE = 'sockcat:listening';

/** Calls `fn` once the worker listens (its own message, or cluster's event for a shared socket). */
function onceListening(worker: Worker, fn: () => void): void {
  let told = false;
  const tell = () => {
    if (told) return;
    told = true;
    worker.off('message', onMessage);
    fn();
  };
  const onMessage = (msg: unknown) => {
    if (msg === LISTENING_MESSAGE) tell();
  };
  worker.on('message', onMessage);
  worker.once('listening', tell);
}

/** --workers: a count from 1 to MAX_WORKERS, or "auto" (one per CPU). */
export function parseWorkers(value: unknown): number {
  if (value === undefined) return 1;
  const text = String(value).trim();
  if (text === 'auto') return Math.min(MAX_WORKERS, os.availableParallelism());
  const n = Number(text);
  if (text === '' || !Number.isInteger(n) || n < 1 || n > MAX_WORKERS) {
    throw new UsageError(`--workers takes a number of processes from 1 to ${MAX_WORKERS}, or auto, not '${text}'`);
  }
  return n;
}

/**
 * --workers as a command settles it, with the flags it cannot go with: --save-cert (each worker
 * would make its own ephemeral certificate; only one could be in the file) and --allow-link (its
 * grants live in one process).
 */
export function settleWorkers(argv: Record<string, unknown>): number {
  const workers = parseWorkers(argv.workers);
  if (workers > 1 && argv.saveCert !== undefined) throw new UsageError('--save-cert and --workers: each worker makes its own ephemeral certificate; give them one with --cert/--key');
  if (workers > 1 && argv.allowLink !== undefined) throw new UsageError('--allow-link works with one process for now: drop --workers');
  return workers;
}

/** Whether this process is a worker started by a --workers primary. */
export function isListenerWorker(): boolean {
  return cluster.isWorker && process.env[WORKER_ENV] !== undefined;
}

/**
 * In a worker: its settings, and a signal aborted by the CLI's own (a signal sent to this
 * process, e.g. Ctrl-C reaching the whole process group) or by the primary's stop message.
 */
export function workerSetup(signal: AbortSignal): WorkerSettings & { signal: AbortSignal; listen: (a: Address) => Address; listening: () => void } {
  const settings = JSON.parse(process.env[WORKER_ENV] ?? '{}') as WorkerSettings;
  const stop = new AbortController();
  const abort = () => stop.abort();
  if (signal.aborted) abort();
  else signal.addEventListener('abort', abort, { once: true });
  process.on('message', function onPrimaryMessage(msg: unknown) {
    if (msg === STOP_MESSAGE) abort();
  });
  // A primary that dies (even SIGKILLed) closes the IPC channel: node:cluster then ends the
  // worker at once (its 'disconnect' handler calls process.exit), so no worker is ever orphaned.
  const listen = (a: Address) => (settings.port !== undefined && 'port' in a && a.port === 0 ? { ...a, port: settings.port } : a);
  const listening = () => {
    if (process.connected) process.send?.(LISTENING_MESSAGE);
  };
  return { ...settings, signal: stop.signal, listen, listening };
}

/**
 * A worker's logger options: as the user asked, minus the start-up lines when another worker
 * prints them. JSON events carry `worker` (the worker's PID): connection ids count per worker,
 * so a log tool pairs "open" and "close" by (worker, id).
 */
export function workerLogOptions(quiet: boolean): Pick<LoggerOptions, 'fields' | 'mute'> {
  return { fields: { worker: process.pid }, mute: quiet ? STARTUP_EVENTS : undefined };
}

export interface PrimaryOptions extends LogOptions {
  workers: number;
  listen: Address;
  /** --max-conns for the whole server (split between workers), or undefined for the default. */
  maxConns: number | undefined;
  defaultMaxConns: number;
  fdsPerClient: number;
  raiseFdLimit: boolean;
  /** --metrics: served here, the sum of every worker's. */
  metrics?: TcpAddress;
}

/**
 * The primary: runs `workers` processes of the mode until the signal stops them; resolves with the
 * exit code (0 after a graceful stop, the first worker's code if it cannot start, 1 if workers
 * keep dying).
 */
export async function runWorkerPrimary(opts: PrimaryOptions, io: ModeIO): Promise<number> {
  const logger = createLogger(opts, io.stderr);
  // Each worker holds its own share of the clients: the limit is checked (and raised by running
  // sockcat again, which then becomes the primary) once here, and workers inherit it on fork.
  const share = (n: number) => Math.ceil(n / opts.workers);
  const room = await ensureFdLimit({
    maxConns: opts.maxConns === undefined ? undefined : share(opts.maxConns),
    defaultMaxConns: share(opts.defaultMaxConns),
    fdsPerClient: opts.fdsPerClient,
    logger,
    relaunch: opts.raiseFdLimit,
    clientsWord: 'clients per worker',
  });
  if (room.relaunched) return room.exitCode;

  // Must be set before the first fork; the primary never accepts, the kernel spreads accepts.
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  cluster.setupPrimary({ ...workerCommand(), silent: false });
  const port = 'port' in opts.listen && opts.listen.port === 0 ? await pickPort(opts.listen.host) : undefined;
  const metricsServer = opts.metrics ? await serveMetrics(clusterMetricsSource(), opts.metrics, logger) : undefined;
  try {
    return await new WorkerPool(opts.workers, { maxConns: room.maxConns, port }, logger, io.signal).run();
  } finally {
    await metricsServer?.close();
  }
}

/**
 * LISTEN on port 0: the primary picks the port once and every worker listens on it. node:cluster
 * shares a socket between the workers that asked for the same port, and closes it when the last
 * of them is gone; with port 0 a worker started after that (a replacement, or one still starting
 * when the first died) would get a new random port, and clients would lose the relay. The port
 * is free for the few hundred ms until the first worker binds it again; undefined when the host
 * cannot be bound at all, so that the first worker reports why in its own words.
 */
function pickPort(host: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(undefined));
    probe.listen({ host, port: 0, exclusive: true }, () => {
      const { port } = probe.address() as net.AddressInfo;
      // Closed at once: the workers bind the port themselves, through the primary's shared handle.
      probe.close(() => resolve(port));
    });
  });
}

/**
 * How a worker is started: sockcat again with the same arguments. From `node dist/sockcat.cjs`
 * that is the script and its arguments; in the standalone binary process.argv[1] is only the
 * name it was called by, and fork() runs process.execPath (sockcat itself) with `exec` as its
 * first argument, which the worker sees as its mode.
 */
function workerCommand(): { exec: string; args: string[]; execArgv: string[] } {
  // The binary starts with its V8 flags from the SEA blob, where process.execArgv shows them;
  // passed again on the command line they would be taken as sockcat's own arguments.
  if (isStandaloneBinary()) return { exec: process.argv[2], args: process.argv.slice(3), execArgv: [] };
  return { exec: process.argv[1], args: process.argv.slice(2), execArgv: process.execArgv };
}

/** The live workers, their replacement when one dies, and the stop. */
class WorkerPool {
  private readonly live = new Set<Worker>();
  private readonly listening = new WeakSet<Worker>();
  private readonly deaths: number[] = [];
  private stopping = false;
  private exitCode = 0;
  private finish: (code: number) => void = () => {};

  constructor(
    private readonly count: number,
    private readonly settings: Omit<WorkerSettings, 'quiet'>,
    private readonly logger: Logger,
    private readonly signal: AbortSignal,
  ) {}

  async run(): Promise<number> {
    // The first worker alone, until it listens: if LISTEN cannot be opened (address in use…) it
    // says so in one line and its exit code is ours, instead of N workers saying it N times.
    const first = this.fork(false);
    const started = await new Promise<boolean>((resolve) => {
      onceListening(first, () => resolve(true));
      first.once('exit', () => resolve(false));
    });
    if (!started) {
      this.live.delete(first);
      return first.process.exitCode ?? 1;
    }
    const done = new Promise<number>((resolve) => (this.finish = resolve));
    cluster.on('exit', (worker, code, sig) => this.onExit(worker, code, sig));
    // A worker that ended between 'listening' and now has no 'exit' event left to tell us.
    if (first.isDead()) this.onExit(first, first.process.exitCode ?? 1, first.process.signalCode);
    for (let i = 1; i < this.count && !this.stopping; i++) this.fork(true);
    if (this.signal.aborted) this.stop();
    else this.signal.addEventListener('abort', () => this.stop(), { once: true });
    return done;
  }

  private fork(quiet: boolean): Worker {
    const settings: WorkerSettings = { ...this.settings, quiet };
    const worker = cluster.fork({ [WORKER_ENV]: JSON.stringify(settings) });
    this.live.add(worker);
    onceListening(worker, () => this.listening.add(worker));
    // An IPC error (the worker died mid-send) is reported by its 'exit'; it must not crash the primary.
    worker.on('error', () => {});
    if (this.stopping) this.stopWorker(worker);
    return worker;
  }

  /** Every worker stops accepting and drains (--drain-timeout); the primary ends when they are all gone. */
  private stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    for (const worker of this.live) this.stopWorker(worker);
    if (this.live.size === 0) this.finish(this.exitCode);
  }

  private stopWorker(worker: Worker): void {
    // A listening worker drains on the message; one still starting may not be listening for
    // messages yet, and has no client to drain: a SIGTERM stops it just as well.
    if (this.listening.has(worker) && worker.isConnected()) worker.send(STOP_MESSAGE);
    else worker.process.kill('SIGTERM');
  }

  private onExit(worker: Worker, code: number, sig: string | null): void {
    if (!this.live.delete(worker)) return;
    if (!this.stopping) this.replace(worker, sig ? `killed by ${sig}` : `exit code ${code}`);
    if (this.stopping && this.live.size === 0) this.finish(this.exitCode);
  }

  /** A worker died on its own: start another, unless they keep dying. */
  private replace(worker: Worker, how: string): void {
    const pid = worker.process.pid;
    const now = Date.now();
    this.deaths.push(now);
    while (this.deaths.length > 0 && now - this.deaths[0] > DEATH_WINDOW_MS) this.deaths.shift();
    if (this.deaths.length >= MAX_DEATHS) {
      this.logger.error('worker', `worker ${pid} died (${how}); ${MAX_DEATHS} workers died within ${DEATH_WINDOW_MS / 1000} s: stopping`, { pid, reason: how });
      this.exitCode = 1;
      this.stop();
      return;
    }
    this.logger.warn('worker', `worker ${pid} died (${how}); starting a new one`, { pid, reason: how });
    this.fork(true);
  }
}

/** What a listening mode runs as: the primary that has finished, or a process that serves. */
export type ListenerProcess =
  | { role: 'done'; exitCode: number }
  | {
      role: 'alone' | 'worker';
      logger: Logger;
      /** Aborted by a signal to this process or, in a worker, by the primary's stop. */
      signal: AbortSignal;
      /** LISTEN, with the port the primary picked for a port 0. */
      listen: Address;
      /** This process's --max-conns, fitted to the open-file limit. */
      maxConns: number;
      /** Listen with SO_REUSEPORT (a worker: each its own socket on the port). */
      reusePort: boolean;
      /** Tell the primary the listener is up (nothing when alone). */
      listening: () => void;
      /** The mode's metrics as this process serves them: a worker only counts, the primary serves the sum. */
      metrics: (m: ServedMetrics | undefined) => ServedMetrics | undefined;
    };

export interface ListenerProcessOptions extends PrimaryOptions {
  /** Fit --max-conns to the open-file limit (default true; a one-shot server has one client). */
  fitFdLimit?: boolean;
}

/**
 * The one place a listening mode asks about --workers: with N > 1 the first call (the primary)
 * runs the workers until stopped and returns 'done'; in a worker it returns the worker's share
 * and signal; with one process it fits --max-conns to the open-file limit (or runs sockcat again
 * with a higher one: 'done' too).
 */
export async function listenerProcess(opts: ListenerProcessOptions, io: ModeIO): Promise<ListenerProcess> {
  // N processes share a port (SO_REUSEPORT); a socket path can be bound by one process only, and
  // each new worker took the previous one's socket for a stale one (or died on it).
  if (opts.workers > 1 && !('port' in opts.listen)) throw new UsageError(`--workers needs a TCP or TLS LISTEN address (a port the workers share), not ${opts.listen.scheme}:`);
  if (opts.workers > 1 && !isListenerWorker()) return { role: 'done', exitCode: await runWorkerPrimary(opts, io) };
  if (opts.workers > 1) {
    const worker = workerSetup(io.signal);
    return {
      role: 'worker',
      logger: createLogger(opts, io.stderr, workerLogOptions(worker.quiet)),
      signal: worker.signal,
      listen: worker.listen(opts.listen),
      maxConns: worker.maxConns,
      // Each worker its own socket on the port (SO_REUSEPORT): the kernel hashes each connection
      // to one of them, so simultaneous clients (iperf3's 4 streams) spread over the workers;
      // with one shared socket whichever worker was waiting in accept() took them all.
      reusePort: true,
      listening: worker.listening,
      metrics: (m) => {
        if (!m) return undefined;
        // The primary serves --metrics, adding up what each worker counts.
        offerToPrimary(m.metrics);
        return { metrics: m.metrics };
      },
    };
  }
  const logger = createLogger(opts, io.stderr);
  const room =
    opts.fitFdLimit === false
      ? { relaunched: false as const, maxConns: opts.maxConns ?? opts.defaultMaxConns }
      : await ensureFdLimit({ maxConns: opts.maxConns, defaultMaxConns: opts.defaultMaxConns, fdsPerClient: opts.fdsPerClient, logger, relaunch: opts.raiseFdLimit });
  if (room.relaunched) return { role: 'done', exitCode: room.exitCode };
  return { role: 'alone', logger, signal: io.signal, listen: opts.listen, maxConns: room.maxConns, reusePort: false, listening: () => {}, metrics: (m) => m };
}
