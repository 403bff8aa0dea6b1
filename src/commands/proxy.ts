import { runProxy, DEFAULT_PROXY_CONNECT_TIMEOUT_MS, DEFAULT_PROXY_PORT } from '../modes/proxy';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS } from '../proxy/handler';
import { viaFromArgs } from './via';
import { settleWorkers } from '../runtime/workers';
import { UsageError } from '../errors';
import type { Address } from '../endpoints/index';
import { formatAddress, isLoopbackHost } from '../endpoints/index';
import { addressFromArgs, commonFromArgs, listenerFromArgs, listOption, secondsOption, settleAddresses, withCommonOptions, withListenerOptions, withRelayOptions, hideRefused, examplesEpilog } from './options';
import type { CommandFactory } from './types';

/** A repeatable flag whose values may contain commas (passwords, URLs): never split. */
export function repeated(value: unknown): string[] {
  if (value === undefined) return [];
  return ([] as unknown[]).concat(value).map(String).filter((v) => v !== '');
}

/**
 * An open proxy on a network address lets anyone use this machine's address (spam, scans,
 * reaching what only it can reach): refuse to start one unless the user asked for it.
 */
export function checkOpenProxy(listen: Address, guarded: boolean, open: boolean): void {
  if (guarded || open || listen.scheme === 'unix') return;
  const host = (listen as { host?: string }).host;
  if (host === undefined || isLoopbackHost(host)) return;
  throw new UsageError(
    `refusing to run an open proxy on ${formatAddress(listen)}: anyone who reaches it could use it; add --auth USER:PASS (or --auth-file), --allow CIDR (or --allow-file) for the clients you trust, or --open to run an open proxy on purpose`,
  );
}

export const proxyCommand: CommandFactory = (env) => ({
  command: 'proxy [listen]',
  describe: 'SOCKS5/SOCKS4/HTTP proxy on one port, with internal names (--map) and proxy chains (--via)',
  builder: (y) =>
    hideRefused(withRelayOptions(withListenerOptions(withCommonOptions(y, ['listen']))), ['udp', 'hex', 'unix-mode'])
      .positional('listen', { type: 'string', describe: `Where clients connect: PORT, HOST:PORT, [IPv6]:PORT or tls:… (default 127.0.0.1:${DEFAULT_PROXY_PORT})` })
      .option('auth', { type: 'string', describe: 'Require this login, USER:PASS (repeatable): SOCKS5 username/password and HTTP Proxy-Authorization: Basic' })
      .option('auth-file', { type: 'string', describe: 'File of logins, one user:password a line (# comment lines); re-read when it changes' })
      .option('map', { type: 'string', describe: 'Internal name: NAME=HOST:PORT, NAME=HOST (port kept) or *.suffix=HOST (repeatable); never looked up in DNS' })
      .option('map-file', { type: 'string', describe: 'File of NAME=HOST[:PORT] lines (# comments); re-read when it changes' })
      .option('only-mapped', { type: 'boolean', default: false, describe: 'Refuse every destination that is not a mapped name (ShimmerCat without -w)' })
      .option('allow-dest', { type: 'string', describe: 'Only let clients reach this CIDR, address, name or *.suffix (repeatable; checked after DNS too)' })
      .option('deny-dest', { type: 'string', describe: 'Refuse this CIDR, address, name or *.suffix as a destination (repeatable; deny wins; checked after DNS too)' })
      .option('open', { type: 'boolean', default: false, describe: 'Run without --auth or --allow on a non-loopback address (an open proxy, on purpose)' })
      .option('via', { type: 'string', describe: 'Send every upstream through this proxy: socks5://, socks5h://, socks5+tls://, http://, https:// [USER:PASS@]HOST:PORT (repeatable, in order)' })
      .option('connect-timeout', { type: 'number', default: DEFAULT_PROXY_CONNECT_TIMEOUT_MS / 1000, describe: 'Give up connecting to a destination after SECS (the client gets "TTL expired" / 504)' })
      .option('workers', {
        type: 'string',
        default: '1',
        describe: 'Processes listening on the port (1-64, or auto = one per CPU), each with its own socket; each serves up to ceil(--max-conns / N) clients',
      })
      .option('handshake-timeout', { type: 'number', default: DEFAULT_HANDSHAKE_TIMEOUT_MS / 1000, describe: 'A client must finish its SOCKS handshake or send its HTTP request within SECS' })
      .epilog(
        examplesEpilog(
          [
            ['$0 proxy --map app.test=127.0.0.1:8000', 'http://app.test/ in a browser using socks5://127.0.0.1:1080 reaches 127.0.0.1:8000'],
            ['$0 proxy --map "*.test=127.0.0.1" --only-mapped', 'every NAME.test goes to this machine (same port); nothing else goes out'],
            ['curl --socks5-hostname 127.0.0.1:1080 http://app.test/', 'a client through it (curl -x http://127.0.0.1:1080 … works too: same port)'],
            ['$0 proxy 0.0.0.0:1080 --auth alice:s3cret', 'on the network, with a login'],
            ['$0 proxy 0.0.0.0:1080 --allow 10.0.0.0/8 --map kibana=10.1.2.3:5601 --deny-dest 169.254.0.0/16', 'internal tools by name for the office network'],
            ['$0 proxy 1080 --via socks5h://bastion:1080', 'every upstream goes through another proxy'],
            ['$0 proxy 0.0.0.0:1080 --auth-file users.txt --workers auto', 'one proxy process per CPU, for many clients at once'],
          ],
          'Clients: SOCKS5 (CONNECT, UDP ASSOCIATE), SOCKS4/4a, HTTP CONNECT and http:// forwarding, all on the same port.',
        ),
      ),
  handler: async (argv) => {
    const listenText = argv.listen === undefined || argv.listen === '' ? String(DEFAULT_PROXY_PORT) : String(argv.listen);
    if (argv.hex) throw new UsageError('--hex is not available in proxy mode (use -v or --log-format json for one line per tunnel)');
    if (argv.udp) throw new UsageError('-u does not apply to proxy: SOCKS5 clients get UDP through UDP ASSOCIATE on the TCP port');
    const [listen] = settleAddresses([{ address: addressFromArgs(listenText, undefined, 'listen', 'LISTEN address'), role: 'listen', primary: true }], argv, ['listen']);
    if (listen.scheme !== 'tcp' && listen.scheme !== 'tls' && listen.scheme !== 'unix') throw new UsageError(`proxy listens on TCP, TLS or unix: addresses, not ${listen.scheme}:`);
    const listener = listenerFromArgs(argv);
    const auth = { users: repeated(argv.auth), file: argv.authFile === undefined ? undefined : String(argv.authFile) };
    const guarded = auth.users.length > 0 || auth.file !== undefined || (listener.access?.allow?.length ?? 0) > 0 || listener.access?.allowFile !== undefined;
    checkOpenProxy(listen, guarded, argv.open === true);
    const connectTimeoutMs = secondsOption(argv.connectTimeout, '--connect-timeout')!;
    if (connectTimeoutMs === 0) throw new UsageError('--connect-timeout must be more than 0 seconds');
    const handshakeTimeoutMs = secondsOption(argv.handshakeTimeout, '--handshake-timeout')!;
    if (handshakeTimeoutMs === 0) throw new UsageError('--handshake-timeout must be more than 0 seconds');
    const workers = settleWorkers(argv);
    const code = await runProxy(
      {
        listen,
        workers,
        auth,
        map: { entries: repeated(argv.map), file: argv.mapFile === undefined ? undefined : String(argv.mapFile) },
        onlyMapped: argv.onlyMapped === true,
        allowDest: listOption(argv.allowDest, '--allow-dest'),
        denyDest: listOption(argv.denyDest, '--deny-dest'),
        via: viaFromArgs(argv.via),
        connectTimeoutMs,
        handshakeTimeoutMs,
        closeWaitMs: secondsOption(argv.closeWait, '--close-wait')!,
        idleTimeoutMs: secondsOption(argv.idleTimeout, '--idle-timeout'),
        raiseFdLimit: true,
        ...listener,
        ...commonFromArgs(argv),
      },
      env.io,
    );
    env.setExitCode(code);
  },
});
