/**
 * Runs the real CLI (the bundled dist/sockcat.cjs on the pinned Node that the standalone binary
 * embeds, with the binary's V8 flags; or $SOCKCAT_BIN, e.g. the standalone binary itself) as a
 * child process, the way a user does.
 */
import { afterEach } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { NODE_FLAGS, PINNED_NODE } from '../../scripts/runtime.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
export const CLI_PATH = `${root}dist/sockcat.cjs`;

/** Command and leading arguments that start sockcat. */
export function sockcatCommand(): [string, string[]] {
  const bin = process.env.SOCKCAT_BIN;
  return bin ? [bin, []] : [PINNED_NODE, [...NODE_FLAGS, CLI_PATH]];
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

export interface RunningCli {
  child: ChildProcess;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Everything written to stdout so far. */
  stdout(): Buffer;
  /** Resolves with the first match of `re` in stderr (rejects after timeoutMs). */
  waitForStderr(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Waits for "listening on HOST:PORT" (needs -v) and returns the port. */
  listeningPort(timeoutMs?: number): Promise<number>;
  /** Resolves when the process exits. */
  exited: Promise<CliResult>;
  /** Sends a signal if still running. */
  kill(signal?: NodeJS.Signals): void;
}

/** Starts sockcat with `args`. stdin stays open (a pipe) unless `stdin` is given, which is written then closed. */
export function startCli(
  args: string[],
  opts: { stdin?: string | Buffer | null; env?: NodeJS.ProcessEnv; cwd?: string; /** Run this instead of sockcat (e.g. a shell that execs it). */ command?: [string, string[]] } = {},
): RunningCli {
  const [cmd, pre] = opts.command ?? sockcatCommand();
  const child = spawn(cmd, [...pre, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...opts.env }, cwd: opts.cwd });
  const out: Buffer[] = [];
  let err = '';
  const waiters = new Set<() => void>();
  child.stdout!.on('data', (c: Buffer) => out.push(c));
  child.stderr!.on('data', (c: Buffer) => {
    err += c.toString();
    for (const w of waiters) w();
  });
  child.stdin!.on('error', () => {});
  if (opts.stdin !== undefined) {
    if (opts.stdin === null) child.stdin!.end();
    else child.stdin!.end(opts.stdin);
  }
  const exited = new Promise<CliResult>((resolve) => {
    child.on('close', (code, signal) => {
      for (const w of waiters) w();
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: err });
    });
  });
  let done = false;
  void exited.then(() => (done = true));
  const waitForStderr = (re: RegExp, timeoutMs = 10_000) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        const m = err.match(re);
        if (m) {
          cleanup();
          resolve(m);
        } else if (done) {
          cleanup();
          reject(new Error(`sockcat exited before printing ${re}; stderr: ${err}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out waiting for ${re}; stderr so far: ${err}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });
  return {
    child,
    stderr: () => err,
    stdout: () => Buffer.concat(out),
    waitForStderr,
    listeningPort: async (timeoutMs) => Number((await waitForStderr(/listening on .*:(\d+)/, timeoutMs))[1]),
    exited,
    kill: (signal = 'SIGTERM') => {
      if (!done) child.kill(signal);
    },
  };
}

/** Runs sockcat to completion (killed after timeoutMs). */
export async function runCli(args: string[], opts: { stdin?: string | Buffer | null; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  const running = startCli(args, { stdin: opts.stdin === undefined ? null : opts.stdin, env: opts.env });
  const timer = setTimeout(() => running.kill('SIGKILL'), opts.timeoutMs ?? 15_000);
  const result = await running.exited;
  clearTimeout(timer);
  return result;
}

/**
 * A startCli for one test file: every sockcat it starts is SIGKILLed (and awaited) after each
 * test, so a failing test leaves no server behind.
 */
export function cliStartedPerTest(): (args: string[], opts?: Parameters<typeof startCli>[1]) => RunningCli {
  const started: RunningCli[] = [];
  afterEach(async () => {
    for (const p of started.splice(0)) {
      p.kill('SIGKILL');
      await p.exited;
    }
  });
  return (args, opts = {}) => {
    const p = startCli(args, opts);
    started.push(p);
    return p;
  };
}

/** stderr without the time every log line starts with ("sockcat: 21:04:05.123 x" → "sockcat: x"), for tests about the words. */
export function untimed(stderr: string): string {
  return stderr.replace(/^sockcat: \d\d:\d\d:\d\d\.\d{3} /gm, 'sockcat: ');
}
