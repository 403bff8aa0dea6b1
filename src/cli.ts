/**
 * The sockcat command line: a thin yargs layer. It parses, refuses impossible combinations,
 * runs one mode, and maps the outcome to an exit code: 0 ok, 1 network or runtime failure,
 * 2 usage error. Every failure is one line on stderr, never a stack trace (SOCKCAT_DEBUG=1 shows it).
 */
import yargs from 'yargs';
import { commands } from './commands/index';
import { listTransports } from './endpoints/index';
import { UsageError, NetError } from './errors';
import type { ModeIO } from './io';
import { clockTime, guardStream } from './log';
import { helpWidth, layoutHelp } from './commands/help-layout';
import { explainMissingMode } from './commands/habits';
import { startObservers } from './observers';
import { SPAWNER_ENV, spawnerMain } from './endpoints/spawner';
import { versionText } from './version';

const EPILOG = `Addresses: PORT (127.0.0.1), HOST:PORT, [IPv6]:PORT, or SCHEME:… with SCHEME one of
${listTransports()
  .map((t) => `  ${`${t.scheme}:`.padEnd(7)}${t.help}. e.g. ${t.example}`)
  .join('\n')}
Listeners bind 127.0.0.1 unless you name another address (0.0.0.0 or [::] for the network).
Exit codes: 0 ok, 1 network or runtime failure, 2 usage error.
Run 'sockcat MODE --help' for a mode's options and examples.`;

/** Parses `args` and runs the chosen mode; resolves with the exit code. */
export async function main(args: string[], io: ModeIO): Promise<number> {
  let exitCode = 0;
  const env = { io, args, setExitCode: (code: number) => (exitCode = code) };
  const parser = yargs(args)
    .scriptName('sockcat')
    .usage('sockcat <mode> [options] ADDRESS …\n\nOne tool for what nc, ncat, socat and ssh -L do.')
    .strict()
    .demandCommand(1, 'missing mode (listen, connect, …): see sockcat --help')
    .recommendCommands()
    .version(versionText())
    .help()
    .alias('h', 'help')
    // Unwrapped: layoutHelp wraps it at the terminal's width without cutting words.
    .wrap(null)
    .epilog(EPILOG)
    .exitProcess(false)
    .fail((msg, err) => {
      throw err ?? new UsageError(rewordYargs(msg, args));
    });
  const modules = commands.map((factory) => factory(env));
  for (const m of modules) parser.command(m);
  // --trace, --progress and --stats watch the sockets themselves (src/observers.ts), not the
  // modes: set up once here, before the mode runs, with the mode's stderr going through them.
  let stopObservers: (() => void) | undefined;
  parser
    .option('trace', { type: 'boolean', global: true, describe: 'Each step of every socket on stderr: resolve, bind/listen, SYN, established, bytes read/written, FIN, RST, close, with the ss state' })
    .option('progress', { type: 'boolean', global: true, describe: 'listen, connect: a pv-style status line on a terminal stderr (bytes, rate; % and ETA when stdin is a file)' })
    .option('stats', { type: 'boolean', global: true, describe: 'Bytes each way, duration and rate at exit; kill -USR1 PID prints them so far' })
    .middleware((argv) => {
      refuseStrayArguments(argv._, args);
      if (!argv.trace && !argv.progress && !argv.stats) return;
      const udp = argv.udp === true || Object.values(argv).some((v) => typeof v === 'string' && /^udp:/i.test(v));
      const observers = startObservers(
        { mode: String(argv._[0]), trace: argv.trace as boolean, progress: argv.progress as boolean, stats: argv.stats as boolean, logFormat: argv.logFormat === 'json' ? 'json' : 'text', udp },
        io,
      );
      env.io = observers.io;
      stopObservers = observers.stop;
    });
  try {
    const first = args[0];
    const names = modules.map((m) => String(m.command).split(' ')[0]);
    // No mode (nc's `-l -p 9090`, `127.0.0.1 9090`) or a mistyped one: say which was meant.
    if (first !== undefined && !names.includes(first) && !(first.startsWith('-') && args.some((a) => names.includes(a)))) explainMissingMode(args, names);
    // With a callback, yargs hands --help and --version text over instead of printing it.
    await parser.parseAsync(args, {}, (_err, _argv, output) => {
      // Completion candidates (one per line, "flag:description" for zsh) are for the shell, not a reader: never wrapped.
      const forShell = args.includes('--get-yargs-completions');
      if (output) io.stdout.write((forShell ? output : layoutHelp(output, helpWidth(io.stdout as { isTTY?: boolean; columns?: number }))) + '\n');
    });
    return exitCode;
  } catch (err) {
    return reportError(err, io);
  } finally {
    stopObservers?.();
  }
}

/**
 * Arguments yargs left over: those after `--` in a mode that runs no program (exec and the modes
 * that configure 'populate--' take theirs apart). Dropping them silently ran `listen 9000 -- junk`
 * as if `junk` were not there, and made `connect -- 127.0.0.1:1` say "missing address".
 */
function refuseStrayArguments(positionals: Array<string | number>, args: string[]): void {
  const [mode, ...stray] = positionals.map(String);
  if (stray.length === 0) return;
  const where = args.includes('--') ? ` after -- (only exec takes a program there; ${mode}'s own arguments go without --)` : ` for ${mode}`;
  throw new UsageError(`unexpected argument${stray.length > 1 ? 's' : ''} ${stray.map((a) => `'${a}'`).join(', ')}${where}`);
}

/** One line on stderr and the exit code for the error's kind. */
function reportError(err: unknown, io: ModeIO): number {
  const debug = process.env.SOCKCAT_DEBUG;
  if (err instanceof UsageError) {
    const hint = /--help/.test(err.message) ? '' : " (see 'sockcat --help')";
    io.stderr.write(`sockcat: ${lowerFirst(err.message)}${hint}\n`);
    return 2;
  }
  // A failure while running is a log line like the others (with the time); a usage error, said
  // before anything ran, is not.
  if (err instanceof NetError) {
    io.stderr.write(`sockcat: ${clockTime(new Date())} ${err.message}\n`);
    return 1;
  }
  const e = err as Error;
  io.stderr.write(`sockcat: ${clockTime(new Date())} ${e?.message ?? String(err)}\n`);
  if (debug && e?.stack) io.stderr.write(e.stack + '\n');
  return 1;
}

/** yargs' "Unknown argument: bogus" becomes "unknown option --bogus" when the user typed a flag. */
function rewordYargs(msg: string, args: string[]): string {
  // "Invalid values:\n  Argument: x, Given: "v3", Choices: "v1", "v2"" spans lines: make it one.
  const choice = /^Invalid values:\s*Argument: ([^,]+), Given: (.*?), Choices: (.*)$/s.exec(msg);
  if (choice) return `--${choice[1]} takes one of ${choice[3].replace(/"/g, '')}, not ${choice[2].replace(/"/g, "'")}`;
  const m = /^Unknown arguments?: (.*)$/.exec(msg);
  if (!m) return msg;
  // nc's -4/-6 where no IP socket is ours to choose (relay, expose): yargs took it for a number.
  // (expose -6 9000: -6 became LOCAL and 9000 the stray one.)
  const family = args.find((a) => a === '-4' || a === '-6');
  if (family) return `${family} (IPv${family[1]} only) is not an option of ${args[0]}: it applies to listen, connect, forward, exec, broadcast, proxy, scan and wait`;
  const names = m[1].split(', ').map((name) => {
    const flag = args.find((a) => a === `--${name}` || a.startsWith(`--${name}=`) || a === `-${name}`);
    return flag ? flag.split('=')[0] : `'${name}'`;
  });
  const flags = names.every((n) => n.startsWith('-'));
  const text = `${flags ? 'unknown option' : 'unexpected argument'}${names.length > 1 ? 's' : ''} ${names.join(', ')}`;
  // `sockcat exec 9090 ls -l`: the flag is the program's, which belongs after --.
  if (flags && args[0] === 'exec' && !args.includes('--')) return `${text}; the program and its arguments go after --, e.g. sockcat exec 9090 -- ls -l`;
  return text;
}

/** yargs says "Unknown argument: x"; our own messages are lower-case sentences. */
function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}

/** Plain words for a failed write to stdout ("no space left on device"), from the system error. */
function stdoutFailure(err: NodeJS.ErrnoException): string {
  const words: Record<string, string> = {
    ENOSPC: 'no space left on device',
    EDQUOT: 'disk quota exceeded',
    EFBIG: 'file too large',
    EIO: 'input/output error',
    EBADF: 'it is closed',
    EACCES: 'permission denied',
    EPERM: 'permission denied',
    EROFS: 'read-only file system',
  };
  return `writing to stdout: ${words[err.code ?? ''] ?? err.message}`;
}

/** Runs sockcat as the process: signals, stdout errors, the exit code. The entry point (bin.ts) calls it. */
export function runAsProgram(): void {
  // The standalone binary started again as exec's spawner (src/endpoints/spawner.ts).
  if (process.env[SPAWNER_ENV] === '1') return spawnerMain();
  const controller = new AbortController();
  let signals = 0;
  /** Set when stdout failed: whatever the mode returns, the run failed. */
  let forcedExit: number | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    // ^C on a terminal leaves the cursor after "^C": end the line so the shell prompt (or our
    // last message) starts on its own.
    if (sig === 'SIGINT' && signals === 1) {
      if (process.stderr.isTTY) process.stderr.write('\n');
      else if (process.stdout.isTTY) process.stdout.write('\n');
    }
    // First signal: stop gracefully (close listeners, end connections). Second: stop now.
    if (signals === 1) controller.abort(sig);
    else process.exit(sig === 'SIGINT' ? 130 : sig === 'SIGHUP' ? 129 : 143);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // A closed terminal stops us like Ctrl-C, so modes can end what they started (exec's children
  // run in their own sessions and would not get the hangup themselves).
  process.on('SIGHUP', onSignal);
  // A closed or full stderr (2>&1 | head -1, 2>/dev/full) must never take the process down: log
  // lines that cannot be written are dropped and counted (log.ts), and traffic goes on.
  guardStream(process.stderr);
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    // A reader that goes away (sockcat … | head -1) is not an error worth a stack trace.
    if (err.code === 'EPIPE') process.exit(0);
    // Anything else (a full disk, /dev/full, an I/O error) loses data: say so once, stop every
    // session (their connections are reset: the peer must not believe all was delivered), exit 1.
    if (forcedExit !== undefined) return;
    forcedExit = 1;
    process.stderr.write(`sockcat: ${clockTime(new Date())} ${stdoutFailure(err)}\n`);
    controller.abort('stdout');
  });
  // stdin is made on first use: creating it loads fs streams (and readline for a terminal), a
  // start-up cost for the modes that never read it.
  const io: ModeIO = {
    get stdin() {
      return process.stdin;
    },
    stdout: process.stdout,
    stderr: process.stderr,
    signal: controller.signal,
  };
  const exit = (code: number) => process.exit(forcedExit ?? code);
  main(process.argv.slice(2), io).then(
    (code) => {
      // Flush stdout before leaving; stdin may still hold the event loop open.
      if (process.stdout.destroyed) exit(code);
      else process.stdout.write('', () => exit(code));
    },
    (err) => exit(reportError(err, io)),
  );
}

