import { parseWorkers } from '../modes/forward-workers';
import { runForward, DEFAULT_FORWARD_CONNECT_TIMEOUT_MS, DEFAULT_FORWARD_DRAIN_TIMEOUT_MS } from '../modes/forward';
import { UsageError } from '../errors';
import type { ProxyVersion } from '../proxy-protocol';
import { addressFromArgs, commonFromArgs, listenerFromArgs, secondsOption, settleAddresses, withCommonOptions, withListenerOptions, withRelayOptions, withUdpIdle, examplesEpilog } from './options';
import type { CommandFactory } from './types';
import { viaFromArgs, withViaOption } from './via';

export const forwardCommand: CommandFactory = (env) => ({
  command: 'forward [listen] [target]',
  describe: 'Relay every client of LISTEN to TARGET, like socat TCP-LISTEN:p,fork TCP:host:p or ssh -L',
  builder: (y) =>
    withViaOption(withUdpIdle(withRelayOptions(withListenerOptions(withCommonOptions(y)))))
      .positional('listen', { type: 'string', describe: 'Where clients connect: PORT (127.0.0.1), HOST:PORT, [IPv6]:PORT or SCHEME:…' })
      .positional('target', { type: 'string', describe: 'Where each client is relayed: HOST:PORT, [IPv6]:PORT, PORT (127.0.0.1) or SCHEME:…' })
      .option('connect-timeout', {
        type: 'number',
        default: DEFAULT_FORWARD_CONNECT_TIMEOUT_MS / 1000,
        describe: 'Give up connecting to TARGET after SECS; the client is then reset',
      })
      .option('proxy-protocol', {
        choices: ['v1', 'v2'] as const,
        describe: "Send a PROXY protocol header (HAProxy's v1 text or v2 binary) to TARGET so it learns the client's address",
      })
      .option('drain-timeout', {
        type: 'number',
        default: DEFAULT_FORWARD_DRAIN_TIMEOUT_MS / 1000,
        describe: 'On SIGINT/SIGTERM, seconds live connections may take to finish before they are closed',
      })
      .option('workers', {
        type: 'string',
        default: '1',
        describe: 'Processes sharing the listening socket (1-64, or auto = one per CPU); each serves up to ceil(--max-conns / N) clients',
      })
      .epilog(
        examplesEpilog([
          ['$0 forward 0.0.0.0:4000 roucas101.etu:22', 'ssh -p 4000 to this machine reaches roucas101.etu:22'],
          ['$0 forward 8080 127.0.0.1:80 --allow 192.168.1.0/24 -v', 'only that network; one log line per connection'],
          ['$0 forward 0.0.0.0:443 127.0.0.1:8443 --proxy-protocol v2', 'the backend sees the real client address'],
          ['$0 forward 9000 127.0.0.1:9001 --max-conns 500 --idle-timeout 300', 'at most 500 clients, closed after 5 idle minutes'],
          ['$0 forward 0.0.0.0:8080 127.0.0.1:80 --workers auto', 'one relay process per CPU, for many clients at once'],
          ['$0 forward udp:127.0.0.1:5353 udp:9.9.9.9:53', 'a UDP relay: each client gets its own upstream socket'],
          ['$0 forward 4000 roucas101.etu:22 --via socks5h://ovh:1080 --via socks5h://sas1:1080', 'ssh -p 4000 localhost reaches roucas101.etu:22 two proxies away'],
        ]),
      ),
  handler: async (argv) => {
    const [listen, target] = settleAddresses(
      [
        { address: addressFromArgs(argv.listen, undefined, 'listen', 'LISTEN address'), role: 'listen', primary: true },
        { address: addressFromArgs(argv.target, undefined, 'connect', 'TARGET address'), role: 'connect', primary: false },
      ],
      argv,
      ['listen', 'connect'],
    );
    const connectTimeoutMs = secondsOption(argv.connectTimeout, '--connect-timeout');
    if (connectTimeoutMs === 0) throw new UsageError('--connect-timeout must be more than 0 seconds');
    const workers = parseWorkers(argv.workers);
    const code = await runForward(
      {
        listen,
        target,
        via: viaFromArgs(argv.via, target),
        connectTimeoutMs,
        closeWaitMs: secondsOption(argv.closeWait, '--close-wait'),
        idleTimeoutMs: secondsOption(argv.idleTimeout, '--idle-timeout'),
        proxyProtocol: argv.proxyProtocol as ProxyVersion | undefined,
        udpIdleMs: secondsOption(argv.udpIdle, '--udp-idle'),
        raiseFdLimit: true,
        workers,
        ...listenerFromArgs(argv),
        ...commonFromArgs(argv),
      },
      env.io,
    );
    env.setExitCode(code);
  },
});
