import { addressKind } from '../endpoints/index';
import { runExpose } from '../modes/expose';
import { parseMetricsAddress } from '../metrics';
import { UsageError } from '../errors';
import { parseHostPort, parsePort } from '../endpoints/address';
import { parseRule } from '../access';
import { isDnsLabel, normalizeFingerprint } from '../tunnel/protocol';
import { readAgentToken, tokenFromFlag } from '../tunnel/tokens';
import { DEFAULT_HEARTBEAT_MS } from '../tunnel/agent';
import type { ProxyVersion } from '../proxy-protocol';
import { addressFromArgs, commonFromArgs, examplesEpilog, listOption, readPemFile, refuseTyped, secondsOption } from './options';
import type { CommandFactory } from './types';

export const exposeCommand: CommandFactory = (env) => ({
  command: 'expose [local]',
  describe: 'Publish LOCAL (a service behind NAT) through a sockcat relay: connects out, public clients come home, like bore local or ngrok',
  builder: (y) =>
    y
      .positional('local', { type: 'string', describe: 'The service to publish: PORT (127.0.0.1), HOST:PORT or unix:/path, tls:HOST:PORT' })
      .option('via', { type: 'string', describe: 'The relay\'s control address, HOST:PORT (as you can reach it)' })
      .option('token', { type: 'string', describe: 'The token the relay knows this agent by' })
      .option('token-file', { type: 'string', describe: 'File holding the token alone on one line (mode 600: refused if others can read it)' })
      .option('fingerprint', { type: 'string', describe: 'Trust the relay certificate with this SHA-256 fingerprint (as the relay prints it; colons and case optional)' })
      .option('ca', { type: 'string', describe: 'Trust the relay certificate if signed by this CA PEM FILE (default: the system CAs)' })
      .option('servername', { type: 'string', describe: 'Name the relay certificate must carry (default: the host of --via)' })
      .option('insecure', { type: 'boolean', describe: 'Plain-text connection to a relay started with --insecure; warned' })
      .option('local-ca', { type: 'string', describe: 'tls: LOCAL: trust its certificate if signed by this CA (or is this self-signed certificate), PEM FILE' })
      .option('local-insecure', { type: 'boolean', describe: 'tls: LOCAL: do not verify its certificate (a development server\'s self-signed one); warned' })
      .option('remote-port', { type: 'number', describe: 'Public port to ask for (default: the relay picks one, and the same again after a reconnect)' })
      .option('allow', { type: 'string', describe: 'Only these public clients, address or CIDR (repeatable): enforced by the relay for this tunnel' })
      .option('name', { type: 'string', describe: "Name of this tunnel on a relay with --http/--https: NAME.DOMAIN (default: a generated word-word-NNNN, the same after a reconnect)" })
      .option('http-auth', { type: 'string', describe: 'USER:PASS the relay asks HTTP clients of the named tunnel for (Basic auth)' })
      .option('proxy-protocol', { choices: ['v1', 'v2'] as const, describe: "Send LOCAL a PROXY protocol header (HAProxy's v1 text or v2 binary) with the public client's address" })
      .option('heartbeat', { type: 'number', default: DEFAULT_HEARTBEAT_MS / 1000, describe: 'SECS between heartbeats; a relay silent for 3 of them is taken as gone' })
      .option('once', { type: 'boolean', default: false, describe: 'Exit (status 1) when the relay connection is lost instead of reconnecting' })
      .option('close-wait', { type: 'number', describe: 'After a public client sends EOF, SECS LOCAL may stay silent before both are reset (default: wait as long as a direct connection would)' })
      .option('connect-timeout', { type: 'number', default: 10, describe: 'Give up connecting to LOCAL after SECS; the public client is then reset' })
      .option('metrics', { type: 'string', describe: 'Serve Prometheus metrics on http://ADDR/metrics (PORT = 127.0.0.1:PORT): the tunnel, its clients and bytes' })
      .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: 'Access log on stderr: each public client\'s real address, bytes each way and time' })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'No start-up lines (public: …): only warnings and errors' })
      .option('log-format', { choices: ['text', 'json'] as const, default: 'text' as const, describe: 'Log lines for people (text) or one JSON object per event (json)' })
      .epilog(
        examplesEpilog([
          ['$0 expose 8080 --via relay.example.org:7000 --fingerprint AB:CD:… --token-file ~/.sockcat-token -v', 'publish 127.0.0.1:8080; prints public: relay.example.org:PORT and logs every client'],
          ['$0 expose 127.0.0.1:22 --via relay.example.org:7000 --token-file ~/.sockcat-token --remote-port 20022 --allow 192.0.2.0/24', 'ssh on the relay\'s port 20022, for one network only'],
          ['$0 expose 8080 --via 203.0.113.7:7000 --ca relay-ca.pem --token-file tok --proxy-protocol v2', 'LOCAL learns each client\'s address from a PROXY v2 header'],
          ['$0 expose 8000 --via relay.example.org:7000 --fingerprint AB:CD:… --token-file tok --name youpi --http-auth me:s3cret', 'on a relay with --http: http://youpi.DOMAIN/, password-protected'],
        ], 'Make the token file with: umask 077; echo TOKEN > ~/.sockcat-token'),
      ),
  handler: async (argv) => {
    if (argv.local === undefined) throw new UsageError('missing LOCAL: the service to publish (e.g. sockcat expose 8080 --via relay:7000)');
    const local = addressFromArgs(argv.local, undefined, 'connect', 'LOCAL address');
    if (addressKind(local) === 'datagram') throw new UsageError('expose carries TCP streams; UDP tunnels are not supported (expose tcp:, tls: or unix: addresses)');
    // --ca and --insecure are the relay's (the control channel); LOCAL's TLS has flags of its own.
    if (local.scheme !== 'tls') refuseTyped(env.args, ['local-ca', 'local-insecure'], 'to a LOCAL reached over TLS: write tls:HOST:PORT');
    const localTrust = [argv.localCa !== undefined, argv.localInsecure === true].filter(Boolean);
    if (localTrust.length > 1) throw new UsageError('--local-ca and --local-insecure contradict each other: --local-ca verifies with that CA, --local-insecure verifies nothing');
    if (local.scheme === 'tls') {
      // Advice about LOCAL's certificate names LOCAL's flags: --ca, --insecure and --servername are the relay's.
      local.tls = { ...local.tls, flags: { ca: '--local-ca', insecure: '--local-insecure', servername: 'write LOCAL as tls:NAME:PORT' } };
      if (localTrust.length > 0) local.tls = { ...local.tls, ca: argv.localCa === undefined ? undefined : readPemFile(String(argv.localCa), '--local-ca'), insecure: argv.localInsecure === true };
    }
    if (argv.via === undefined) throw new UsageError('missing --via HOST:PORT: the relay\'s control address');
    const via = parseHostPort(String(argv.via), 'connect', String(argv.via));
    if (argv.token !== undefined && argv.tokenFile !== undefined) throw new UsageError('--token and --token-file contradict each other: give one');
    if (argv.token === undefined && argv.tokenFile === undefined) throw new UsageError('missing --token-file FILE (or --token T): the token the relay knows this agent by');
    const token = argv.tokenFile !== undefined ? readAgentToken(String(argv.tokenFile)) : tokenFromFlag(String(argv.token));
    const trust = [argv.fingerprint !== undefined && '--fingerprint', argv.ca !== undefined && '--ca', argv.insecure && '--insecure'].filter(Boolean);
    if (trust.length > 1) throw new UsageError(`${trust.join(' and ')} contradict each other: pin a --fingerprint, trust a --ca, or (plain text) --insecure`);
    let fingerprint: string | undefined;
    if (argv.fingerprint !== undefined) {
      fingerprint = normalizeFingerprint(String(argv.fingerprint));
      if (!fingerprint) throw new UsageError(`--fingerprint takes the relay's SHA-256 fingerprint, 64 hex digits with or without colons, not '${argv.fingerprint}'`);
    }
    if (argv.insecure && argv.servername !== undefined) throw new UsageError('--servername applies to TLS, which --insecure turns off');
    let remotePort: number | undefined;
    if (argv.remotePort !== undefined) remotePort = parsePort(String(argv.remotePort), 'connect', `--remote-port ${argv.remotePort}`);
    const allow = listOption(argv.allow, '--allow');
    for (const rule of allow) parseRule(rule, '--allow');
    let name: string | undefined;
    if (argv.name !== undefined) {
      name = String(argv.name).toLowerCase();
      if (!isDnsLabel(name)) throw new UsageError(`--name takes one DNS label (letters, digits, inner hyphens, up to 63), not '${argv.name}'`);
    }
    if (argv.httpAuth !== undefined && !/^[^:]+:.+$/.test(String(argv.httpAuth))) throw new UsageError("--http-auth takes USER:PASS, e.g. --http-auth alice:s3cret");
    const heartbeatMs = secondsOption(argv.heartbeat, '--heartbeat');
    if (!heartbeatMs || heartbeatMs < 100) throw new UsageError('--heartbeat takes at least 0.1 seconds');
    const connectTimeoutMs = secondsOption(argv.connectTimeout, '--connect-timeout');
    if (connectTimeoutMs === 0) throw new UsageError('--connect-timeout must be more than 0 seconds');
    const code = await runExpose(
      {
        local,
        relay: {
          host: via.host,
          port: via.port,
          tls: argv.insecure ? undefined : { fingerprint, ca: argv.ca === undefined ? undefined : readPemFile(String(argv.ca), '--ca').pem, servername: argv.servername },
        },
        token,
        remotePort,
        allow: allow.length ? allow : undefined,
        name,
        httpAuth: argv.httpAuth === undefined ? undefined : String(argv.httpAuth),
        heartbeatMs,
        once: argv.once,
        proxyProtocol: argv.proxyProtocol as ProxyVersion | undefined,
        closeWaitMs: secondsOption(argv.closeWait, '--close-wait'),
        connectTimeoutMs,
        insecure: argv.insecure,
        metrics: argv.metrics === undefined ? undefined : parseMetricsAddress(String(argv.metrics)),
        ...commonFromArgs(argv),
      },
      env.io,
    );
    env.setExitCode(code);
  },
});
