/**
 * `sockcat forward LISTEN TARGET`: a port relay, what `socat TCP-LISTEN:p,fork TCP:host:p`,
 * rinetd or the local side of `ssh -L` do. Every accepted client gets its own upstream
 * connection to TARGET, and the shared relay joins the two: backpressure, half-close each way
 * (a reply sent after the client's FIN still arrives), a reset passed on as a reset.
 *
 * Speed matters here (it is benchmarked against socat): nothing is allocated or logged per
 * chunk unless -x asks for a hex dump, sockets are joined directly (no extra stream layers),
 * and TCP_NODELAY is set on both sides by the TCP transport.
 */
import { addressKind, connectAddress, formatAddress, type Address, type Connection } from '../endpoints/index';
import { hexDumper } from '../hexdump';
import type { Logger } from '../log';
import { relay, resetStream, DEFAULT_CLOSE_WAIT_MS, type RelayResult, type Side } from '../relay';
import type { ConnectionContext, ConnectionSummary } from '../runtime/listener';
import { openServer, type ServerModeOptions } from '../runtime/server';
import { upstreamFailureCause, type Metrics } from '../metrics';
import { encodeProxyHeader, type ProxyVersion } from '../proxy-protocol';
import { runUdpForward } from './udp-forward';
import type { ModeIO } from '../io';

/** Default --connect-timeout: a client must not wait minutes for an upstream that never answers. */
export const DEFAULT_FORWARD_CONNECT_TIMEOUT_MS = 10_000;
/** Default --drain-timeout: on SIGTERM/SIGINT, live connections get this long to finish. */
export const DEFAULT_FORWARD_DRAIN_TIMEOUT_MS = 10_000;
/** Descriptors per client: the client's socket and its upstream. */
const FDS_PER_CLIENT = 2;

export interface ForwardOptions extends ServerModeOptions {
  /** Where clients connect. */
  listen: Address;
  /** Where each client's upstream connection goes. */
  target: Address;
  /** Give up connecting upstream after this many ms (default 10 s). */
  connectTimeoutMs?: number;
  /** After one side's EOF, ms the other direction may take (default 2 s). */
  closeWaitMs?: number;
  /** Close a connection after this many ms without traffic either way. */
  idleTimeoutMs?: number;
  /** Send a PROXY protocol header upstream before the client's bytes. */
  proxyProtocol?: ProxyVersion;
  /** UDP only: forget a silent client (and close its upstream socket) after this many ms. */
  udpIdleMs?: number;
  hex?: boolean;
}

/** Runs the relay until stopped; resolves with the exit code (0 after a graceful stop). Rejects if LISTEN cannot be opened. */
export async function runForward(opts: ForwardOptions, io: ModeIO): Promise<number> {
  if (addressKind(opts.listen) === 'datagram' || addressKind(opts.target) === 'datagram') {
    return runUdpForward(opts, io);
  }
  const server = await openServer({ ...opts, address: opts.listen }, io, { mode: 'forward', fdsPerClient: FDS_PER_CLIENT });
  if (server.role === 'done') return server.exitCode;
  const { logger } = server;
  const forwarder = new Forwarder(opts, logger, io.stderr, server.metrics);
  await server.serve({
    drainTimeoutMs: opts.drainTimeoutMs ?? DEFAULT_FORWARD_DRAIN_TIMEOUT_MS,
    onListening: (listener) => logger.event('forwarding', `forwarding ${listener.label} → ${forwarder.targetLabel}`, { address: listener.label, target: forwarder.targetLabel }),
    handle: (conn, ctx) => forwarder.handle(conn, ctx),
  });
  return 0;
}

/** Serves each client (handle() runs once per connection) and holds what all of them share. */
class Forwarder {
  readonly targetLabel: string;
  private readonly text: string;
  private readonly upstreamWarnings: UpstreamWarnings;

  constructor(
    private readonly opts: ForwardOptions,
    private readonly logger: Logger,
    private readonly stderr: NodeJS.WritableStream,
    private readonly metrics?: Metrics,
  ) {
    this.targetLabel = formatAddress(opts.target);
    this.text = ` → ${this.targetLabel}`;
    this.upstreamWarnings = new UpstreamWarnings(logger);
  }

  async handle(client: Connection, ctx: ConnectionContext): Promise<ConnectionSummary> {
    let upstream: Connection;
    try {
      upstream = await connectAddress(this.opts.target, {
        timeoutMs: this.opts.connectTimeoutMs ?? DEFAULT_FORWARD_CONNECT_TIMEOUT_MS,
        signal: ctx.signal,
      });
    } catch (err) {
      return this.upstreamFailed(client, err as Error & { code?: string });
    }
    if (this.opts.proxyProtocol) {
      // Written before the relay starts, so it reaches the backend ahead of every client byte.
      upstream.stream.write(encodeProxyHeader(this.opts.proxyProtocol, client.remote, client.local));
    }
    const result = await relay(client.stream, upstream.stream, {
      closeWait: this.opts.closeWaitMs ?? DEFAULT_CLOSE_WAIT_MS,
      idleTimeoutMs: this.opts.idleTimeoutMs,
      signal: ctx.signal,
      propagateReset: true,
      onEof: (side) =>
        side === 'a'
          ? this.logger.halfClosed('client', `${client.remote.label} closed its side`, { client: client.remote.label, id: ctx.id })
          : this.logger.halfClosed('upstream', `${this.targetLabel} closed its side (for ${client.remote.label})`, { client: client.remote.label, id: ctx.id, upstream: upstream.remote.label }),
      onData: this.opts.hex ? hexDumper(this.stderr, { a: `< ${client.remote.label}`, b: `> ${this.targetLabel}` }) : undefined,
    });
    return this.summary(result, upstream);
  }

  /** The upstream cannot be reached: the client is reset at once (as if TARGET itself had refused it). */
  private upstreamFailed(client: Connection, err: Error & { code?: string }): ConnectionSummary {
    // A reset, not a FIN: the client (or a forward in front of us) learns the connection failed
    // instead of reading what looks like a clean, empty reply.
    resetStream(client.stream);
    const reason = err.code === 'ECONNREFUSED' ? 'refused upstream' : err.code === 'ETIMEDOUT' ? 'upstream timeout' : 'upstream unreachable';
    this.upstreamWarnings.report(err.message);
    this.metrics?.upstreamConnectFailed(upstreamFailureCause(err));
    return { received: 0, sent: 0, reason, text: this.text, fields: { target: this.targetLabel, error: err.message } };
  }

  private summary(r: RelayResult, upstream: Connection): ConnectionSummary {
    return {
      received: r.aToB,
      sent: r.bToA,
      // The only abort a forward sees is the end of the drain after SIGTERM/SIGINT.
      reason: r.reason === 'aborted' ? 'drain timeout' : r.reason,
      text: this.text,
      fields: {
        target: this.targetLabel,
        upstream: upstream.remote.label,
        upstream_local: upstream.local.label,
        first_eof: sideName(r.firstEof),
        error_side: sideName(r.errorSide),
        error: r.error?.message,
      },
    };
  }
}

const sideName = (s: Side | undefined) => (s === undefined ? undefined : s === 'a' ? 'client' : 'upstream');

/**
 * An unreachable upstream is worth telling the user even without -v (they may have typed the
 * wrong port), with its cause in words, but not once per client: a new cause is printed at once,
 * a repeated one at most every 10 s. JSON logs carry the cause in each close event instead.
 */
class UpstreamWarnings {
  private last = '';
  private lastAt = 0;
  constructor(private readonly logger: Logger) {}

  report(message: string): void {
    if (this.logger.format === 'json') return;
    const now = Date.now();
    if (message === this.last && now - this.lastAt < 10_000) return;
    this.last = message;
    this.lastAt = now;
    this.logger.warn('upstream', message);
  }
}
