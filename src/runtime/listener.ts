/**
 * The accept loop shared by every listening mode (listen -k, --echo, forward, exec, broadcast):
 * opens the listener, applies access control and the connection limit, tracks live connections,
 * logs each event once, and on stop closes the listener and drains live connections.
 */
import { formatAddress, listenAddress } from '../endpoints/index';
import { isLoopbackHost, isWildcardHost, type Address } from '../endpoints/index';
import type { Connection, Listener } from '../endpoints/types';
import { formatDuration, type Logger, type LogFields } from '../log';
import { createAccessControl, type AccessControl, type AccessOptions } from '../access';
import { UsageError } from '../errors';
import { ProxyAcceptor, type AcceptProxyOptions } from '../accept-proxy';
import { Metrics, serveMetrics, type MetricsServer } from '../metrics';
import { AllowLinks, type AllowLinkOptions } from '../allow-link';
import type { TcpAddress } from '../endpoints/index';
import { FdExhaustionWatch } from './fdlimit';

/** What a connection handler reports when its connection is over, for the "closed" log line. */
export interface ConnectionSummary {
  /** Bytes received from the client. */
  received: number;
  /** Bytes sent to the client. */
  sent: number;
  /** How it ended: eof, reset, idle, close-wait, refused upstream… */
  reason: string;
  /** Extra words for the text log, e.g. " → 127.0.0.1:22". */
  text?: string;
  /** Extra fields for the JSON log. */
  fields?: LogFields;
}

export interface ConnectionContext {
  /** Sequential number of this connection, from 1. */
  id: number;
  /** Aborted when the server gives up draining: the handler must close its connection then. */
  signal: AbortSignal;
}

/** Options every listening mode takes and hands on to serve(). */
export interface ListenerModeOptions {
  /** --allow, --deny, --allow-file. */
  access?: AccessOptions;
  /** --max-conns. */
  maxConns?: number;
  /** --accept-proxy-protocol with its --trusted-proxy ranges. */
  acceptProxy?: AcceptProxyOptions;
  /** --metrics: where to serve Prometheus metrics. */
  metrics?: TcpAddress;
  /** --allow-link and its companions (needs --allow-file). */
  allowLink?: AllowLinkOptions & { trustedProxies?: string[] };
  /** --drain-timeout, in ms. */
  drainTimeoutMs?: number;
  /** Told the real bound address (port 0 → the port the system picked). */
  onListening?: (listener: Listener) => void;
}

/**
 * The listener options that only make sense for stream connections: a UDP mode refuses them
 * (exit 2) rather than ignore them.
 */
export function refuseForDatagrams(opts: ListenerModeOptions): void {
  if (opts.acceptProxy) throw new UsageError('--accept-proxy-protocol applies to TCP listeners, not to UDP');
  if (opts.metrics) throw new UsageError('--metrics applies to TCP (and TLS, unix) listeners, not to UDP yet');
  if (opts.allowLink) throw new UsageError('--allow-link applies to TCP (and TLS, unix) listeners, not to UDP yet');
}

/**
 * What a listening mode's options ask serve() to run around its handler: access control, the
 * PROXY pre-step, metrics, allow links. Built in this order: allow links first prune expired grants
 * from the allow file, before the access control reads it.
 */
export function listenerParts(opts: ListenerModeOptions, logger: Logger, mode: string) {
  const proxy = opts.acceptProxy ? new ProxyAcceptor(opts.acceptProxy) : undefined;
  let allowLinks: AllowLinks | undefined;
  if (opts.allowLink) {
    const allowFile = opts.access?.allowFile;
    if (allowFile === undefined) throw new UsageError('--allow-link needs --allow-file FILE: the grants are kept there, and without an allow list everyone is let in anyway');
    allowLinks = new AllowLinks({ ...opts.allowLink, allowFile, proxy }, logger);
  }
  const access = createAccessControl(opts.access, logger);
  if (allowLinks && access) allowLinks.attach(access);
  return { access, proxy, allowLinks, metrics: metricsFor(opts, mode) };
}

/** The metrics of a listening mode when --metrics asks for them; serve() publishes them. */
export function metricsFor(opts: ListenerModeOptions, mode: string): ServedMetrics | undefined {
  return opts.metrics ? { metrics: new Metrics(mode), address: opts.metrics } : undefined;
}

/** Metrics and the address their HTTP endpoint listens on (none in a --workers worker: the primary serves). */
export interface ServedMetrics {
  metrics: Metrics;
  address?: TcpAddress;
}

export interface ServeOptions {
  address: Address;
  logger: Logger;
  /** Stop accepting and drain when aborted. */
  signal: AbortSignal;
  access?: AccessControl;
  /** The access control is shared with other listeners (relay's tunnels): its owner closes it, not this stop. */
  sharedAccess?: boolean;
  /** Reads a PROXY header from each connection first; its client address replaces the connection's. */
  proxy?: ProxyAcceptor;
  /** Counts connection events, served on their own HTTP endpoint while the listener runs. */
  metrics?: ServedMetrics;
  /** The allow-link endpoint, started with the listener and stopped with it. */
  allowLinks?: AllowLinks;
  /** Refuse clients past this many live ones (default 10000). */
  maxConns?: number;
  /** After stop, how long live connections may take to finish before they are closed (ms, default 0). */
  drainTimeoutMs?: number;
  /** Serves one client; resolves when its connection is over. */
  handle: (conn: Connection, ctx: ConnectionContext) => Promise<ConnectionSummary | void>;
  /** Told once the listener is bound (tests and callers read the real port here). */
  onListening?: (listener: Listener) => void;
  /** Stop after this many connections have been accepted and served (listen without -k uses 1). */
  maxAccepts?: number;
  /** Listen with SO_REUSEPORT (see BindOptions.reusePort). */
  reusePort?: boolean;
  /** What the start-up line says this listener is for, after the address ("public port of tunnel laptop"). */
  announce?: string;
}

export const DEFAULT_MAX_CONNS = 10000;

/** The 'error' listener that keeps a late socket error from crashing the process: one function for every connection. */
const ignoreError = () => {};

/**
 * The start-up line every listener prints, without -v (-q silences it), so a server never starts
 * on a blank screen: `listening on 127.0.0.1:9090 (loopback only)`, or `(all interfaces: reachable
 * from the network)` — who can connect is the first thing a student (and an admin) needs to know.
 * UDP modes and the relay's control port, which do not go through serve(), call it too.
 */
export function announceListening(logger: Logger, listener: Pick<Listener, 'label' | 'address'>, what?: string): void {
  const addr = listener.address as Address & { host?: string };
  const scope = typeof addr.host === 'string' ? reach(addr.host) : undefined;
  const text = `listening on ${listener.label}${scope ? ` (${scope.words})` : ''}${what ? `: ${what}` : ''}`;
  logger.notice('listening', text, { address: listener.label, reach: scope?.reach, for: what });
}

/** Who can connect to a listener bound to `host`. */
function reach(host: string): { reach: string; words: string } {
  if (isWildcardHost(host)) return { reach: 'all', words: 'all interfaces: reachable from the network' };
  if (isLoopbackHost(host)) return { reach: 'loopback', words: 'loopback only' };
  return { reach: 'interface', words: 'this interface: reachable from its network' };
}

/**
 * Runs a server until `signal` is aborted (or maxAccepts clients were served) and every live
 * connection is over. Rejects only if the listener cannot be opened.
 */
export async function serve(opts: ServeOptions): Promise<{ accepted: number }> {
  const { logger } = opts;
  const metrics = opts.metrics?.metrics;
  let metricsServer: MetricsServer | undefined;
  const maxConns = opts.maxConns ?? DEFAULT_MAX_CONNS;
  const live = new Map<number, { abort: AbortController; done: Promise<void> }>();
  let nextId = 1;
  let accepted = 0;
  let stopping = false;
  let listener: Listener | undefined;
  let wakeWhenServed: (() => void) | undefined;

  const stopAccepting = async () => {
    if (stopping) return;
    stopping = true;
    await listener?.close();
    await opts.allowLinks?.close();
    if (!opts.sharedAccess) opts.access?.close();
    for (const c of preStepping) c.stream.destroy();
    for (const abort of handshaking.values()) abort.abort();
  };

  const fdWatch = new FdExhaustionWatch((text, fields) => logger.warn('fd-limit', text, fields));
  /** Connections whose PROXY header is still being read (closed on stop). */
  const preStepping = new Set<Connection>();
  /** Connections in their overlay's handshake (TLS), aborted on stop. */
  const handshaking = new Map<Connection, AbortController>();

  function onConnection(conn: Connection) {
    // From the first moment: a socket refused or destroyed below can still report a late read
    // error (a peer's reset racing our destroy), which must never crash the process.
    conn.stream.on('error', ignoreError);
    if (stopping) {
      conn.stream.destroy();
      return;
    }
    fdWatch.check(live.size + handshaking.size + preStepping.size + 1);
    if (!opts.proxy) return admit(conn);
    if (preStepping.size >= maxConns) {
      return refuse(conn, 'limit', `${maxConns} connections already waiting for their PROXY header`, { reason: 'limit', max_conns: maxConns });
    }
    preStepping.add(conn);
    void opts.proxy.run(conn).then((r) => {
      preStepping.delete(conn);
      if (stopping) {
        conn.stream.destroy();
        return;
      }
      if (!r.ok) {
        // An event like 'denied' (-v or JSON): a stranger scanning the port must not flood stderr.
        return refuse(conn, r.reason, r.text, { reason: r.reason, error: r.text });
      }
      admit(r.conn, conn.remote.label);
    });
  }

  /** Turns a client away: the `refused` event (-v or JSON only), the metric, and the socket closed. */
  function refuse(conn: Connection, event: string, text: string, fields: LogFields): void {
    logger.refused({ event, client: conn.remote.label, text, fields });
    metrics?.connectionRefused(event);
    conn.stream.destroy();
  }

  /** Access control, the limit, then the mode's handler. `via` names the proxy the client came through. */
  function admit(conn: Connection, via?: string) {
    if (opts.access) {
      // Unix-socket peers have no IP: --deny cannot match them, an allow list cannot include them.
      const verdict =
        conn.remote.port !== undefined
          ? opts.access.check(conn.remote.address)
          : opts.access.hasAllowRules
            ? { ok: false as const, reason: 'unix-socket clients have no IP address to match --allow' }
            : { ok: true as const };
      if (!verdict.ok) return refuse(conn, 'denied', verdict.reason, { via, reason: verdict.reason });
    }
    if (live.size + handshaking.size >= maxConns) return refuse(conn, 'limit', `${maxConns} connections already open (--max-conns)`, { via, reason: 'limit', max_conns: maxConns });
    const overlay = listener?.overlay;
    if (!overlay) return start(conn, via);
    // The overlay (TLS handshake) runs only now, after access control and the limit, and counts
    // against --max-conns while it runs.
    const abort = new AbortController();
    handshaking.set(conn, abort);
    overlay.accept(conn, abort.signal).then(
      (secured) => {
        handshaking.delete(conn);
        // Stopped meanwhile, or (listen without -k) another client got through first.
        if (stopping || (opts.maxAccepts !== undefined && accepted >= opts.maxAccepts)) return void secured.stream.destroy();
        // The secured stream is a new one: like the carrier in onConnection, a late error must not crash the process.
        secured.stream.on('error', ignoreError);
        start(secured, via);
      },
      (err: Error & { code?: string }) => {
        handshaking.delete(conn);
        logger.event('handshake', err.message, { client: conn.remote.label, via, reason: 'handshake', code: err.code });
        metrics?.connectionRefused('handshake');
        conn.stream.destroy();
        wakeWhenServed?.();
      },
    );
  }

  /** An admitted connection: its id, the "open" event, and the mode's handler. */
  function start(conn: Connection, via?: string) {
    const id = nextId++;
    accepted++;
    if (opts.maxAccepts !== undefined && accepted >= opts.maxAccepts) void stopAccepting();
    const entry = { abort: new AbortController(), done: Promise.resolve() };
    live.set(id, entry);
    entry.done = run(conn, via, id, entry.abort);
  }

  /**
   * Runs the handler and logs how the connection ended. One async function rather than a chain
   * of then/finally callbacks: an idle connection keeps one suspended function, not six pending
   * closures and their contexts (bench/RESULTS.md, wave 5: memory per idle connection).
   */
  async function run(conn: Connection, via: string | undefined, id: number, abort: AbortController): Promise<void> {
    const who = conn.remote.label;
    // Its bytes are read from its socket at each scrape: nothing per chunk here.
    const counted = metrics?.connectionAccepted(conn.stream);
    logger.opened({ id, client: who, text: via ? ` (via ${via})` : undefined, fields: { via } });
    const started = Date.now();
    try {
      let summary: ConnectionSummary | void;
      try {
        // After the connection is in `live` (the handler may finish at once).
        await undefined;
        summary = await opts.handle(conn, { id, signal: abort.signal });
      } catch (e) {
        const err = e as Error;
        if (counted) metrics!.connectionClosed(counted, 'error', Date.now() - started);
        logger.error('error', `${who}: ${err.message}`, { client: who, via, id, error: err.message });
        conn.stream.destroy();
        return;
      }
      const ms = Date.now() - started;
      if (counted) metrics!.connectionClosed(counted, summary?.reason ?? 'closed', ms, summary ?? undefined);
      if (summary) {
        logger.closed({ id, client: who, text: summary.text, bytesIn: summary.received, bytesOut: summary.sent, durationMs: ms, reason: summary.reason, fields: { via, ...summary.fields } });
      } else {
        logger.event('close', `closed ${who} after ${formatDuration(ms)}`, { client: who, via, id, duration_ms: ms });
      }
    } finally {
      live.delete(id);
      wakeWhenServed?.();
    }
  }

  if (opts.proxy && opts.address.scheme !== 'tcp' && opts.address.scheme !== 'tls') {
    // The header is read from a TCP connection (under TLS: before the handshake, which the runtime defers).
    throw new UsageError(`--accept-proxy-protocol works on TCP and TLS listeners, not ${opts.address.scheme}: ones`);
  }
  // Nobody is accepted before the allow file has been read (a bad one stops us here, exit 2).
  await opts.access?.ready;
  listener = await listenAddress(opts.address, {
    onConnection,
    deferOverlay: true,
    onAcceptError: (err) => logger.error('accept-error', `${formatAddress(opts.address)}: accept failed: ${err.message}`),
    log: logger,
    reusePort: opts.reusePort,
  });
  try {
    if (opts.metrics?.address) metricsServer = await serveMetrics(opts.metrics.metrics, opts.metrics.address, logger);
    await opts.allowLinks?.start();
  } catch (err) {
    await stopAccepting();
    await metricsServer?.close();
    throw err;
  }
  // Said once everything is up: a --metrics port already taken fails the start in one line.
  announceListening(logger, listener, opts.announce);
  opts.onListening?.(listener);

  // Run until stopped: by the signal, or once maxAccepts clients have been served.
  await new Promise<void>((resolve) => {
    if (opts.signal.aborted) return resolve();
    opts.signal.addEventListener('abort', () => resolve(), { once: true });
    wakeWhenServed = () => {
      if (opts.maxAccepts !== undefined && accepted >= opts.maxAccepts && live.size === 0) resolve();
    };
  });
  await stopAccepting();

  if (live.size > 0) {
    const drainMs = opts.drainTimeoutMs ?? 0;
    if (drainMs > 0) {
      logger.event('drain', `stopping: waiting up to ${formatDuration(drainMs)} for ${live.size} connection(s) to finish`, { live: live.size });
      const timer = new Promise<void>((resolve) => setTimeout(resolve, drainMs).unref());
      await Promise.race([Promise.all([...live.values()].map((c) => c.done)), timer]);
    }
    for (const c of live.values()) c.abort.abort();
    await Promise.all([...live.values()].map((c) => c.done));
  }
  await metricsServer?.close();
  return { accepted };
}
