/**
 * `sockcat exec ADDR -- PROGRAM [ARGS…]` / `sockcat exec ADDR --sh 'SCRIPT'`: one child process
 * per client (socat's SYSTEM:…,fork, ncat's --exec/--sh-exec). The client's bytes go to the
 * child's stdin, the child's stdout goes to the client, through the shared relay.
 *
 * - The client's EOF closes the child's stdin; the child's remaining output still reaches the
 *   client, as long as the child is not silent for longer than --close-wait; the connection is
 *   over when the child's stdout ends.
 * - The child's stderr goes to the server's stderr, each line prefixed with the client
 *   ("[127.0.0.1:5555] …"), or to the client with --stderr.
 * - When the connection ends for any reason, the child's process group is stopped (SIGTERM, then
 *   SIGKILL): no child outlives its client, and none outlives the server.
 */
import type { Readable, Writable } from 'node:stream';
import type { Address, Connection } from '../endpoints/index';
import { ChildStream, type ChildCommand, type ChildExit } from '../endpoints/child';
import { eachLine } from '../each-line';
import { hexDumper } from '../hexdump';
import type { Logger } from '../log';
import { relay, DEFAULT_CLOSE_WAIT_MS } from '../relay';
import type { ConnectionSummary } from '../runtime/listener';
import { openServer, type ServerModeOptions } from '../runtime/server';
import type { ModeIO } from '../io';

/** Children running at once unless --max-children says otherwise. */
export const DEFAULT_MAX_CHILDREN = 100;

/** Descriptors per client: its socket and its child's stdin, stdout and stderr pipes. */
const FDS_PER_CLIENT = 4;

export interface ExecOptions extends ServerModeOptions {
  address: Address;
  /** What every connection runs, settled by the command (settleProgram in commands/exec.ts). */
  command: ChildCommand;
  /** Send the child's stderr to the client (merged with stdout) instead of the server's stderr. */
  stderrToClient?: boolean;
  /** Refuse clients while this many children run (default 100). */
  maxChildren?: number;
  /** After the client's EOF, ms the child may take to finish its output (default 2000). */
  closeWaitMs?: number;
  idleTimeoutMs?: number;
  /** Ms between SIGTERM and SIGKILL when a child is stopped (default 1000). */
  killGraceMs?: number;
  /** Environment the children start from (default process.env). */
  env?: NodeJS.ProcessEnv;
  hex?: boolean;
}

/** Runs the server until io.signal is aborted; resolves 0 once every child is gone. */
export async function runExec(opts: ExecOptions, io: ModeIO): Promise<number> {
  const { command } = opts;
  const server = await openServer(opts, io, { mode: 'exec', fdsPerClient: FDS_PER_CLIENT });
  if (server.role === 'done') return server.exitCode;
  const { logger, metrics } = server;
  const maxChildren = opts.maxChildren ?? DEFAULT_MAX_CHILDREN;
  // A plain copy, made once: reading process.env goes through a native getter per key.
  const baseEnv = { ...(opts.env ?? process.env) };
  const children = new Set<ChildStream>();
  /** Children asked of the spawner and not started yet (they count against --max-children). */
  let starting = 0;
  const stderrLines = stderrRelay(io.stderr, logger);

  // Children lead their own process groups, so they would not die with us on their own: if the
  // process exits without a graceful stop (a second Ctrl-C), take them down first.
  const killAllNow = () => {
    for (const child of children) child.killNow();
  };
  process.on('exit', killAllNow);

  async function handle(conn: Connection, ctx: { id: number; signal: AbortSignal }): Promise<ConnectionSummary> {
    const who = conn.remote.label;
    if (children.size + starting >= maxChildren) {
      logger.warn('limit', `refused ${who}: ${maxChildren} children already running (--max-children)`, { client: who, reason: 'max-children', max_children: maxChildren });
      // Nothing was read or promised: a plain close tells the client to come back later.
      conn.stream.destroy();
      return { received: 0, sent: 0, reason: 'max-children' };
    }
    let child: ChildStream;
    starting++;
    try {
      child = await ChildStream.start(command, {
        env: childEnv(baseEnv, conn),
        stderr: opts.stderrToClient ? 'stdout' : 'pipe',
        killGraceMs: opts.killGraceMs,
      });
    } catch (err) {
      // The program could not be started (it vanished, too many processes or open files…).
      conn.stream.destroy();
      logger.error('spawn', `${who}: cannot start ${command.argv0}: ${(err as Error).message}`, { client: who });
      return { received: 0, sent: 0, reason: 'spawn-failed' };
    } finally {
      starting--;
    }
    children.add(child);
    metrics?.childSpawned();
    const stderrDone = child.stderr ? stderrLines.copy(child.stderr, who) : Promise.resolve();
    const r = await relay(conn.stream, child, {
      closeWait: opts.closeWaitMs ?? DEFAULT_CLOSE_WAIT_MS,
      idleTimeoutMs: opts.idleTimeoutMs,
      signal: ctx.signal,
      onData: opts.hex ? hexDumper(io.stderr, { a: `< ${who}`, b: `> ${who}` }) : undefined,
      onEof: (side) =>
        side === 'a'
          ? logger.halfClosed('client', `${who} closed its side (the program's stdin is closed)`, { client: who, id: ctx.id, pid: child.pid })
          : logger.halfClosed('program', `${command.argv0} (pid ${child.pid ?? '-'}) closed its stdout; shutting down our write side to ${who}`, { client: who, id: ctx.id, pid: child.pid }),
    });
    const exit = await child.exited;
    metrics?.childExited();
    await stderrDone;
    children.delete(child);
    if (exit.error) logger.error('spawn', `${who}: cannot start ${command.argv0}: ${exit.error.message}`, { client: who });
    return {
      received: r.aToB,
      sent: r.bToA,
      reason: r.reason,
      text: ` (pid ${exit.pid ?? '-'}, ${describeExit(exit)})`,
      fields: { pid: exit.pid, exit_code: exit.code, exit_signal: exit.signal },
    };
  }

  try {
    await server.serve({ handle });
  } finally {
    process.off('exit', killAllNow);
    stderrLines.close();
  }
  return 0;
}

/** The parent's environment plus who is on each end, as socat's SOCAT_PEERADDR and ncat's NCAT_REMOTE_ADDR. */
function childEnv(base: NodeJS.ProcessEnv, conn: Connection): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base, SOCKCAT_PEER_ADDR: conn.remote.address, SOCKCAT_LOCAL_ADDR: conn.local.address };
  if (conn.remote.port !== undefined) env.SOCKCAT_PEER_PORT = String(conn.remote.port);
  if (conn.local.port !== undefined) env.SOCKCAT_LOCAL_PORT = String(conn.local.port);
  return env;
}

/**
 * Copies children's stderr to the server's, one line at a time, each marked with its client.
 * When the server's stderr is full (a slow terminal or pipe), the children writing to it are
 * paused — their own stderr fills and they wait — and all resume on one shared 'drain'.
 */
function stderrRelay(out: Writable, logger: Logger) {
  const paused = new Set<() => void>();
  const onDrain = () => {
    for (const resume of paused) resume();
    paused.clear();
  };
  out.on('drain', onDrain);
  return {
    copy(stderr: Readable, who: string): Promise<void> {
      const lines = eachLine(stderr, {
        onLine: (line) => {
          if (logger.format === 'json') return logger.event('stderr', line, { client: who, line });
          if (out.write(`[${who}] ${line}\n`)) return true;
          paused.add(lines.resume);
          return false;
        },
      });
      return lines.done.finally(() => paused.delete(lines.resume));
    },
    close: () => out.off('drain', onDrain),
  };
}

/** "exit 0", "killed by SIGTERM", "not started". */
function describeExit(exit: ChildExit): string {
  if (exit.error) return 'not started';
  if (exit.signal) return `killed by ${exit.signal}`;
  return `exit ${exit.code}`;
}
