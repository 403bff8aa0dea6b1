import { runExec, DEFAULT_MAX_CHILDREN } from '../modes/exec';
import { DEFAULT_CLOSE_WAIT_MS } from '../relay';
import { addressFromArgs, commonFromArgs, countOption, listenerFromArgs, secondsOption, settleAddresses, withCommonOptions, withListenerOptions, withRelayOptions, examplesEpilog } from './options';
import type { CommandFactory } from './types';
import { UsageError } from '../errors';
import type { ChildCommand } from '../endpoints/child';
import { resolveProgram, resolveShell } from '../endpoints/program';

/** `sockcat exec ADDRESS -- PROGRAM [ARGS…]` / `--sh SCRIPT`: flags, help and examples; the work is runExec's. */
export const execCommand: CommandFactory = (env) => ({
  command: 'exec [address] [program..]',
  describe: "Run a program for each client, like socat TCP-LISTEN:…,fork SYSTEM:… or ncat -lk --sh-exec: client ⇄ the program's stdin/stdout",
  builder: (y) =>
    withRelayOptions(withListenerOptions(withCommonOptions(y, ['listen'], ['stream'])))
      // Everything after -- is the program's, verbatim: no option parsing, no number conversion.
      .parserConfiguration({ 'populate--': true, 'parse-positional-numbers': false })
      .positional('address', { type: 'string', describe: 'PORT, HOST:PORT, [IPv6]:PORT or SCHEME:… (binds 127.0.0.1 unless a host is given)' })
      .positional('program', { type: 'string', array: true, describe: 'PROGRAM [ARGS…] to run for each client, best after -- ; run without a shell, found in PATH at start-up' })
      .option('sh', { type: 'string', describe: "Run SCRIPT with /bin/sh -c for each client (pipes, loops, redirections)" })
      .option('stderr', { type: 'boolean', default: false, describe: "Send the program's stderr to the client too (default: to sockcat's stderr, each line prefixed with [client])" })
      .option('max-children', { type: 'number', default: DEFAULT_MAX_CHILDREN, describe: 'Refuse new clients (with a log line) while this many programs are running' })
      .epilog(
        examplesEpilog([
          ['$0 exec 9090 -- cat', 'an echo server: one cat per client'],
          [`$0 exec 9090 --sh 'while read M; do echo "le serveur répond : $M"; done'`, 'the classroom shell server (socat … system:…)'],
          ['$0 exec 8080 -- examples/web.sh', 'a web server written in shell; try: curl http://127.0.0.1:8080/'],
          ['$0 exec 0.0.0.0:9090 --max-children 20 --stderr -- ./server.py', 'reachable from the network, at most 20 at once, errors to the client'],
        ],
        [
          `Each client gets its own process, its stdin/stdout joined to the connection. When the client sends EOF, the program's stdin is closed and its remaining output still reaches the client; if it stays silent for --close-wait seconds (default ${DEFAULT_CLOSE_WAIT_MS / 1000}) it is stopped. When the client goes away, the process group of its program gets SIGTERM, then SIGKILL 1 s later.`,
          'The program finds SOCKCAT_PEER_ADDR, SOCKCAT_PEER_PORT, SOCKCAT_LOCAL_ADDR and SOCKCAT_LOCAL_PORT in its environment.',
        ].join('\n')),
      ),
  handler: async (argv) => {
    const program = [...((argv.program as string[] | undefined) ?? []), ...((argv['--'] as string[] | undefined) ?? [])].map(String);
    const command = settleProgram(program, argv.sh as string | undefined);
    const code = await runExec(
      {
        address: settleAddresses([{ address: addressFromArgs(argv.address, undefined, 'listen'), role: 'listen', primary: true }], argv, ['listen'], ['stream'])[0],
        command,
        stderrToClient: argv.stderr,
        maxChildren: countOption(argv.maxChildren, '--max-children'),
        closeWaitMs: secondsOption(argv.closeWait, '--close-wait'),
        idleTimeoutMs: secondsOption(argv.idleTimeout, '--idle-timeout'),
        ...listenerFromArgs(argv),
        ...commonFromArgs(argv),
      },
      env.io,
    );
    env.setExitCode(code);
  },
});

/**
 * The command every connection runs, checked once before listening: the argv form
 * ([PROGRAM, ARGS…], run without a shell, PROGRAM found in PATH now) or the shell form (`--sh`:
 * /bin/sh -c SCRIPT). A missing or unknown program is a usage error.
 */
export function settleProgram(program: string[], script: string | undefined, env: NodeJS.ProcessEnv = process.env): ChildCommand {
  if (script !== undefined && program.length > 0) throw new UsageError('give either a program (after --) or --sh SCRIPT, not both');
  if (script !== undefined) {
    if (script.trim() === '') throw new UsageError("--sh needs a script, e.g. --sh 'echo hello'");
    return { file: resolveShell(), args: ['-c', script], argv0: 'sh' };
  }
  if (program.length === 0) throw new UsageError("missing program: sockcat exec ADDRESS -- PROGRAM [ARGS…], or --sh 'SCRIPT'");
  const [name, ...args] = program;
  return { file: resolveProgram(name, env), args, argv0: name };
}
