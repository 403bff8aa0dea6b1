import { addressKind } from '../endpoints/index';
import { runListen } from '../modes/listen';
import { UsageError } from '../errors';
import { execInsteadOfListen } from './habits';
import { addressFromArgs, addressText, bytesOption, commonFromArgs, refuseTyped, listenerFromArgs, secondsOption, settleAddresses, withCommonOptions, withIdleTimeout, withListenerOptions, withUdpIdle, examplesEpilog } from './options';
import { refuseForDatagrams } from '../runtime/listener';
import type { CommandFactory } from './types';

export const listenCommand: CommandFactory = (env) => ({
  command: 'listen [address] [port]',
  describe: 'Wait for clients, like nc -l (one client; -k many; --echo an echo server)',
  builder: (y) =>
    withUdpIdle(withIdleTimeout(withListenerOptions(withCommonOptions(y, ['listen']))))
      .positional('address', { type: 'string', describe: 'PORT, HOST:PORT, [IPv6]:PORT or SCHEME:… (binds 127.0.0.1 unless a host is given)' })
      .positional('port', { type: 'string', describe: 'PORT, when the host is given on its own (nc style: listen 0.0.0.0 9090)' })
      .option('port', { alias: 'p', type: 'string', describe: 'Port to listen on (nc style: -p 9090)' })
      // Students type `nc -l -p 9090` from habit: accept the -l rather than refuse the whole line.
      .option('l', { type: 'boolean', describe: 'Accepted for nc habits (nc -l -p 9090): listen already listens' })
      // nc/ncat's -e PROG and -c CMD: refused with the exec command to type (see execInsteadOfListen).
      .option('e', { alias: 'exec', type: 'string', hidden: true })
      .option('c', { alias: 'sh-exec', type: 'string', hidden: true })
      .option('keep-open', { alias: 'k', type: 'boolean', default: false, describe: 'Serve clients concurrently until stopped; stdin goes to every client' })
      .option('max-queue', { type: 'string', describe: "-k: cap on the stdin bytes queued for one client (K, M suffixes; default 1M): a client that does not read is disconnected past it" })
      .option('echo', { type: 'boolean', default: false, describe: 'Built-in echo server: send back whatever each client sends' })
      .option('crlf', { alias: 'C', type: 'boolean', default: false, describe: 'Send LF from stdin as CRLF' })
      .option('shutdown', { type: 'boolean', default: true, describe: 'Shut down the write side on stdin EOF (--no-shutdown keeps it open)' })
      .epilog(
        examplesEpilog([
          ['$0 listen 9090', 'one client on 127.0.0.1:9090, like nc -l 9090'],
          ['$0 listen -l -p 9090 127.0.0.1', 'the same, typed the nc way'],
          ['$0 listen -k 0.0.0.0:9090', 'many clients, reachable from the network'],
          ['$0 listen --echo 9090', 'echo server for the socket exercises'],
          ['$0 listen --tls --echo 8443', 'TLS echo server (ephemeral certificate; try openssl s_client -connect 127.0.0.1:8443)'],
          ['cat big.iso | $0 listen -k --max-queue 4M 9090', 'send a file to every client; one that stops reading is cut off past 4 MiB'],
          ['$0 listen -u -k 9999', 'UDP chat: every peer is tracked, stdin goes to all of them'],
          ['$0 listen --echo --unix-mode 0660 unix:/tmp/echo.sock', 'echo server on a unix socket'],
        ]),
      ),
  handler: async (argv) => {
    if (argv.e !== undefined || argv.c !== undefined) throw execInsteadOfListen(env.args, argv as { e?: string; c?: string; address?: string; port?: string }, addressText(argv.address, argv.port));
    const [address] = settleAddresses([{ address: addressFromArgs(argv.address, argv.port, 'listen'), role: 'listen', primary: true }], argv, ['listen']);
    if (addressKind(address) === 'datagram') {
      refuseTyped(env.args, ['drain-timeout'], 'to stream listeners (TCP, TLS, unix), not to UDP: there is no connection to drain');
      refuseForDatagrams(listenerFromArgs(argv));
      if (argv.shutdown === false) throw new UsageError('--no-shutdown applies to streams: UDP has no write side to shut down');
    } else {
      refuseTyped(env.args, ['udp-idle'], 'to UDP listeners (-u, udp:…), not to streams: use --idle-timeout');
    }
    if (argv.metrics !== undefined && !argv.keepOpen && !argv.echo) throw new UsageError('--metrics is for servers that keep running: add -k');
    if (argv.allowLink !== undefined && !argv.keepOpen && !argv.echo) throw new UsageError('--allow-link is for servers that keep running: add -k');
    // With or without -k: --echo wins, stdin is never read.
    if (argv.echo && argv.crlf) throw new UsageError('--crlf applies to stdin, which --echo does not read');
    if (argv.echo && argv.shutdown === false) throw new UsageError('--no-shutdown applies to stdin EOF, which --echo does not read: it ends its side when the client ends its own');
    if (argv.maxQueue !== undefined && (!argv.keepOpen || argv.echo || addressKind(address) === 'datagram')) {
      throw new UsageError('--max-queue caps the stdin queued for each client of listen -k over a stream (TCP, TLS, unix): not with --echo, -u or a single client');
    }
    const code = await runListen(
      {
        address,
        keepOpen: argv.keepOpen,
        echo: argv.echo,
        shutdown: argv.shutdown,
        crlf: argv.crlf,
        idleTimeoutMs: secondsOption(argv.idleTimeout, '--idle-timeout'),
        udpIdleMs: secondsOption(argv.udpIdle, '--udp-idle'),
        maxQueue: bytesOption(argv.maxQueue, '--max-queue', 1024),
        ...listenerFromArgs(argv),
        ...commonFromArgs(argv),
      },
      env.io,
    );
    env.setExitCode(code);
  },
});
