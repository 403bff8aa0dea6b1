/**
 * `--metrics ADDR`: Prometheus metrics of a long-running mode, served as text on
 * http://ADDR/metrics by prom-client (the Prometheus client every Node exporter uses).
 *
 * One Metrics object per process. The listener runtime reports connection events (accepted,
 * refused, closed with bytes and duration); modes report what only they see through the small API
 * below: upstream connect failures (forward, proxy modes), exec children, broadcast clients and
 * dropped lines, proxy requests and tunnels. The metrics listener is a separate HTTP server on
 * loopback unless told otherwise: a scrape is never counted as a client, never passes --allow,
 * and never takes a --max-conns slot.
 */
import http from 'node:http';
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { formatHostPort, isWildcardHost } from './endpoints/address';
import type { TcpAddress } from './endpoints/index';
import { parseAddress } from './endpoints/index';
import { UsageError, netError } from './errors';
import type { Logger } from './log';

/** Why a client was refused before its mode saw it. */
export type RefusedReason = 'denied' | 'limit' | 'auth' | 'rule' | 'untrusted-proxy' | 'proxy-header' | 'gone' | 'handshake' | (string & {});

/** Why connecting upstream failed, in a few words a dashboard can group by. */
export type UpstreamFailureCause = 'refused' | 'timeout' | 'dns' | 'unreachable' | 'tls' | 'reset' | 'hop' | 'other';

/** What a live connection's byte counts are read from: a socket (TCP, unix, TLS: cleartext). */
export interface ByteSource {
  readonly bytesRead?: number;
  readonly bytesWritten?: number;
  readonly readableLength?: number;
  readonly writableLength?: number;
}

/** One connection being counted, from accept (or tunnel open) to its close. */
export interface CountedConnection {
  readonly stream: ByteSource;
  /** Bytes already read or written on the stream before it was counted (a PROXY header). */
  readonly baseRead: number;
  readonly baseWritten: number;
  /** The most each direction has shown so far: a counter never goes back. */
  read: number;
  written: number;
  /** `in` is what the stream wrote rather than read (a tunnel agent's connection to its service). */
  readonly swapped: boolean;
}

/**
 * Bytes each way of a set of connections: those closed (summed at close) plus those still open,
 * read from their sockets' own counters when Prometheus scrapes. Nothing runs per chunk: a
 * scrape during a long transfer still sees the bytes so far, and with --metrics off nothing here
 * exists at all.
 */
export class ByteTally {
  private closedIn = 0;
  private closedOut = 0;
  private readonly live = new Set<CountedConnection>();

  /**
   * Starts counting `stream` from now (`swapped`: its writes are the `in` direction), or with
   * `fromStart` from the stream's first byte (a request head read earlier to route it counts).
   */
  open(stream: ByteSource, swapped = false, fromStart = false): CountedConnection {
    // Bytes read but still buffered (unshifted after a PROXY header) are the client's: count them.
    const baseRead = fromStart ? 0 : (stream.bytesRead ?? 0) - (stream.readableLength ?? 0);
    const baseWritten = fromStart ? 0 : (stream.bytesWritten ?? 0);
    const c: CountedConnection = { stream, baseRead, baseWritten, read: 0, written: 0, swapped };
    this.live.add(c);
    return c;
  }

  /**
   * Stops counting `c`, keeping its final bytes. `fallback` (the handler's own counts) is used
   * for a stream without byte counters.
   */
  close(c: CountedConnection, fallback?: { received: number; sent: number }): void {
    if (!this.live.delete(c)) return;
    if (typeof c.stream.bytesRead !== 'number' && fallback) {
      c.read = c.swapped ? fallback.sent : fallback.received;
      c.written = c.swapped ? fallback.received : fallback.sent;
    } else ByteTally.sample(c);
    this.closedIn += c.swapped ? c.written : c.read;
    this.closedOut += c.swapped ? c.read : c.written;
  }

  /** Bytes in (from clients) and out (to them), closed and live together. */
  totals(): { in: number; out: number } {
    let i = this.closedIn;
    let o = this.closedOut;
    for (const c of this.live) {
      ByteTally.sample(c);
      i += c.swapped ? c.written : c.read;
      o += c.swapped ? c.read : c.written;
    }
    return { in: i, out: o };
  }

  get liveCount(): number {
    return this.live.size;
  }

  /** Reads a stream's counters into `c`, never lower than before. */
  private static sample(c: CountedConnection): void {
    const s = c.stream;
    const read = (s.bytesRead ?? 0) - c.baseRead;
    // bytesWritten includes what is still queued in the stream: only what left it counts.
    const written = (s.bytesWritten ?? 0) - (s.writableLength ?? 0) - c.baseWritten;
    if (read > c.read) c.read = read;
    if (written > c.written) c.written = written;
  }
}

/** Connection duration buckets, in seconds: from a quick request to an hour-long ssh session. */
const DURATION_BUCKETS = [0.005, 0.05, 0.25, 1, 5, 15, 60, 300, 1800, 3600, 14400];

/** Every sockcat metric of one process, and the hooks modes call. */
export class Metrics {
  readonly registry = new Registry();
  private readonly accepted: Counter;
  private readonly closed: Counter<'reason'>;
  private readonly refused: Counter<'reason'>;
  private readonly live: Gauge;
  private readonly bytes: Counter<'direction'>;
  private readonly duration: Histogram;
  private readonly upstreamFailures: Counter<'cause'>;
  private readonly childrenLive: Gauge;
  private readonly childrenSpawned: Counter;
  private readonly broadcastClients: Gauge;
  private readonly droppedLines: Counter;
  private readonly proxyTunnels: Counter<'protocol' | 'outcome'>;
  private readonly tunnelsLive: Gauge<'tunnel'>;
  private readonly agentsConnected: Gauge;
  private readonly tunnelAuthFailures: Counter;
  private readonly tunnelConnections: Counter<'tunnel'>;
  private readonly tunnelConnectionsLive: Gauge<'tunnel'>;
  /** Client connections' bytes (serve()'s clients). */
  private readonly clientBytes = new ByteTally();
  /** Each tunnel's bytes, by tunnel name. */
  private readonly tunnelBytes = new Map<string, ByteTally>();

  /** `mode` labels every series (forward, exec, broadcast, listen, proxy, tunnel…). */
  constructor(mode: string, opts: { processMetrics?: boolean } = {}) {
    const r = this.registry;
    r.setDefaultLabels({ mode });
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: r });
    this.accepted = new Counter({ name: 'sockcat_connections_accepted_total', help: 'Client connections let in (after access control and limits)', registers: [r] });
    this.closed = new Counter({ name: 'sockcat_connections_closed_total', help: 'Client connections over, by how they ended (eof, reset, idle, refused upstream…)', labelNames: ['reason'], registers: [r] });
    this.refused = new Counter({ name: 'sockcat_connections_refused_total', help: 'Clients refused before being served, by reason (denied, limit, auth, rule, untrusted-proxy, proxy-header)', labelNames: ['reason'], registers: [r] });
    this.live = new Gauge({ name: 'sockcat_connections_live', help: 'Client connections open now', registers: [r] });
    const clientBytes = this.clientBytes;
    this.bytes = new Counter({
      name: 'sockcat_bytes_total',
      help: 'Bytes received from clients (in) and sent to them (out), open connections included',
      labelNames: ['direction'],
      registers: [r],
      // Read at each scrape: closed connections' totals plus the live sockets' own counters.
      collect() {
        const t = clientBytes.totals();
        this.reset();
        this.inc({ direction: 'in' }, t.in);
        this.inc({ direction: 'out' }, t.out);
      },
    });
    this.duration = new Histogram({ name: 'sockcat_connection_duration_seconds', help: 'How long client connections lasted', buckets: DURATION_BUCKETS, registers: [r] });
    this.upstreamFailures = new Counter({ name: 'sockcat_upstream_connect_failures_total', help: 'Failed connections to the upstream, by cause (refused, timeout, dns, unreachable, tls, reset, other)', labelNames: ['cause'], registers: [r] });
    this.childrenLive = new Gauge({ name: 'sockcat_exec_children_live', help: 'exec: programs running now', registers: [r] });
    this.childrenSpawned = new Counter({ name: 'sockcat_exec_children_spawned_total', help: 'exec: programs started', registers: [r] });
    this.broadcastClients = new Gauge({ name: 'sockcat_broadcast_clients', help: 'broadcast: clients in the room now', registers: [r] });
    this.droppedLines = new Counter({ name: 'sockcat_broadcast_dropped_lines_total', help: 'broadcast: lines (or raw chunks) dropped for slow readers', registers: [r] });
    this.proxyTunnels = new Counter({ name: 'sockcat_proxy_tunnels_total', help: 'proxy: client connections handled, by protocol and how they ended (eof, reset, refused upstream, denied by rule, auth failed, unreachable…)', labelNames: ['protocol', 'outcome'], registers: [r] });
    this.tunnelsLive = new Gauge({ name: 'sockcat_tunnels_live', help: 'relay/expose: tunnels up now, by tunnel (token) name', labelNames: ['tunnel'], registers: [r] });
    this.agentsConnected = new Gauge({ name: 'sockcat_tunnel_agents_connected', help: 'relay: agents connected now (expose: 1 while connected to its relay)', registers: [r] });
    this.tunnelAuthFailures = new Counter({ name: 'sockcat_tunnel_auth_failures_total', help: 'relay: agents refused for a wrong token (expose: refusals of our token)', registers: [r] });
    this.tunnelConnections = new Counter({ name: 'sockcat_tunnel_connections_total', help: 'relay/expose: public clients carried, by tunnel name', labelNames: ['tunnel'], registers: [r] });
    this.tunnelConnectionsLive = new Gauge({ name: 'sockcat_tunnel_connections_live', help: 'relay/expose: public clients carried now, by tunnel name', labelNames: ['tunnel'], registers: [r] });
    const tunnelBytes = this.tunnelBytes;
    new Counter({
      name: 'sockcat_tunnel_bytes_total',
      help: 'relay/expose: bytes carried, by tunnel name: from public clients towards the service (in) and back (out), open connections included',
      labelNames: ['tunnel', 'direction'],
      registers: [r],
      collect() {
        this.reset();
        for (const [tunnel, tally] of tunnelBytes) {
          const t = tally.totals();
          this.inc({ tunnel, direction: 'in' }, t.in);
          this.inc({ tunnel, direction: 'out' }, t.out);
        }
      },
    });
    // Zero series exist from the start, so a dashboard shows 0 instead of "no data".
    for (const reason of ['denied', 'limit']) this.refused.inc({ reason }, 0);
  }

  // -- The listener runtime reports these. --

  /** A client was let in: its bytes count from now on (`stream`: the client's socket). */
  connectionAccepted(stream: ByteSource): CountedConnection {
    this.accepted.inc();
    this.live.inc();
    return this.clientBytes.open(stream);
  }

  /**
   * A client accepted earlier is gone after `ms` milliseconds. Its bytes are its socket's;
   * `summary` (the handler's counts) stands in for a stream that keeps none.
   */
  connectionClosed(c: CountedConnection, reason: string, ms: number, summary?: { received: number; sent: number }): void {
    this.live.dec();
    this.closed.inc({ reason });
    this.clientBytes.close(c, summary);
    this.duration.observe(ms / 1000);
  }

  /** A client was refused before being served. */
  connectionRefused(reason: RefusedReason): void {
    this.refused.inc({ reason });
  }

  // -- Modes report these. --

  /** forward (and proxy modes): connecting upstream failed. */
  upstreamConnectFailed(cause: UpstreamFailureCause): void {
    this.upstreamFailures.inc({ cause });
  }

  /** exec: a program was started. */
  childSpawned(): void {
    this.childrenSpawned.inc();
    this.childrenLive.inc();
  }

  /** exec: a program is over. */
  childExited(): void {
    this.childrenLive.dec();
  }

  /** broadcast: the room now holds `n` clients. */
  broadcastClientCount(n: number): void {
    this.broadcastClients.set(n);
  }

  /** broadcast: `n` lines (or chunks) were dropped for a slow reader. */
  broadcastDropped(n = 1): void {
    this.droppedLines.inc(n);
  }

  /** proxy: one client connection is over; `protocol` socks5, socks4, socks5-udp, http-connect, http, unknown. */
  proxyTunnelEnded(protocol: string, outcome: string): void {
    this.proxyTunnels.inc({ protocol, outcome });
  }

  /** relay/expose: tunnel `name` came up (true) or went down (false). */
  tunnelUp(name: string, up: boolean): void {
    if (up) {
      this.tunnelsLive.inc({ tunnel: name });
      this.agentsConnected.inc();
      // Its series exist from now on, so a dashboard shows 0 rather than nothing.
      this.tunnelConnections.inc({ tunnel: name }, 0);
      this.tunnelConnectionsLive.inc({ tunnel: name }, 0);
      this.tunnelTally(name);
    } else {
      this.tunnelsLive.dec({ tunnel: name });
      this.agentsConnected.dec();
    }
  }

  /** relay: an agent proved no token the relay knows (expose: the relay refused ours). */
  tunnelAuthFailed(): void {
    this.tunnelAuthFailures.inc();
  }

  /**
   * relay/expose: a public client is carried by tunnel `name` from now on. `stream` is the one
   * whose bytes count: on the relay the public client's socket (reads are `in`; `fromStart`: the
   * request head the router read counts too), on the agent its connection to the service
   * (`towardsService`: writes are `in`).
   */
  tunnelConnectionOpened(name: string, stream: ByteSource, opts: { towardsService?: boolean; fromStart?: boolean } = {}): CountedConnection {
    this.tunnelConnections.inc({ tunnel: name });
    this.tunnelConnectionsLive.inc({ tunnel: name });
    return this.tunnelTally(name).open(stream, opts.towardsService, opts.fromStart);
  }

  /** relay/expose: the client counted by tunnelConnectionOpened() is gone. */
  tunnelConnectionClosed(name: string, c: CountedConnection): void {
    this.tunnelConnectionsLive.dec({ tunnel: name });
    this.tunnelTally(name).close(c);
  }

  private tunnelTally(name: string): ByteTally {
    let t = this.tunnelBytes.get(name);
    if (!t) this.tunnelBytes.set(name, (t = new ByteTally()));
    return t;
  }

  /** The Prometheus text exposition. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** What the metrics endpoint serves: one process's metrics, or the sum over forward's workers. */
export interface MetricsSource {
  text(): Promise<string>;
  readonly contentType: string;
}

/**
 * `forward --workers N`, in the primary: the workers' metrics added up (counters and gauges
 * summed by prom-client's cluster aggregation), asked of each worker over the cluster channel.
 */
export function clusterMetricsSource(): MetricsSource {
  const aggregator = new AggregatorRegistry();
  return { text: () => aggregator.clusterMetrics(), contentType: aggregator.contentType };
}

/** `forward --workers N`, in a worker: answer the primary's requests with this process's metrics. */
export function offerToPrimary(metrics: Metrics): void {
  new AggregatorRegistry(); // installs the worker's side of the exchange
  AggregatorRegistry.setRegistries([metrics.registry]);
}

/** The upstream failure cause of a connect error (Node error codes, sockcat's TLS wording). */
export function upstreamFailureCause(err: Error & { code?: string }): UpstreamFailureCause {
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'refused';
    case 'ETIMEDOUT':
      return 'timeout';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_FAIL':
    case 'EAI_NONAME':
      return 'dns';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EHOSTDOWN':
    case 'ENETDOWN':
    case 'EADDRNOTAVAIL':
      return 'unreachable';
    case 'ECONNRESET':
    case 'EPIPE':
      return 'reset';
  }
  if (err.code?.startsWith('ERR_TLS') || err.code?.startsWith('ERR_SSL') || /certificate|handshake|TLS/i.test(err.message)) return 'tls';
  return 'other';
}

/** --metrics as given: "9100", "127.0.0.1:9100", "[::1]:9100", "0.0.0.0:9100". Loopback unless told. */
export function parseMetricsAddress(text: string): TcpAddress {
  let addr;
  try {
    addr = parseAddress(text, 'listen');
  } catch (err) {
    throw new UsageError(`--metrics: ${(err as Error).message}`);
  }
  if (addr.scheme !== 'tcp') throw new UsageError(`--metrics takes a TCP address (e.g. 9100 or 127.0.0.1:9100), not ${text}`);
  return addr;
}

/** The HTTP endpoint: GET /metrics, nothing else. */
export interface MetricsServer {
  /** "127.0.0.1:9100" (the real port when 0 was asked). */
  label: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Serves `metrics` on http://ADDR/metrics until closed. Rejects (exit 1) when the address
 * cannot be bound. Connections to it are neither logged nor counted as clients.
 */
export async function serveMetrics(metrics: MetricsSource, address: TcpAddress, logger: Logger): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('sockcat serves its metrics on /metrics\n');
      return;
    }
    metrics.text().then(
      (body) => res.writeHead(200, { 'content-type': metrics.contentType }).end(req.method === 'HEAD' ? undefined : body),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
    );
  });
  // A scraper that keeps its connection open must not hold up the stop.
  server.keepAliveTimeout = 5_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => {
      const where = formatHostPort(address.host, address.port);
      reject(netError(err, { action: 'listen', address: where, host: address.host, port: address.port }));
    });
    server.listen({ host: address.host, port: address.port }, () => resolve());
  });
  server.on('error', (err) => logger.error('metrics', `metrics endpoint: ${err.message}`));
  const bound = server.address() as { port: number };
  const label = formatHostPort(address.host, bound.port);
  logger.event('metrics', `metrics on http://${label}/metrics`, { address: label });
  if (isWildcardHost(address.host)) logger.warn('exposed', `metrics on ${label} are reachable from the network, not only from this machine`, { address: label });
  return {
    label,
    port: bound.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
