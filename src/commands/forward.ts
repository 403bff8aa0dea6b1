import { settleWorkers } from '../runtime/workers';
import { refuseForDatagrams } from '../runtime/listener';
import { addressKind, formatAddress } from '../endpoints/index';
import { loopToSelf } from '../self-target';
import { runForward, DEFAULT_FORWARD_CONNECT_TIMEOUT_MS, DEFAULT_FORWARD_DRAIN_TIMEOUT_MS } from '../modes/forward';
import { UsageError } from '../errors';
import type { ProxyVersion } from '../proxy-protocol';
import { addressFromArgs, addressText, commonFromArgs, refuseTyped, listenerFromArgs, secondsOption, settleAddresses, withCommonOptions, withListenerOptions, withRelayOptions, withUdpIdle, examplesEpilog } from './options';
import type { CommandFactory } from './types';
import { withVia, withViaOption } from './via';

/**
 * LISTEN and TARGET from forward's words, where a host and its port may be two words as in
 * connect: `4000 roucas101.etu 22`, `127.0.0.1 4000 roucas101.etu:22`, `0.0.0.0 4000 host 22`.
 */
export function forwardAddresses(words: unknown[]): [unknown, unknown] {
  const w = words.filter((x) => x !== undefined && x !== '').map(String);
  const isPort = (t: string | undefined) => t !== undefined && /^\d+$/.test(t);
  if (w.length <= 2) return [words[0], words[1]];
  if (w.length === 3 && isPort(w[2]) && !isPort(w[1])) return [w[0], addressText(w[1], w[2])];
  if (w.length === 3 && isPort(w[1]) && !isPort(w[0])) return [addressText(w[0], w[1]), w[2]];
  if (w.length === 4 && isPort(w[1]) && isPort(w[3])) return [addressText(w[0], w[1]), addressText(w[2], w[3])];
  throw new UsageError(`forward takes LISTEN and TARGET, each one word (4000, roucas101.etu:22) or a host and its port (roucas101.etu 22), not: ${w.join(' ')}`);
}

export const forwardCommand: CommandFactory = (env) => ({
  command: 'forward [listen] [target] [more..]',
  describe: 'Relay every client of LISTEN to TARGET, like socat TCP-LISTEN:p,fork TCP:host:p or ssh -L',
  builder: (y) =>
    withViaOption(withUdpIdle(withRelayOptions(withListenerOptions(withCommonOptions(y)))))
      .positional('listen', { type: 'string', describe: 'Where clients connect: PORT (127.0.0.1), HOST:PORT, [IPv6]:PORT or SCHEME:…' })
      .positional('target', { type: 'string', describe: 'Where each client is relayed: HOST:PORT, [IPv6]:PORT, PORT (127.0.0.1) or SCHEME:…' })
      .positional('more', { type: 'string', array: true, describe: 'A host and its port may also be two words, as connect takes them: forward 4000 roucas101.etu 22' })
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
    const [listenText, targetText] = forwardAddresses([argv.listen, argv.target, ...((argv.more as string[] | undefined) ?? [])]);
    const [listen, direct] = settleAddresses(
      [
        { address: addressFromArgs(listenText, undefined, 'listen', 'LISTEN address'), role: 'listen', primary: true },
        { address: addressFromArgs(targetText, undefined, 'connect', 'TARGET address'), role: 'connect', primary: false },
      ],
      argv,
      ['listen', 'connect'],
    );
    // --via first: it says in its own words that it reaches TCP targets only.
    const target = withVia(direct, argv.via);
    const listener = listenerFromArgs(argv);
    const workers = settleWorkers(argv);
    const datagrams = addressKind(listen) === 'datagram' || addressKind(target) === 'datagram';
    if (datagrams) {
      if (addressKind(listen) !== addressKind(target)) throw new UsageError(`forwarding UDP needs udp: on both sides (got ${formatAddress(listen)} → ${formatAddress(target)})`);
      // A UDP forward has no connection to time out, half-close or drain: its peers are forgotten after --udp-idle.
      refuseTyped(env.args, ['close-wait', 'idle-timeout', 'connect-timeout', 'drain-timeout'], 'to TCP (stream) forwards, not to UDP: a UDP peer is forgotten after --udp-idle SECS');
      if (argv.proxyProtocol !== undefined) throw new UsageError('--proxy-protocol applies to TCP streams, not to UDP');
      refuseForDatagrams(listener);
      // Datagrams of one client could land in any worker, each with its own upstream socket.
      if (workers > 1) throw new UsageError('--workers applies to TCP forwards, not to UDP');
    } else {
      refuseTyped(env.args, ['udp-idle'], 'to UDP forwards (udp:…), not to TCP: use --idle-timeout');
    }
    const connectTimeoutMs = secondsOption(argv.connectTimeout, '--connect-timeout');
    if (connectTimeoutMs === 0) throw new UsageError('--connect-timeout must be more than 0 seconds');
    // A TARGET that is LISTEN itself would make every client an endless chain of connections (through --via it is reached from the last proxy, wherever that is).
    const loop = argv.via === undefined ? await loopToSelf(listen, target) : undefined;
    if (loop) throw new UsageError(loop);
    const code = await runForward(
      {
        listen,
        target,
        connectTimeoutMs,
        closeWaitMs: secondsOption(argv.closeWait, '--close-wait'),
        idleTimeoutMs: secondsOption(argv.idleTimeout, '--idle-timeout'),
        proxyProtocol: argv.proxyProtocol as ProxyVersion | undefined,
        udpIdleMs: secondsOption(argv.udpIdle, '--udp-idle'),
        raiseFdLimit: true,
        workers,
        ...listener,
        ...commonFromArgs(argv),
      },
      env.io,
    );
    env.setExitCode(code);
  },
});
