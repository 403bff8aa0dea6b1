/**
 * One proxy client, from its first byte to its log line. The first byte tells the protocol
 * apart (gost's "auto"): 0x05 SOCKS5, 0x04 SOCKS4/4a, an ASCII capital an HTTP method (CONNECT,
 * GET …); anything else is reset. SOCKS goes through the hand-written handshake
 * (socks-server.ts), HTTP through node:http (http-proxy.ts); both reach their destination through
 * the Dialer (map, rules, resolution, --via hops) and join it with the shared relay.
 */
import type { Connection } from '../endpoints/types';
import type { Logger, LogFields } from '../log';
import { relay, resetStream, type RelayResult } from '../relay';
import type { ConnectionContext, ConnectionSummary } from '../runtime/listener';
import type { ProxyAuth } from './auth';
import { DialFailed, type Dialer, type Route } from './dialer';
import { endGently, HttpProxy, type HttpOutcome } from './http-proxy';
import { HandshakeEnded, HandshakeReader } from '../endpoints/handshake-reader';
import { readSocksRequest, socks4Reply, socks5Reply, SocksRefused, type SocksRequest } from './socks-server';
import { Reply, SOCKS4, SOCKS5, type ReplyCode } from '../endpoints/socks-wire';
import { UdpAssociation } from './udp-associate';
import type { Metrics } from '../metrics';

export interface ProxyHandlerOptions {
  auth: ProxyAuth;
  dialer: Dialer;
  logger: Logger;
  /** After one side's EOF, ms the other direction may take. */
  closeWaitMs: number;
  /** Close a tunnel after this many ms without traffic. */
  idleTimeoutMs?: number;
  /** Time a client has to complete its handshake (SOCKS) or send its first request head (HTTP). */
  handshakeTimeoutMs: number;
  /** --metrics. */
  metrics?: Metrics;
}

/** Default time to complete a handshake. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 30_000;

export class ProxyHandler {
  private readonly http: HttpProxy;

  constructor(private readonly opts: ProxyHandlerOptions) {
    this.http = new HttpProxy({
      auth: opts.auth,
      dialer: opts.dialer,
      closeWaitMs: opts.closeWaitMs,
      idleTimeoutMs: opts.idleTimeoutMs,
      headTimeoutMs: opts.handshakeTimeoutMs,
      onAuthFailed: (client, user) => this.authFailed(client, user),
      onRequest: (r) => {
        const fields = routeFields(r.route);
        const mapped = r.route?.mappedTo ? ` (mapped to ${r.route.mappedTo})` : r.route?.resolved ? ` (${r.route.resolved})` : '';
        this.opts.logger.event(
          'request',
          `${r.client}${r.user ? ` (user ${printable(r.user)})` : ''}: ${r.method} ${printable(r.url)}${mapped} → ${r.status}, ${r.received} bytes in, ${r.sent} bytes out, ${r.durationMs} ms (${r.reason})`,
          { client: r.client, protocol: 'http', user: r.user, method: r.method, url: r.url, status: r.status, ...fields, bytes_in: r.received, bytes_out: r.sent, duration_ms: r.durationMs, reason: r.reason, error: r.error },
        );
      },
    });
  }

  /**
   * Serves one accepted client; resolves with its log line's contents when it is over. The one
   * place where every client connection ends, whatever its protocol: counted here for --metrics.
   */
  async handle(conn: Connection, ctx: ConnectionContext): Promise<ConnectionSummary> {
    const summary = await this.serve(conn, ctx);
    this.opts.metrics?.proxyTunnelEnded(String(summary.fields?.protocol ?? 'unknown'), proxyOutcome(summary.reason));
    return summary;
  }

  private async serve(conn: Connection, ctx: ConnectionContext): Promise<ConnectionSummary> {
    const stream = conn.stream;
    const reader = new HandshakeReader(stream, { timeoutMs: this.opts.handshakeTimeoutMs, signal: ctx.signal });
    let first: number;
    try {
      first = await reader.byte();
    } catch (err) {
      reader.release();
      stream.destroy();
      return ended(err, 'unknown');
    }
    if (first === SOCKS5 || first === SOCKS4) return this.socks(conn, ctx, reader, first);
    if (first >= 0x41 && first <= 0x5a) {
      reader.unshift(Buffer.from([first]));
      reader.release();
      return httpSummary(await this.http.handle(conn, ctx.signal));
    }
    reader.release();
    // Neither SOCKS nor HTTP: a reset tells a confused client (or a scanner) at once.
    resetStream(stream);
    return { received: 1, sent: 0, reason: 'not a proxy request', fields: { protocol: 'unknown', first_byte: first } };
  }

  private async socks(conn: Connection, ctx: ConnectionContext, reader: HandshakeReader, version: number): Promise<ConnectionSummary> {
    const stream = conn.stream;
    const protocol = version === SOCKS5 ? 'socks5' : 'socks4';
    let req: SocksRequest;
    try {
      req = await readSocksRequest(reader, stream, version, this.opts.auth);
    } catch (err) {
      reader.release();
      if (err instanceof SocksRefused) {
        if (err.reason === 'auth failed') this.authFailed(conn.remote.label, err.user);
        endGently(stream, err.reply);
        return { received: 0, sent: err.reply.length, reason: err.reason, text: ` (${protocol})`, fields: { protocol, user: err.user, error: err.message } };
      }
      stream.destroy();
      return ended(err, protocol);
    }
    reader.release();
    const fail = (code: ReplyCode) => (req.version === 5 ? socks5Reply(code) : socks4Reply(false));
    const who = { protocol: req.command === 'udp-associate' ? 'socks5-udp' : protocol, user: req.user };
    if (req.command === 'udp-associate') return this.udpAssociate(conn, ctx, req, who);

    let dialed;
    try {
      dialed = await this.opts.dialer.dial(req.destination.host, req.destination.port, ctx.signal);
    } catch (err) {
      const f = err instanceof DialFailed ? err : new DialFailed((err as Error).message, 'unreachable', Reply.generalFailure);
      endGently(stream, fail(f.reply));
      const route = { requested: formatDest(req) };
      return { received: 0, sent: 0, reason: f.reason, text: `${describeTunnel(who, route)} [${f.message}]`, fields: { ...who, ...routeFields(route), error: f.message } };
    }
    const route: Route = { requested: dialed.requested, mappedTo: dialed.mappedTo, resolved: dialed.resolved };
    if (stream.destroyed) {
      dialed.conn.stream.destroy();
      return { received: 0, sent: 0, reason: 'reset', text: describeTunnel(who, route), fields: { ...who, ...routeFields(route), error: 'the client went away while we connected' } };
    }
    const local = dialed.conn.local;
    stream.write(req.version === 5 ? socks5Reply(Reply.succeeded, local.port === undefined ? '0.0.0.0' : local.address, local.port ?? 0) : socks4Reply(true));
    const result: RelayResult = await relay(stream, dialed.conn.stream, {
      closeWait: this.opts.closeWaitMs,
      idleTimeoutMs: this.opts.idleTimeoutMs,
      signal: ctx.signal,
      propagateReset: true,
    });
    return {
      received: result.aToB,
      sent: result.bToA,
      reason: result.reason === 'aborted' ? 'drain timeout' : result.reason,
      text: describeTunnel(who, route),
      fields: { ...who, ...routeFields(route), error: result.error?.message },
    };
  }

  private async udpAssociate(conn: Connection, ctx: ConnectionContext, req: SocksRequest, who: { protocol: string; user?: string }): Promise<ConnectionSummary> {
    const stream = conn.stream;
    const route = { requested: `udp relay for ${formatDest(req)}` };
    if (this.opts.dialer.viaHops) {
      endGently(stream, socks5Reply(Reply.commandNotSupported));
      return { received: 0, sent: 0, reason: 'command not supported', text: describeTunnel(who, route), fields: { ...who, error: 'UDP ASSOCIATE cannot go through --via hops' } };
    }
    let assoc: UdpAssociation;
    try {
      assoc = await UdpAssociation.open(conn, req.destination, this.opts.dialer, this.opts.logger);
    } catch (err) {
      endGently(stream, socks5Reply(Reply.generalFailure));
      return { received: 0, sent: 0, reason: 'error', text: describeTunnel(who, route), fields: { ...who, error: (err as Error).message } };
    }
    const bound = assoc.bound;
    stream.write(socks5Reply(Reply.succeeded, bound.host, bound.port));
    const r = await assoc.run(ctx.signal);
    return {
      received: r.sent,
      sent: r.received,
      reason: 'eof',
      text: describeTunnel(who, { requested: `udp relay on port ${bound.port}` }),
      fields: { ...who, udp_port: bound.port, datagrams_out: r.datagramsOut, datagrams_in: r.datagramsIn, datagrams_dropped: r.dropped },
    };
  }

  /** Every failed login, SOCKS or HTTP (one HTTP connection may fail several): logged and counted. */
  private authFailed(client: string, user: string | undefined): void {
    this.opts.metrics?.connectionRefused('auth');
    this.opts.logger.warn('auth-failed', `failed login from ${client}${user !== undefined ? ` as user '${printable(user)}'` : ''}`, { client, user });
  }
}

/** How a proxy connection ended, as the metrics label it: the log's words, from a fixed list. */
const OUTCOMES = new Set([
  'eof',
  'reset',
  'idle',
  'close-wait',
  'error',
  'drain timeout',
  'refused upstream',
  'denied by rule',
  'not mapped',
  'unreachable',
  'upstream timeout',
  'upstream error',
  'hop failed',
  'auth failed',
  'bad request',
  'command not supported',
  'handshake timeout',
  'closed during handshake',
  'not a proxy request',
]);

/** A connection's end reason as a metrics label: anything outside the list is 'other' (bounded series). */
export function proxyOutcome(reason: string): string {
  return OUTCOMES.has(reason) ? reason : 'other';
}

/** " (socks5, user alice) → app.test:80 (mapped to 127.0.0.1:8000)". */
function describeTunnel(who: { protocol: string; user?: string }, route: Route): string {
  const user = who.user ? `, user ${printable(who.user)}` : '';
  const where = route.mappedTo ? ` (mapped to ${route.mappedTo})` : route.resolved && route.resolved !== route.requested ? ` (${route.resolved})` : '';
  return ` (${who.protocol}${user}) → ${route.requested}${where}`;
}

function routeFields(route: Route | undefined): LogFields {
  return { destination: route?.requested, mapped_to: route?.mappedTo, resolved: route?.resolved };
}

function formatDest(req: SocksRequest): string {
  const { host, port } = req.destination;
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The summary of a connection whose handshake never completed. */
function ended(err: unknown, protocol: string): ConnectionSummary {
  const why = err instanceof HandshakeEnded ? err.why : 'error';
  const reason = why === 'timeout' ? 'handshake timeout' : why === 'reset' ? 'reset' : why === 'aborted' ? 'drain timeout' : 'closed during handshake';
  return { received: 0, sent: 0, reason, fields: { protocol, error: (err as Error).message } };
}

function httpSummary(o: HttpOutcome): ConnectionSummary {
  const who = { protocol: o.protocol, user: o.user };
  return {
    received: o.received,
    sent: o.sent,
    reason: o.reason,
    text: o.route ? `${describeTunnel(who, o.route)}${o.error && o.reason !== 'eof' ? ` [${printable(o.error)}]` : ''}` : o.requests > 0 ? ` (http, ${o.requests} request${o.requests === 1 ? '' : 's'})` : ` (${o.protocol})`,
    fields: { ...who, ...routeFields(o.route), requests: o.protocol === 'http' ? o.requests : undefined, error: o.error },
  };
}

/** A user-supplied string made safe for one log line: control characters escaped, length capped. */
export function printable(s: string, max = 100): string {
  const cut = s.length > max ? s.slice(0, max) + '…' : s;
  return cut.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
