import { addressKind } from '../endpoints/index';
import { runWait, DEFAULT_WAIT_TIMEOUT_MS, RETRY_INTERVAL_MS } from '../modes/wait';
import { UsageError } from '../errors';
import { addressFromArgs, secondsOption, examplesEpilog, settleAddresses, withFamilyOptions, withTransportOptions } from './options';
import type { CommandFactory } from './types';

/** `sockcat wait HOST:PORT`: flags, help and examples; the work is runWait's. */
export const waitCommand: CommandFactory = (env) => ({
  command: 'wait [address] [port]',
  describe: 'Wait until a server accepts connections (for scripts, like wait-on / wait-port): exit 0 ready, 1 timed out',
  builder: (y) =>
    // Of the transport flags, wait takes the client's TLS ones; the server-side ones are refused.
    withFamilyOptions(withTransportOptions(y, ['connect'], ['stream']))
      .positional('address', { type: 'string', describe: 'HOST:PORT, [IPv6]:PORT, PORT (127.0.0.1), tls:HOST:PORT or unix:/path' })
      .positional('port', { type: 'string', describe: 'PORT, when the host is given on its own (wait db.local 5432)' })
      .option('timeout', { alias: 't', type: 'number', describe: `Give up after SECS (default ${DEFAULT_WAIT_TIMEOUT_MS / 1000}; 0: wait forever)` })
      .option('expect', { type: 'string', describe: 'Ready only once the server sends a line containing TEXT (a banner, a prompt)' })
      .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: 'Say when it is ready, and each new reason it is not yet' })
      .option('log-format', { choices: ['text', 'json'] as const, default: 'text' as const, describe: 'Log lines for people (text) or one JSON object per event (json)' })
      .epilog(
        examplesEpilog(
          [
            ['$0 wait 127.0.0.1:5432 && psql …', 'run psql once the database accepts connections (30 s at most)'],
            ['$0 wait --timeout 120 db.local 5432', 'wait up to two minutes'],
            ["$0 wait --expect 'SSH-2.0' 127.0.0.1:22", 'ready once the SSH banner arrives, not just the connection'],
            ['$0 wait --tls --ca cert.pem localhost:8443', 'ready once the TLS handshake and the certificate check succeed'],
          ],
          `A new attempt starts ${RETRY_INTERVAL_MS} ms after each failure. On timeout, one line says what the last attempt saw\n(connection refused, host unreachable, no answer, certificate not trusted, banner not received).`,
        ),
      ),
  handler: async (argv) => {
    if (argv.cert !== undefined || argv.key !== undefined || argv.requireClientCert || argv.unixMode !== undefined) {
      throw new UsageError('--cert, --key, --require-client-cert and --unix-mode are for servers, and wait only connects');
    }
    if (argv.udp) throw new UsageError('wait works over TCP, TLS and unix sockets: UDP has no connection to wait for (try sockcat scan -u)');
    if (argv.expect === '') throw new UsageError('--expect needs some TEXT to look for');
    const parsed = addressFromArgs(argv.address, argv.port, 'connect');
    if (addressKind(parsed) === 'datagram') throw new UsageError('wait works over TCP, TLS and unix sockets: UDP has no connection to wait for (try sockcat scan -u)');
    const [address] = settleAddresses([{ address: parsed, role: 'connect', primary: true }], argv, ['connect'], ['stream']);
    const code = await runWait(
      {
        address,
        timeoutMs: secondsOption(argv.timeout, '--timeout'),
        expect: argv.expect,
        verbose: argv.verbose,
        logFormat: argv.logFormat,
      },
      env.io,
    );
    env.setExitCode(code);
  },
});
