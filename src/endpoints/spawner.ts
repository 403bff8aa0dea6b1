/**
 * The spawner: one small process, started once, that starts every `exec` child for sockcat.
 *
 * Why: on Linux libuv's spawn is fork() + exec(). fork() copies the page tables of the whole
 * sockcat process (tens of MiB, more with thousands of connections) and the parent then takes a
 * copy-on-write fault for every page it touches; all of that ran on sockcat's one event loop,
 * ~2.5 ms per client (bench/RESULTS.md, exec). The spawner is a bare Node with a tiny heap, runs
 * on the other core, and forks only itself.
 *
 * How: sockcat sends {spawn} over the IPC channel; the spawner starts the child exactly as
 * before (own process group and session, pipes for stdin/stdout/stderr), answers with its pid,
 * then passes each pipe back over the channel (SCM_RIGHTS; its own copies close once sockcat has
 * them) and finally the exit status. sockcat reads and writes the pipes itself: no byte goes
 * through the spawner. Signals go straight from sockcat to the child's process group.
 *
 * Children die with sockcat: when sockcat goes, however it goes (SIGKILL included), the kernel
 * closes its end of the channel; the spawner sees the disconnect, SIGKILLs every child's process
 * group and exits. What can still escape: a process that left its group (setsid(), setpgid(),
 * i.e. a daemon) and was not itself killed; and everything if the spawner and sockcat are
 * SIGKILLed at the same instant (`kill -9` on both), as no one is left to clean up.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { Socket } from 'node:net';
import os from 'node:os';
import { isStandaloneBinary } from '../runtime/fdlimit';

/** Set in the spawner's environment: the standalone binary then runs spawnerMain, not the CLI. */
export const SPAWNER_ENV = 'SOCKCAT_SPAWNER';

/** What to start: the same fields as a spawn() call. */
export interface SpawnRequest {
  file: string;
  args: string[];
  argv0?: string;
  env?: NodeJS.ProcessEnv;
  /** Whether the child gets a stderr pipe (else its stderr is /dev/null, e.g. merged by a trampoline). */
  stderr: boolean;
}

type ToSpawner = { t: 'spawn'; id: number; req: SpawnRequest };
type FromSpawner =
  | { t: 'spawned'; id: number; pid: number }
  | { t: 'fd'; id: number; fd: 0 | 1 | 2 }
  | { t: 'error'; id: number; code?: string; errno?: number; syscall?: string; message: string }
  | { t: 'exit'; id: number; code: number | null; signal: NodeJS.Signals | null };

/**
 * The spawner process' whole program. Self-contained (no imports, no closures over this module):
 * it runs from its source text with `node -e` when sockcat runs as a script, and is called by
 * the CLI's entry when the standalone binary is started with SPAWNER_ENV.
 */
export function spawnerMain(): void {
  // Not require(): bundlers rewrite it, and this function's text must run on its own.
  const cp = (process as unknown as { getBuiltinModule(id: string): unknown }).getBuiltinModule('node:child_process') as typeof import('node:child_process');
  const live = new Map<number, number>(); // request id → child pid
  const send = (msg: unknown, handle?: unknown) => {
    // A send that fails means sockcat is gone: the 'disconnect' below does the cleanup.
    if (process.connected) process.send!(msg, handle as never, { keepOpen: false } as never, () => {});
  };
  const killAll = () => {
    for (const pid of live.values()) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // The group is already gone.
      }
    }
  };
  process.on('disconnect', () => {
    killAll();
    process.exit(0);
  });
  // A terminal's Ctrl-C or a group signal is for sockcat, which stops its children itself: the
  // spawner must stay until sockcat is done with it.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => {});
  process.on('message', (msg: { t: string; id: number; req: SpawnRequest }) => {
    if (msg.t !== 'spawn') return;
    const { id, req } = msg;
    let child: ChildProcess;
    try {
      child = cp.spawn(req.file, req.args, {
        argv0: req.argv0,
        env: req.env,
        stdio: ['pipe', 'pipe', req.stderr ? 'pipe' : 'ignore'],
        detached: true,
      });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      return send({ t: 'error', id, code: e.code, errno: e.errno, syscall: e.syscall, message: e.message });
    }
    child.on('error', (err: NodeJS.ErrnoException) => {
      live.delete(id);
      send({ t: 'error', id, code: err.code, errno: err.errno, syscall: err.syscall, message: err.message });
    });
    if (child.pid === undefined) return; // the 'error' above follows
    live.set(id, child.pid);
    send({ t: 'spawned', id, pid: child.pid });
    for (const [fd, pipe] of [child.stdin, child.stdout, child.stderr].entries()) {
      if (!pipe) continue;
      // Node started reading the child's output pipes as it made them: stop, or what the child
      // writes before sockcat has the pipe would be read here and dropped.
      (pipe as unknown as { _handle?: { readStop?: () => void } })._handle?.readStop?.();
      send({ t: 'fd', id, fd }, pipe);
    }
    child.on('exit', (code, signal) => {
      live.delete(id);
      send({ t: 'exit', id, code, signal });
    });
  });
}

/**
 * A child started by the spawner, shaped like the parts of ChildProcess that ChildStream uses:
 * pid, stdin/stdout/stderr, and 'error', 'exit' (code, signal) and 'close' (after 'exit' and
 * once every pipe is closed).
 */
export class RemoteChild extends EventEmitter {
  pid: number | undefined;
  stdin: Socket | null = null;
  stdout: Socket | null = null;
  stderr: Socket | null = null;
  /** Set once the child has exited. */
  exitStatus: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** Set once it has exited and every pipe is closed ('close' was emitted). */
  closed = false;
  private openPipes = 0;

  constructor(readonly wantsStderr: boolean) {
    super();
  }

  /** Whether every pipe the child has has arrived. */
  get ready(): boolean {
    return this.stdin !== null && this.stdout !== null && (!this.wantsStderr || this.stderr !== null);
  }

  /** @internal */
  attach(fd: 0 | 1 | 2, socket: Socket): void {
    if (fd === 0) this.stdin = socket;
    else if (fd === 1) this.stdout = socket;
    else this.stderr = socket;
    this.openPipes++;
    socket.once('close', () => {
      this.openPipes--;
      this.maybeClose();
    });
  }

  /** @internal */
  markExited(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.exitStatus) return;
    this.exitStatus = { code, signal };
    this.emit('exit', code, signal);
    this.maybeClose();
  }

  private maybeClose(): void {
    if (this.exitStatus && this.openPipes === 0 && this.ready && !this.closed) {
      this.closed = true;
      this.emit('close');
    }
  }
}

interface Pending {
  child: RemoteChild;
  resolve: (child: RemoteChild) => void;
  reject: (err: Error) => void;
  settled: boolean;
}

/** sockcat's side: starts the spawner on first use and again if it dies. */
export class Spawner {
  private proc: ChildProcess | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  /** Starts `req`; resolves once the child runs and its pipes are here, rejects as spawn() would fail. */
  spawn(req: SpawnRequest): Promise<RemoteChild> {
    const proc = this.process();
    const id = this.nextId++;
    const child = new RemoteChild(req.stderr);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { child, resolve, reject, settled: false });
      proc.send({ t: 'spawn', id, req } satisfies ToSpawner);
    });
  }

  /** Stops the spawner (its children are the caller's to stop first). */
  close(): void {
    this.proc?.disconnect();
    this.proc = undefined;
  }

  private process(): ChildProcess {
    if (this.proc) return this.proc;
    const proc = startSpawnerProcess();
    proc.on('message', (msg: FromSpawner, handle?: Socket) => this.onMessage(msg, handle));
    proc.on('error', () => {});
    proc.once('exit', () => this.onSpawnerExit(proc));
    // The spawner must not keep sockcat's event loop alive on its own.
    proc.unref();
    (proc.channel as { unref?: () => void } | undefined)?.unref?.();
    this.proc = proc;
    return proc;
  }

  private onMessage(msg: FromSpawner, handle?: Socket): void {
    const p = this.pending.get(msg.id);
    if (!p) {
      handle?.destroy();
      return;
    }
    const { child } = p;
    switch (msg.t) {
      case 'spawned':
        child.pid = msg.pid;
        break;
      case 'fd':
        if (!handle) return;
        child.attach(msg.fd, handle);
        if (child.ready && !p.settled) {
          p.settled = true;
          p.resolve(child);
        }
        break;
      case 'error': {
        const err = Object.assign(new Error(msg.message), { code: msg.code, errno: msg.errno, syscall: msg.syscall });
        this.pending.delete(msg.id);
        if (!p.settled) {
          p.settled = true;
          p.reject(err);
        } else child.emit('error', err);
        break;
      }
      case 'exit':
        this.pending.delete(msg.id);
        if (!p.settled) {
          // Exited before all its pipes arrived (cannot happen: the fds are sent first).
          p.settled = true;
          p.reject(new Error('the child exited before its pipes were passed'));
        }
        child.markExited(msg.code, msg.signal);
        break;
    }
  }

  private onSpawnerExit(proc: ChildProcess): void {
    if (this.proc === proc) this.proc = undefined;
    // Children whose exit we will never hear of: say they are gone so their sessions end. Their
    // process groups were SIGKILLed by the spawner if it could; sockcat kills them again on close.
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      if (!p.settled) {
        p.settled = true;
        p.reject(new Error(`the spawner process ended (${proc.signalCode ?? `exit ${proc.exitCode}`})`));
      } else p.child.markExited(null, 'SIGKILL');
    }
  }
}

/** The spawner process: the binary itself with SPAWNER_ENV, or this Node running spawnerMain's source. */
function startSpawnerProcess(): ChildProcess {
  const env = { ...process.env, [SPAWNER_ENV]: '1' };
  const stdio = ['ignore', 'ignore', 'inherit', 'ipc'] as const;
  if (isStandaloneBinary()) return spawn(process.execPath, [], { env, stdio: [...stdio], serialization: 'json' });
  const source = `(${spawnerMain.toString()})()`;
  return spawn(process.execPath, ['--max-semi-space-size=1', '--max-old-space-size=64', '-e', source], { env, stdio: [...stdio], serialization: 'json' });
}

/**
 * Spawners taken in turn, one per CPU up to two: uv_spawn holds its process for the whole
 * fork + exec (about 1 ms here), so one spawner caps a server near a thousand children a second
 * whatever the cores; two fork on both. Each starts on first use (an idle one costs nothing).
 */
export class SpawnerPool {
  private readonly spawners: Spawner[];
  private next = 0;

  constructor(size: number) {
    this.spawners = Array.from({ length: Math.max(1, size) }, () => new Spawner());
  }

  spawn(req: SpawnRequest): Promise<RemoteChild> {
    const spawner = this.spawners[this.next];
    this.next = (this.next + 1) % this.spawners.length;
    return spawner.spawn(req);
  }

  close(): void {
    for (const s of this.spawners) s.close();
  }
}

let shared: SpawnerPool | undefined;

/** The spawners of this process. */
export function sharedSpawner(): SpawnerPool {
  return (shared ??= new SpawnerPool(Math.min(2, os.availableParallelism())));
}
