import { runRelay } from '../modes/relay';
import { UsageError } from '../errors';
import { parseHostPort } from '../endpoints/address';
import { commonFromArgs, examplesEpilog, listenerFromArgs, readPemOption, withListenerOptions } from './options';
import { parsePortSet, readTokenFile, tokenFromFlag } from '../tunnel/tokens';
import type { CommandFactory } from './types';

export const relayCommand: CommandFactory = (env) => ({
  command: 'relay',
  describe: 'Run the public end of tunnels: agents (sockcat expose) behind NAT publish their services here, like bore server or frps',
  builder: (y) =>
    withListenerOptions(y)
      .option('control', { type: 'string', describe: 'Where agents connect: PORT, HOST:PORT (TLS unless --insecure), e.g. 0.0.0.0:7000' })
      .option('ports', { type: 'string', describe: 'Ports tunnels may use, LOW-HIGH[,…] (default: any ≥ 1024 an agent asks for, else one the system picks)' })
      .option('public-host', { type: 'string', default: '127.0.0.1', describe: 'Address the public listeners bind (0.0.0.0 to publish to the network)' })
      .option('token', { type: 'string', describe: 'The one agent token (≥ 16 characters); see --token-file for several agents' })
      .option('token-file', { type: 'string', describe: 'File of NAME TOKEN [PORTS] lines, one agent each (mode 600); re-read at every agent handshake' })
      .option('cert', { type: 'string', describe: 'Certificate PEM FILE of the control channel (default: an ephemeral one, fingerprint printed)' })
      .option('key', { type: 'string', describe: 'Private key PEM FILE for --cert' })
      .option('insecure', { type: 'boolean', describe: 'Plain-text control channel (agents need --insecure too); warned' })
      .option('http', { type: 'string', describe: 'Shared port for named tunnels, plain HTTP routed by Host: NAME.DOMAIN (needs --domain), e.g. 0.0.0.0:80' })
      .option('https', { type: 'string', describe: 'Shared port for named tunnels over TLS, routed by SNI (needs --domain and --cert/--key for *.DOMAIN), e.g. 0.0.0.0:443' })
      .option('domain', { type: 'string', describe: 'Parent domain of tunnel names (a wildcard DNS record *.DOMAIN points at the relay)' })
      .option('public-tls', { type: 'boolean', describe: "Tunnels' public ports speak TLS, terminated here with --cert/--key (MySocket's TLS sockets)" })
      .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: 'Log agents and public connections on stderr' })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'No start-up lines (listening on …): only warnings and errors' })
      .option('log-format', { choices: ['text', 'json'] as const, default: 'text' as const, describe: 'Log lines for people (text) or one JSON object per event (json)' })
      .epilog(
        examplesEpilog([
          ['$0 relay --control 0.0.0.0:7000 --token-file /etc/sockcat/tokens --public-host 0.0.0.0 --ports 20000-20100', 'public tunnels on ports 20000-20100; prints the fingerprint agents pin'],
          ['$0 relay --control 7000 --token "$(cat token)" -v', 'one agent, public ports on 127.0.0.1 (try it on one machine)'],
          ['$0 relay --control 0.0.0.0:7000 --cert relay.pem --key relay.key --token-file tokens', 'a certificate that survives restarts (agents keep their --fingerprint)'],
          ['$0 relay --control 0.0.0.0:7000 --token-file tokens --http 0.0.0.0:80 --domain tunnels.example.org', 'named tunnels: http://NAME.tunnels.example.org/ reaches the agent that registered NAME'],
          ['$0 relay --control 0.0.0.0:7000 --token-file tokens --https 0.0.0.0:443 --domain t.example.org --cert wild.pem --key wild.key', 'the same over HTTPS, routed by SNI (wild.pem covers *.t.example.org)'],
        ], 'Token file lines: NAME TOKEN [PORTS], e.g.\n  laptop 6f1c2a7e9b0d4e3f8a5c1b2d 20000-20009\nMake a token with: openssl rand -hex 16'),
      ),
  handler: async (argv) => {
    if (argv.control === undefined) throw new UsageError('missing --control ADDR: where agents connect (e.g. --control 0.0.0.0:7000)');
    const controlText = String(argv.control).replace(/^(tcp|tls):/, '');
    const control = parseHostPort(controlText, 'listen', String(argv.control));
    if (argv.token !== undefined && argv.tokenFile !== undefined) throw new UsageError('--token and --token-file contradict each other: give one');
    if (argv.token === undefined && argv.tokenFile === undefined) throw new UsageError('a relay needs --token T or --token-file FILE: a tunnel open to anyone is an open door');
    if (argv.token !== undefined) tokenFromFlag(String(argv.token));
    // Read once now, so a malformed file is a usage error at start rather than a refused agent later.
    if (argv.tokenFile !== undefined) readTokenFile(String(argv.tokenFile));
    if ((argv.cert === undefined) !== (argv.key === undefined)) throw new UsageError('--cert and --key go together (the certificate and its private key)');
    const publicTlsUse = argv.https !== undefined || argv.publicTls;
    if (argv.insecure && argv.cert !== undefined && !publicTlsUse) throw new UsageError('--insecure and --cert contradict each other: --insecure turns TLS off');
    if (publicTlsUse && argv.cert === undefined) throw new UsageError(`${argv.https !== undefined ? '--https' : '--public-tls'} needs --cert FILE --key FILE (for --https, a certificate for *.DOMAIN)`);
    if ((argv.http !== undefined || argv.https !== undefined) !== (argv.domain !== undefined)) {
      throw new UsageError(argv.domain === undefined ? '--http and --https route names under a domain: add --domain D (e.g. --domain tunnels.example.org)' : '--domain applies to --http or --https: add one of them');
    }
    const domain = argv.domain === undefined ? undefined : String(argv.domain).toLowerCase().replace(/\.$/, '');
    if (domain !== undefined && !/^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(domain)) throw new UsageError(`--domain takes a DNS name such as tunnels.example.org, not '${argv.domain}'`);
    const listener = listenerFromArgs(argv);
    // Stopping a relay resets its tunnels' clients at once (they would see a clean end otherwise).
    if (listener.drainTimeoutMs !== undefined) throw new UsageError('--drain-timeout is not available in relay: stopping it resets every tunnelled connection at once');
    const code = await runRelay(
      {
        control,
        ports: argv.ports === undefined ? undefined : parsePortSet(String(argv.ports), '--ports'),
        publicHost: parseHostPort(`${String(argv.publicHost).replace(/^\[|\]$/g, '').includes(':') ? `[${String(argv.publicHost).replace(/^\[|\]$/g, '')}]` : argv.publicHost}:0`, 'listen').host,
        token: argv.token === undefined ? undefined : String(argv.token),
        tokenFile: argv.tokenFile === undefined ? undefined : String(argv.tokenFile),
        ...(argv.cert !== undefined ? readPemOption(String(argv.cert), String(argv.key)) : {}),
        insecure: argv.insecure,
        http: argv.http === undefined ? undefined : parseHostPort(String(argv.http), 'listen', String(argv.http)),
        https: argv.https === undefined ? undefined : parseHostPort(String(argv.https), 'listen', String(argv.https)),
        domain,
        publicTls: argv.publicTls,
        ...listener,
        ...commonFromArgs(argv),
      },
      env.io,
    );
    env.setExitCode(code);
  },
});
