/**
 * `sockcat relay --control ADDR`: the reachable half of a tunnel (what bore server, rathole's
 * server or MySocket's edge do). Agents (`sockcat expose`) connect to the control address over
 * TLS, prove a token, and get a public listener each; see src/tunnel/relay-server.ts.
 */
import { generateEphemeralCertificate, certificateFingerprint } from '../endpoints/tls';
import type { Address, PemFile } from '../endpoints/index';
import type { HostPort } from '../endpoints/address';
import { formatHostPort } from '../endpoints/address';
import { createLogger, Logger, type LogOptions } from '../log';
import type { AccessOptions } from '../access';
import type { Listener } from '../endpoints/types';
import type { ModeIO } from '../io';
import { runTunnelRelay } from '../tunnel/relay-server';
import { readTokenFile, type PortSet, type TokenEntry } from '../tunnel/tokens';
import { Metrics, serveMetrics, type MetricsServer } from '../metrics';
import type { TcpAddress } from '../endpoints/index';
import type { AcceptProxyOptions } from '../accept-proxy';
import type { AllowLinkOptions } from '../allow-link';

export interface RelayOptions extends LogOptions {
  /** --control: where agents connect. */
  control: HostPort;
  /** --ports. */
  ports?: PortSet;
  /** --public-host (default 127.0.0.1). */
  publicHost: string;
  /** --token-file (re-read at each handshake) … */
  tokenFile?: string;
  /** … or --token, for one agent named "default". */
  token?: string;
  /** --cert/--key for the control channel; without them an ephemeral certificate. */
  cert?: PemFile;
  key?: PemFile;
  /** --insecure: a plain-text control connection. */
  insecure?: boolean;
  access?: AccessOptions;
  maxConns?: number;
  /** --http / --https shared ports, routed by name under --domain. */
  http?: HostPort;
  https?: HostPort;
  domain?: string;
  /** --public-tls: tunnels' public ports speak TLS with --cert/--key. */
  publicTls?: boolean;
  /** --metrics: where to serve Prometheus metrics (tunnels by name, agents, public clients). */
  metrics?: TcpAddress;
  /** --accept-proxy-protocol: public clients come through a balancer that names them in a PROXY header. */
  acceptProxy?: AcceptProxyOptions;
  /** --allow-link and its companions (needs --allow-file): friends let in to every tunnel by a link. */
  allowLink?: AllowLinkOptions & { trustedProxies?: string[] };
  onControlListening?: (listener: Listener) => void;
  onTunnel?: (info: { name: string; port: number }) => void;
}

/** Runs the relay until stopped; resolves with the exit code. Rejects if --control cannot be opened. */
export async function runRelay(opts: RelayOptions, io: ModeIO): Promise<number> {
  const logger = createLogger(opts, io.stderr);
  let control: Address;
  let fingerprint: string | undefined;
  if (opts.insecure) {
    control = { scheme: 'tcp', ...opts.control };
    logger.warn('insecure', '--insecure: the control channel and every tunnelled byte travel in plain text; anyone in the path can read them and take over tunnels', {});
  } else {
    let cert = opts.cert;
    let key = opts.key;
    if (!cert || !key) {
      const eph = await generateEphemeralCertificate();
      cert = { path: '(ephemeral)', pem: Buffer.from(eph.cert) };
      key = { path: '(ephemeral)', pem: Buffer.from(eph.key) };
    }
    fingerprint = certificateFingerprint(cert.pem);
    control = { scheme: 'tls', ...opts.control, tls: { cert, key } };
  }
  const tokens: () => TokenEntry[] = opts.tokenFile ? () => readTokenFile(opts.tokenFile!) : () => [{ name: 'default', token: opts.token! }];
  const metrics = opts.metrics ? new Metrics('relay') : undefined;
  let metricsServer: MetricsServer | undefined;
  try {
    if (metrics) metricsServer = await serveMetrics(metrics, opts.metrics!, logger);
    await relayUntilStopped(opts, io, logger, control, fingerprint, tokens, metrics);
  } finally {
    await metricsServer?.close();
  }
  return 0;
}

async function relayUntilStopped(opts: RelayOptions, io: ModeIO, logger: Logger, control: Address, fingerprint: string | undefined, tokens: () => TokenEntry[], metrics: Metrics | undefined): Promise<void> {
  await runTunnelRelay({
    metrics,
    acceptProxy: opts.acceptProxy,
    allowLink: opts.allowLink,
    control,
    publicHost: opts.publicHost,
    ports: opts.ports,
    tokens,
    logger,
    signal: io.signal,
    access: opts.access,
    maxConns: opts.maxConns,
    onControlListening: (l) => {
      const where = formatHostPort((l.address as HostPort).host, (l.address as HostPort).port);
      const how = fingerprint
        ? `TLS, ${opts.cert ? `certificate ${opts.cert.path}` : 'ephemeral certificate'} with SHA-256 fingerprint ${fingerprint}`
        : 'plain text (--insecure)';
      logger.notice('relay', `relay: agents connect to ${where} (${how}); public listeners on ${opts.publicHost}`, { address: where, fingerprint, public_host: opts.publicHost });
      if (fingerprint) logger.notice('relay-hint', `agents: sockcat expose LOCAL --via THIS_HOST:${(l.address as HostPort).port} --fingerprint ${fingerprint} --token-file FILE`, { fingerprint });
      opts.onControlListening?.(l);
    },
    onTunnel: opts.onTunnel,
    http: opts.http,
    https: opts.https,
    domain: opts.domain,
    tls: opts.cert && opts.key ? { cert: opts.cert.pem, key: opts.key.pem } : undefined,
    publicTls: opts.publicTls,
  });
}
