/**
 * A child process as one duplex stream: what is written goes to the child's stdin, what the
 * child writes to its stdout is read. The relay joins it to a client socket like any other
 * stream (sockcat exec).
 *
 * - Half-close: ending the writable closes the child's stdin (the child reads EOF) while its
 *   output keeps flowing; the readable ends when the child's stdout ends — never on 'exit',
 *   which can come before the last bytes of stdout have been read.
 * - A child that stops reading (it exited, or closed its stdin) is not an error: what the client
 *   still sends is dropped, and the child's output is still delivered.
 * - The child runs in its own process group, so ending it also ends what it started
 *   (`sh -c 'a | b'`, background jobs): SIGTERM to the group, SIGKILL after a grace period.
 * - It is started by the spawner process (./spawner.ts), not by forking sockcat, and dies with
 *   sockcat even when sockcat is SIGKILLed.
 */
import { Duplex, type Readable, type Writable } from 'node:stream';
import { sharedSpawner, type RemoteChild } from './spawner';

/** What to run. `file` is an absolute path (see ./program.ts): no PATH search per connection. */
export interface ChildCommand {
  file: string;
  args: string[];
  /** argv[0] as the child sees it (the name the user typed). */
  argv0?: string;
}

export interface ChildOptions {
  env?: NodeJS.ProcessEnv;
  /**
   * Where the child's stderr goes: 'pipe' exposes it as `ChildStream.stderr`; 'stdout' makes it
   * the same pipe as stdout, so both arrive in the order the child wrote them.
   */
  stderr?: 'pipe' | 'stdout';
  /** Milliseconds between SIGTERM and SIGKILL (default 1000). */
  killGraceMs?: number;
}

/** How a child ended. */
export interface ChildExit {
  pid?: number;
  /** Exit status, when it exited by itself. */
  code: number | null;
  /** The signal that ended it, if one did. */
  signal: NodeJS.Signals | null;
  /** Set when the child could not be started at all. */
  error?: Error;
}

/** Between SIGTERM and SIGKILL: long enough for a program to clean up, short enough not to linger. */
export const DEFAULT_KILL_GRACE_MS = 1000;

/**
 * Runs `cmd` with stdin and stdout as one Duplex (allowHalfOpen). Destroying the stream ends the
 * child: at once if its stdout is still open, after a grace period if it has already finished
 * its output. `exited` resolves once the child and its process group are gone.
 */
export class ChildStream extends Duplex {
  readonly pid: number | undefined;
  /** The child's stderr when `stderr: 'pipe'`, else null. */
  readonly stderr: Readable | null;
  /** Resolves once the child has exited, its pipes are closed and no kill is pending. Never rejects. */
  readonly exited: Promise<ChildExit>;

  private readonly child: RemoteChild;
  private readonly stdin: Writable;
  private readonly stdout: Readable;
  private readonly killGraceMs: number;
  /** The child's stdin is closed or broken: input is dropped from now on. */
  private stdinGone = false;
  private outputEnded = false;
  private leaderExited = false;
  private pipesClosed = false;
  private terminating = false;
  private killTimer: NodeJS.Timeout | undefined;
  private pipeTimer: NodeJS.Timeout | undefined;
  private result: ChildExit;
  private settle!: (exit: ChildExit) => void;

  /**
   * Starts `cmd`; resolves once it runs, rejects (with spawn()'s error: ENOENT, EACCES, EAGAIN…)
   * when it could not be started.
   */
  static async start(cmd: ChildCommand, opts: ChildOptions = {}): Promise<ChildStream> {
    const merge = opts.stderr === 'stdout';
    // A shell trampoline gives the program one pipe for stdout and stderr (`exec "$@" 2>&1`):
    // the program itself still runs without a shell, with exactly its argv.
    const [file, args] = merge ? ['/bin/sh', ['-c', 'exec "$@" 2>&1', cmd.argv0 ?? cmd.file, cmd.file, ...cmd.args]] : [cmd.file, cmd.args];
    // The child leads its own process group (and session), so the whole group can be signalled,
    // and a terminal's Ctrl-C reaches sockcat only, which then stops its children itself.
    const child = await sharedSpawner().spawn({ file, args, argv0: merge ? undefined : cmd.argv0, env: opts.env, stderr: !merge });
    return new ChildStream(child, opts);
  }

  private constructor(child: RemoteChild, opts: ChildOptions) {
    super({ allowHalfOpen: true });
    this.killGraceMs = opts.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
    this.exited = new Promise((resolve) => (this.settle = resolve));
    this.child = child;
    this.pid = child.pid;
    this.result = { pid: this.pid, code: null, signal: null };
    this.stdin = child.stdin!;
    this.stdout = child.stdout!;
    this.stderr = child.stderr;

    this.child.on('error', this.childOnError);
    this.child.on('exit', this.childOnExit);
    this.child.on('close', this.childOnClose);
    this.stdin.on('error', this.stdinOnGone);
    this.stdin.on('close', this.stdinOnGone);
    this.stdout.on('data', this.stdoutOnData);
    this.stdout.on('end', this.stdoutOnEnd);
    this.stdout.on('error', this.stdoutOnError);
    // Nothing is read until the consumer asks (_read): backpressure from the first byte.
    this.stdout.pause();
    // The spawner's messages may have told of the exit (and pipes may have closed) before this
    // object existed: catch up on what was missed.
    if (this.stdin.destroyed) this.stdinGone = true;
    if (child.exitStatus) this.childOnExit(child.exitStatus.code, child.exitStatus.signal);
    if (child.closed) this.childOnClose();
  }

  override _read(): void {
    this.stdout.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.stdinGone) return cb();
    if (this.stdin.write(chunk)) return cb();
    // Wait for room in the pipe; a child that exits meanwhile closes it, which also frees us.
    const ready = () => {
      this.stdin.off('drain', ready);
      this.stdin.off('close', ready);
      cb();
    };
    this.stdin.on('drain', ready);
    this.stdin.on('close', ready);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.stdinGone) return cb();
    // Closing the pipe is how the child learns its input is over (it reads EOF).
    const done = () => {
      this.stdin.off('finish', done);
      this.stdin.off('close', done);
      cb();
    };
    this.stdin.on('finish', done);
    this.stdin.on('close', done);
    this.stdin.end();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.stdout.off('data', this.stdoutOnData);
    // Our ends of the pipes go: the child gets EOF on stdin and EPIPE if it still writes.
    this.stdin.destroy();
    this.stdout.destroy();
    // A child that has finished its output may exit by itself; one still talking is stopped now.
    this.terminate(this.outputEnded ? this.killGraceMs : 0);
    cb(err);
  }

  /**
   * Ends the child's process group: SIGTERM after `delayMs` (0: now) unless it has exited by
   * then, SIGKILL `killGraceMs` later if anything of the group is still there.
   */
  private terminate(delayMs: number): void {
    if (this.terminating || this.pid === undefined) return;
    this.terminating = true;
    if (this.leaderExited && !this.groupAlive()) return this.maybeSettle();
    if (delayMs > 0) this.killTimer = setTimeout(this.sendTerm, delayMs);
    else this.sendTerm();
  }

  private readonly sendTerm = () => {
    if (this.leaderExited && !this.groupAlive()) return this.clearKill();
    this.signalGroup('SIGTERM');
    this.killTimer = setTimeout(this.sendKill, this.killGraceMs);
  };

  private readonly sendKill = () => {
    this.signalGroup('SIGKILL');
    this.clearKill();
  };

  /** SIGKILL to the whole group now: for a process that is about to exit (see runExec). */
  killNow(): void {
    if (this.pid !== undefined && !(this.leaderExited && !this.groupAlive())) this.signalGroup('SIGKILL');
  }

  private signalGroup(signal: NodeJS.Signals): void {
    try {
      // A negative pid signals the process group the child leads.
      process.kill(-this.pid!, signal);
    } catch {
      // ESRCH: the group is already gone.
    }
  }

  /** Whether any process of the child's group is still alive (or an unreaped zombie). */
  private groupAlive(): boolean {
    try {
      process.kill(-this.pid!, 0);
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'EPERM';
    }
  }

  private clearKill(): void {
    if (this.killTimer) clearTimeout(this.killTimer);
    this.killTimer = undefined;
    this.maybeSettle();
  }

  private maybeSettle(): void {
    if (!this.leaderExited || this.killTimer !== undefined) return;
    if (this.pipesClosed) return this.settle(this.result);
    // The group is gone but a pipe is still open: held by a process that left the group
    // (a daemon that called setsid). Once we are ending the child, it must not keep us waiting.
    if (this.terminating && !this.pipeTimer) this.pipeTimer = setTimeout(this.closePipes, this.killGraceMs);
  }

  private readonly stdoutOnData = (chunk: Buffer) => {
    if (!this.push(chunk)) this.stdout.pause();
  };

  private readonly stdoutOnEnd = () => {
    this.outputEnded = true;
    this.push(null);
  };

  private readonly stdoutOnError = (err: Error) => {
    this.destroy(err);
  };

  private readonly stdinOnGone = () => {
    // EPIPE or a closed pipe: the child no longer reads. Not an error for the session.
    this.stdinGone = true;
  };

  private readonly childOnError = (err: Error) => {
    // Only a spawn failure lands here (EAGAIN, ENOMEM, the file vanished): no child ran.
    this.result = { ...this.result, error: err };
    this.leaderExited = true;
    this.pipesClosed = true;
    this.destroy(err);
    this.maybeSettle();
  };

  private readonly childOnExit = (code: number | null, signal: NodeJS.Signals | null) => {
    this.leaderExited = true;
    this.result = { ...this.result, code, signal };
    // The group may outlive its leader (background jobs): if we are already ending it, the
    // pending signals stay armed until the group is empty.
    if (this.killTimer && !this.groupAlive()) return this.clearKill();
    this.maybeSettle();
  };

  private readonly closePipes = () => {
    this.stderr?.destroy();
    this.stdout.destroy();
  };

  private readonly childOnClose = () => {
    this.pipesClosed = true;
    if (this.pipeTimer) clearTimeout(this.pipeTimer);
    this.maybeSettle();
  };
}
