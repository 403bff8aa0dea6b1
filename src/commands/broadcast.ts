import { runBroadcast, DEFAULT_BROADCAST_MAX_CONNS } from '../modes/broadcast';
import { UsageError } from '../errors';
import { addressFromArgs, bytesOption, commonFromArgs, listenerFromArgs, secondsOption, withCommonOptions, withIdleTimeout, withListenerOptions, hideRefused, settleAddresses, examplesEpilog } from './options';
import type { CommandFactory } from './types';
import { CHAT_LANGUAGES, DEFAULT_CHAT_LANGUAGE } from '../broadcast/lang/index';

export const broadcastCommand: CommandFactory = (env) => ({
  command: 'broadcast [address] [port]',
  describe: 'A chat room ("echo à tous"): each line a client sends goes to all the others; --raw for a byte broker',
  builder: (y) =>
    hideRefused(withIdleTimeout(withListenerOptions(withCommonOptions(y, ['listen'], ['stream']))), ['hex'])
      .positional('address', { type: 'string', describe: 'PORT, HOST:PORT, [IPv6]:PORT or SCHEME:… (binds 127.0.0.1 unless a host is given)' })
      .positional('port', { type: 'string', describe: 'PORT, when the host is given on its own (broadcast 0.0.0.0 9090)' })
      .option('max-conns', { type: 'number', describe: `Refuse new clients while this many are connected (default ${DEFAULT_BROADCAST_MAX_CONNS})` })
      .option('raw', { type: 'boolean', default: false, describe: 'Broker mode: bytes go verbatim to every other client (and to stdout); no names, no announcements' })
      .option('echo-self', { type: 'boolean', default: false, describe: "Also send a client's messages back to it" })
      .option('max-queue', { type: 'string', describe: "Cap on each client's outgoing queue (bytes; K, M suffixes; default 1M): past it the client is disconnected, or with --drop its messages are dropped" })
      .option('drop', { type: 'boolean', default: false, describe: 'Drop messages for a client past --max-queue (it is told how many) instead of disconnecting it' })
      .option('lang', { choices: Object.keys(CHAT_LANGUAGES), describe: `Language of the room's notices (joined, left, welcome, /help…): ${Object.keys(CHAT_LANGUAGES).join(' or ')} (default ${DEFAULT_CHAT_LANGUAGE}; fr: "X est connecté")` })
      .option('names', { choices: ['user', 'peer'] as const, describe: 'Name newcomers user1, user2… (user, the default) or by their address (peer: 127.0.0.1:51234), to see who is who' })
      .option('max-line', { type: 'string', describe: 'Longest line in line mode (bytes; default 4096): longer lines are cut and the sender is told' })
      .epilog(
        examplesEpilog([
          ['$0 broadcast 9090', 'a chat on 127.0.0.1:9090; clients join with nc 127.0.0.1 9090'],
          ['$0 broadcast 0.0.0.0:9090 --allow 192.168.1.0/24', 'a classroom chat reachable from the local network'],
          ['$0 broadcast --lang fr --names peer 9090', 'the course\'s "echo à tous": "127.0.0.1:51234 est connecté"'],
          ['$0 broadcast --raw 9090', 'a byte broker, like ncat --broker, that never waits on a stuck client'],
          ['$0 broadcast --drop --max-queue 256K 9090', 'slow readers miss messages instead of being disconnected'],
        ]),
      ),
  handler: async (argv) => {
    const [address] = settleAddresses([{ address: addressFromArgs(argv.address, argv.port, 'listen'), role: 'listen', primary: true }], argv, ['listen'], ['stream']);
    if (argv.raw && argv.maxLine !== undefined) throw new UsageError('--max-line applies to line mode; --raw passes bytes as they come');
    // --raw has no notices and no names: the flags would silently do nothing.
    if (argv.raw && (argv.lang !== undefined || argv.names !== undefined)) throw new UsageError('--lang and --names apply to line mode; --raw has no names and no notices');
    if (argv.hex) throw new UsageError('--hex is not available in broadcast (the room log on stdout shows every message)');
    const code = await runBroadcast(
      {
        address,
        raw: argv.raw,
        echoSelf: argv.echoSelf,
        maxQueue: bytesOption(argv.maxQueue, '--max-queue', 1024),
        drop: argv.drop,
        maxLine: bytesOption(argv.maxLine, '--max-line', 1),
        lang: argv.lang,
        names: argv.names,
        idleTimeoutMs: secondsOption(argv.idleTimeout, '--idle-timeout'),
        ...listenerFromArgs(argv),
        ...commonFromArgs(argv),
      },
      env.io,
    );
    env.setExitCode(code);
  },
});
