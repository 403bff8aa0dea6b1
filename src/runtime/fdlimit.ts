/**
 * Open-file limit for server modes. Every client costs file descriptors (forward: two, the
 * client and its upstream). Node raises its soft limit to the hard limit at startup, but the
 * hard limit itself may be below what --max-conns needs, and Node has no setrlimit(): when a
 * shell could raise it (root with CAP_SYS_RESOURCE), sockcat runs itself again once through
 * `/bin/sh -c 'ulimit -n N; exec …'` (an environment variable guards against doing it twice). When it still cannot hold --max-conns,
 * the limit on clients is lowered to what fits, so extra clients are refused cleanly (and logged)
 * instead of failing in accept(), and the user is told in one line.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import type { Logger } from '../log';

/** Set in the environment of the re-run process so it never re-runs itself again. */
export const RELAUNCH_GUARD = 'SOCKCAT_FDLIMIT_RELAUNCHED';

/** Descriptors kept free for everything that is not a client: stdio, the listener, DNS, log files. */
const RESERVED_FDS = 32;

export interface FdLimits {
  soft: number;
  hard: number;
}

/** The "Max open files" line of /proc/self/limits, or undefined where there is no /proc (not Linux). */
export function readFdLimits(text?: string): FdLimits | undefined {
  let limits = text;
  if (limits === undefined) {
    try {
      limits = fs.readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return undefined;
    }
  }
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits);
  if (!m) return undefined;
  const num = (s: string) => (s === 'unlimited' ? Infinity : Number(s));
  return { soft: num(m[1]), hard: num(m[2]) };
}

/** How many descriptors this process holds right now. */
export function openFdCount(): number {
  try {
    return fs.readdirSync('/proc/self/fd').length;
  } catch {
    return 16;
  }
}

/** Clients the default --max-conns may be trimmed to without a warning (see ensureFdLimit). */
const QUIET_CAPACITY = 1000;
/** How often, at most, the open-file limit being reached is said (once per wave, not once per client). */
export const FD_EXHAUSTION_LOG_INTERVAL_MS = 10_000;

/**
 * Watches a listener's descriptors: when the open-file limit is (nearly) reached, the system
 * turns new clients away before sockcat ever sees them (libuv accepts and closes them at
 * EMFILE, silently), so this says it, once per interval. Cheap: /proc/self/fd is read only
 * while the listener holds at least a quarter of the limit in clients.
 */
export class FdExhaustionWatch {
  private lastSaid = -Infinity;

  constructor(
    private readonly say: (text: string, fields: Record<string, number>) => void,
    private readonly intervalMs = FD_EXHAUSTION_LOG_INTERVAL_MS,
    /** The soft limit (read from the process when not given). */
    private readonly soft = readFdLimits()?.soft ?? Infinity,
  ) {}

  /** After each accepted connection, with the number of connections held. */
  check(held: number): void {
    if (this.soft === Infinity || held < this.soft / 4) return;
    // readdir holds one descriptor of its own while it reads.
    const inUse = openFdCount() - 1;
    if (inUse < this.soft - 4) return;
    const now = Date.now();
    if (now - this.lastSaid < this.intervalMs) return;
    this.lastSaid = now;
    this.say(`open-file limit ${this.soft} reached (${inUse} in use, ${held} clients): new clients are turned away until some leave; raise it with ulimit -n`, {
      limit: this.soft,
      in_use: inUse,
      clients: held,
    });
  }
}

/** How many clients fit under a soft limit, at `fdsPerClient` each. */
export function clientCapacity(soft: number, fdsPerClient: number, inUse = openFdCount()): number {
  if (soft === Infinity) return Infinity;
  return Math.max(0, Math.floor((soft - inUse - RESERVED_FDS) / fdsPerClient));
}

/** The descriptors needed for `maxConns` clients. */
export function fdsNeeded(maxConns: number, fdsPerClient: number, inUse = openFdCount()): number {
  return maxConns * fdsPerClient + inUse + RESERVED_FDS;
}

/** Whether a shell in this process's place could set the soft limit to n (root may raise the hard limit too). */
function canRaiseTo(n: number, limits: FdLimits): boolean {
  if (n <= limits.hard) return true;
  // Raising the hard limit needs CAP_SYS_RESOURCE, which a container's root often lacks: ask a shell.
  const probe = spawnSync('/bin/sh', ['-c', `ulimit -n ${n}`], { stdio: 'ignore', timeout: 5000 });
  return probe.status === 0;
}

/** Whether this process is a Node single-executable application (the standalone sockcat binary). */
export function isStandaloneBinary(): boolean {
  try {
    const load = (process as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule;
    const sea = (load ? load('node:sea') : typeof require === 'function' ? require('node:sea') : undefined) as { isSea?: () => boolean } | undefined;
    return sea?.isSea?.() === true;
  } catch {
    // Node versions before node:sea existed.
    return false;
  }
}

/** The command line that starts this same sockcat again with the same arguments. */
export function selfCommand(): { file: string; args: string[] } {
  if (isStandaloneBinary()) return { file: process.execPath, args: process.argv.slice(2) };
  return { file: process.execPath, args: [...process.execArgv, ...process.argv.slice(1)] };
}

/**
 * Runs a command (sockcat itself by default) with the open-file limit set to `target`, or to
 * `hard` when the shell refuses, sharing stdio, passing SIGINT/SIGTERM/SIGHUP on, and resolves
 * with its exit code (128 + signal number when a signal ended it).
 */
export function runWithFdLimit(target: number, hard: number, command = selfCommand()): Promise<number> {
  const { file, args } = command;
  const script = `ulimit -n ${target} 2>/dev/null || ulimit -n ${hard === Infinity ? 'unlimited' : hard}; exec "$0" "$@"`;
  const child = spawn('/bin/sh', ['-c', script, file, ...args], { stdio: 'inherit', env: { ...process.env, [RELAUNCH_GUARD]: '1' } });
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  // The re-run process does the real work: every signal aimed at us is meant for it. Prepended
  // so that the CLI's own handler (which exits on a second signal) runs after it is passed on.
  const passOn = (sig: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(sig);
  };
  for (const s of signals) process.prependListener(s, passOn);
  return new Promise((resolve) => {
    const done = (code: number | null, signal: NodeJS.Signals | null) => {
      for (const s of signals) process.off(s, passOn);
      resolve(code ?? 128 + (signal ? os.constants.signals[signal] : 1));
    };
    child.once('exit', done);
    child.once('error', () => done(1, null));
  });
}

export interface FdLimitOptions {
  /** --max-conns as given, or undefined for the default. */
  maxConns: number | undefined;
  defaultMaxConns: number;
  fdsPerClient: number;
  logger: Logger;
  /** Allow running sockcat again with a higher limit (only the CLI, never a mode run inside tests). */
  relaunch: boolean;
  /** For tests: limits to use instead of /proc/self/limits. */
  limits?: FdLimits;
  /** How the messages name the count (default "clients"; forward --workers: "clients per worker"). */
  clientsWord?: string;
}

export type FdLimitOutcome =
  /** Go on in this process, serving at most maxConns clients. */
  | { relaunched: false; maxConns: number }
  /** sockcat ran again with a higher limit and has finished with this exit code. */
  | { relaunched: true; exitCode: number };

/**
 * Makes room for --max-conns clients: re-runs sockcat with a higher soft limit when that helps,
 * otherwise caps the client count to what the limit holds and says so.
 */
export async function ensureFdLimit(opts: FdLimitOptions): Promise<FdLimitOutcome> {
  const wanted = opts.maxConns ?? opts.defaultMaxConns;
  const limits = opts.limits ?? readFdLimits();
  if (!limits) return { relaunched: false, maxConns: wanted };
  const inUse = openFdCount();
  const needed = fdsNeeded(wanted, opts.fdsPerClient, inUse);
  const alreadyRelaunched = process.env[RELAUNCH_GUARD] === '1';
  delete process.env[RELAUNCH_GUARD]; // programs we start later (exec mode) get a clean environment
  if (limits.soft >= needed) {
    if (alreadyRelaunched) opts.logger.event('fd-limit', `open-file limit raised to ${limits.soft} for ${wanted} ${opts.clientsWord ?? 'clients'}`, { soft: limits.soft, max_conns: wanted });
    return { relaunched: false, maxConns: wanted };
  }
  if (opts.relaunch && !alreadyRelaunched) {
    const target = canRaiseTo(needed, limits) ? needed : limits.hard;
    if (target > limits.soft) return { relaunched: true, exitCode: await runWithFdLimit(target, limits.hard) };
  }

  const capacity = clientCapacity(limits.soft, opts.fdsPerClient, inUse);
  const text = `open-file limit is ${limits.soft}: at most ~${capacity} ${opts.clientsWord ?? 'clients'}${opts.maxConns !== undefined ? ` (not ${wanted})` : ''}; raise it with ulimit -n`;
  // A warning when it lowers what the user asked for (an explicit --max-conns), or when the limit
  // is small enough to matter: the default cut by more than half, to fewer than a thousand
  // clients. The default cut by half on a generous limit ("20000: at most ~4987" exec clients,
  // each a process) is not news on every start: -v says it. Trimmed by a few clients ("20000: at
  // most ~9974"): not even that.
  const fields = { soft: limits.soft, hard: limits.hard, max_conns: capacity };
  if (opts.maxConns !== undefined || capacity < Math.min(wanted / 2, QUIET_CAPACITY)) opts.logger.warn('fd-limit', text, fields);
  else if (capacity < wanted / 2) opts.logger.event('fd-limit', text, fields);
  return { relaunched: false, maxConns: Math.max(1, capacity) };
}
