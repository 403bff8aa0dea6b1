import { addressKind } from '../endpoints/index';
import { runConnect } from '../modes/connect';
import { DEFAULT_QUIT_AFTER_MS } from '../modes/udp-connect';
import { addressFromArgs, commonFromArgs, refuseTyped, secondsOption, settleAddresses, withCommonOptions, withIdleTimeout, examplesEpilog } from './options';
import type { CommandFactory } from './types';
import { UsageError } from '../errors';
import { withVia, withViaOption } from './via';

export const connectCommand: CommandFactory = (env) => ({
  command: 'connect [address] [port]',
  describe: 'Connect to a server, like nc HOST PORT: stdin → server, server → stdout',
  builder: (y) =>
    withViaOption(withIdleTimeout(withCommonOptions(y, ['connect'])))
      .positional('address', { type: 'string', describe: 'HOST:PORT, [IPv6]:PORT, PORT (127.0.0.1) or SCHEME:…' })
      .positional('port', { type: 'string', describe: 'PORT, when the host is given on its own (nc style: connect example.org 80)' })
      .option('wait', { alias: 'w', type: 'number', describe: 'Give up connecting after SECS' })
      .option('crlf', { alias: 'C', type: 'boolean', default: false, describe: 'Send LF from stdin as CRLF (HTTP, SMTP by hand)' })
      .option('quit-after', { type: 'number', describe: `UDP: after stdin EOF, wait SECS of silence for replies before quitting (default ${DEFAULT_QUIT_AFTER_MS / 1000})` })
      .option('shutdown', { type: 'boolean', default: true, describe: 'Shut down the write side on stdin EOF (--no-shutdown keeps it open)' })
      .epilog(
        examplesEpilog([
          ['$0 connect 127.0.0.1:9090', 'like nc 127.0.0.1 9090'],
          ['$0 connect tls:example.org:443', 'TLS client; the certificate and host name are verified'],
          ['$0 connect --ca cert.pem tls:localhost:8443', 'trust a self-signed certificate'],
          ['echo ping | $0 connect -u 127.0.0.1:9999', 'one UDP datagram; replies are awaited 1 s after EOF'],
          ["printf 'GET / HTTP/1.0\\r\\n\\r\\n' | $0 connect example.org 80", 'the reply arrives after our EOF'],
          ['$0 connect roucas101.etu:22 --via socks5h://ovh:1080 --via socks5h://sas1:1080', 'through two SOCKS proxies, first hop first; each hop resolves the next name'],
        ]),
      ),
  handler: async (argv) => {
    const [address] = settleAddresses([{ address: addressFromArgs(argv.address, argv.port, 'connect'), role: 'connect', primary: true }], argv, ['connect']);
    if (addressKind(address) === 'datagram') {
      // -w has no default, --shutdown defaults to true: argv says whether they were typed.
      const typed = [argv.wait !== undefined ? '--wait' : '', argv.shutdown === false ? '--no-shutdown' : ''].filter(Boolean);
      if (typed.length) throw new UsageError(`${typed.join(', ')}: for streams only; a UDP client has no connection to wait for and no write side to shut down (see --quit-after)`);
    } else {
      refuseTyped(env.args, ['quit-after'], 'to UDP (-u, udp:…): a stream client quits when the server closes');
    }
    const code = await runConnect(
      {
        address: withVia(address, argv.via),
        connectTimeoutMs: secondsOption(argv.wait, '--wait'),
        idleTimeoutMs: secondsOption(argv.idleTimeout, '--idle-timeout'),
        shutdown: argv.shutdown,
        crlf: argv.crlf,
        quitAfterMs: secondsOption(argv.quitAfter, '--quit-after'),
        ...commonFromArgs(argv),
      },
      env.io,
    );
    env.setExitCode(code);
  },
});
