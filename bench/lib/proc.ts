/**
 * Processes for the bench: starting servers on a free port and waiting until they accept,
 * stopping them by PID (only ones we started), and reading CPU time and memory of a process
 * and all its descendants from /proc (socat and ncat fork a child per connection).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';

/** Clock ticks per second for /proc/PID/stat times (USER_HZ, 100 on Linux). */
const CLK_TCK = 100;

/** A port that was free a moment ago on 127.0.0.1 (the system picks it: bind port 0, then close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * True when a socket listens on 127.0.0.1:port (or the wildcard), read from /proc/net/tcp{,6}.
 * Readiness is checked this way rather than by connecting: a probe connection through a relay
 * reaches the backend, and iperf3's server takes any connection for a test's control channel.
 */
export function isListening(port: number): boolean {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // f[1] = local "ADDR:PORT" in hex, f[3] = state (0A = LISTEN).
      if (f.length > 3 && f[3] === '0A' && f[1].endsWith(`:${hex}`)) return true;
    }
  }
  return false;
}

/** Resolves once a socket listens on `port`; rejects if `child` exits first or after timeoutMs. */
export async function waitForPort(port: number, timeoutMs: number, child?: ChildProcess): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child && child.exitCode !== null) throw new Error(`exited with code ${child.exitCode}`);
    if (isListening(port)) return;
    await sleep(50);
  }
  throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

/** A server process the bench started. */
export interface Running {
  child: ChildProcess;
  pid: number;
  port: number;
  /** Last lines of its stderr, for error reports. */
  stderr(): string;
  stop(): Promise<void>;
}

/** Spawns `cmd args` and waits until it accepts on `port`; rejects with its stderr if it does not. */
export async function startServer(cmd: string, args: string[], port: number, opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Running> {
  // stdin stays an open pipe that never gets a byte: servers that read it (ncat's broker, sockcat
  // broadcast's <server> lines) must not see EOF; stdout is discarded (broadcast logs the room there).
  const child = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'], env: { ...process.env, ...opts.env } });
  child.stdin!.on('error', () => {});
  let err = '';
  child.stderr!.on('data', (c: Buffer) => {
    err = (err + c.toString()).slice(-4000);
  });
  const spawned = new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  const running: Running = { child, pid: 0, port, stderr: () => err, stop: () => stopProcess(child) };
  try {
    await spawned;
    running.pid = child.pid!;
    await waitForPort(port, opts.timeoutMs ?? 10_000, child);
  } catch (e) {
    await stopProcess(child);
    const first = err.trim().split('\n')[0] || (e as Error).message;
    throw new Error(`${cmd} ${args.join(' ')}: ${first}`);
  }
  return running;
}

/** SIGTERM, then SIGKILL after 3 s; resolves when the process has exited. Only for our own children. */
export function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

interface Stat {
  ppid: number;
  /** utime + stime, seconds. */
  cpu: number;
  /** cutime + cstime (reaped children), seconds. */
  childCpu: number;
}

function readStat(pid: number): Stat | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may hold spaces: split after the last ')'.
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), cpu: (Number(f[11]) + Number(f[12])) / CLK_TCK, childCpu: (Number(f[13]) + Number(f[14])) / CLK_TCK };
  } catch {
    return undefined;
  }
}

/** pid and every live descendant of it. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(Number(name));
    if (!st) continue;
    const list = children.get(st.ppid) ?? [];
    list.push(Number(name));
    children.set(st.ppid, list);
  }
  const out: number[] = [];
  const todo = [root];
  while (todo.length > 0 && out.length < 100_000) {
    const pid = todo.pop()!;
    out.push(pid);
    todo.push(...(children.get(pid) ?? []));
  }
  return out;
}

/**
 * CPU seconds used so far by a process and its descendants: the root's own and reaped
 * children's time, plus the live descendants' own time. The difference of two readings is the
 * CPU a server spent in between (a child reaped in between moves from one term to the other).
 */
export function treeCpuSeconds(root: number): number {
  let total = 0;
  for (const pid of processTree(root)) {
    const st = readStat(pid);
    if (!st) continue;
    total += st.cpu + (pid === root ? st.childCpu : 0);
  }
  return total;
}

function statusKb(path: string, field: string): number {
  try {
    const m = readFileSync(path, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/**
 * A live process's start time (clock ticks since boot), to tell it from a later process given the
 * same PID; undefined once it has exited (a zombie included: it only waits to be reaped).
 */
function startTicks(pid: number): number | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return f[0] === 'Z' ? undefined : Number(f[19]);
  } catch {
    return undefined;
  }
}

/** The live processes of a tree, each with its start time: what `killLeftovers` may stop later. */
export function snapshotTree(root: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of processTree(root)) {
    const t = startTicks(pid);
    if (t !== undefined) out.set(pid, t);
  }
  return out;
}

/**
 * Stops whatever is still alive of a snapshot taken with `snapshotTree` (same PID and same start
 * time, so never a stranger that got a recycled PID) half a second after it was asked to stop:
 * SIGTERM, then SIGKILL after `graceMs`.
 * Resolves with how many had to be stopped. For a subject whose wrapper shell exited but left
 * descendants behind (an sshd session, an ssh client).
 */
export async function killLeftovers(snapshot: Map<number, number>, graceMs = 2000): Promise<number> {
  const alive = () => [...snapshot].filter(([pid, t]) => startTicks(pid) === t).map(([pid]) => pid);
  // A moment to exit on their own (an sshd session ends once its client is gone).
  for (let waited = 0; waited < 500 && alive().length > 0; waited += 50) await sleep(50);
  const left = alive();
  const signal = (pids: number[], sig: NodeJS.Signals) => {
    for (const pid of pids) {
      try {
        process.kill(pid, sig);
      } catch {
        // Exited in between.
      }
    }
  };
  signal(left, 'SIGTERM');
  for (let waited = 0; waited < graceMs && alive().length > 0; waited += 50) await sleep(50);
  signal(alive(), 'SIGKILL');
  return left.length;
}

/** Memory of a process tree in KiB: summed PSS (shared pages split between sharers), root's RSS, process count. */
export function treeMemory(root: number): { pssKb: number; rssKb: number; processes: number } {
  const pids = processTree(root);
  let pssKb = 0;
  for (const pid of pids) pssKb += statusKb(`/proc/${pid}/smaps_rollup`, 'Pss');
  return { pssKb, rssKb: statusKb(`/proc/${root}/status`, 'VmRSS'), processes: pids.length };
}

/** Runs a command to the end; resolves with its stdout (rejects on a non-zero exit or after timeoutMs). */
export function run(cmd: string, args: string[], opts: { timeoutMs: number; input?: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-4000)));
    child.stdin!.on('error', () => {});
    child.stdin!.end(opts.input ?? '');
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')}: no result after ${opts.timeoutMs} ms`));
    }, opts.timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${(err || out).trim().split('\n').slice(-2).join(' / ')}`));
    });
  });
}
