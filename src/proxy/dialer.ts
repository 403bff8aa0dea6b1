/**
 * Where a proxy request goes, and the connection to it: the one path every SOCKS and HTTP
 * request takes after its handshake.
 *
 *   1. the name as asked → --map (a mapped name never reaches DNS); --only-mapped refuses the rest
 *   2. --allow-dest/--deny-dest on the names (as asked, as mapped)
 *   3. resolution, then the rules again on every address, keeping only those that pass
 *   4. a connection to the first address that answers, directly or through the --via hops
 *
 * A refusal or failure is a DialFailed carrying the SOCKS reply code, the HTTP status and the
 * log reason that fit it.
 */
import dns from 'node:dns';
import net from 'node:net';
import { formatHostPort } from '../endpoints/address';
import { connectTcpSocket, socketConnection } from '../endpoints/tcp';
import type { Connection } from '../endpoints/types';
import { DestRules } from './dest-rules';
import { connectAddress, type TcpAddress } from '../endpoints/index';
import { HopError, type HopAddress } from '../endpoints/hop';
import type { NameMap } from './names';
import { Reply, type ReplyCode } from '../endpoints/socks-wire';
import type { Metrics, UpstreamFailureCause } from '../metrics';

/** How a refused or failed request shows in the log ("how it ended"). */
export type DialFailure = 'denied by rule' | 'not mapped' | 'refused upstream' | 'unreachable' | 'upstream timeout' | 'hop failed' | 'aborted';

export class DialFailed extends Error {
  constructor(
    message: string,
    readonly reason: DialFailure,
    readonly reply: ReplyCode,
    /** Set when the name did not resolve ('unreachable' then means DNS, for --metrics). */
    readonly dns = false,
  ) {
    super(message);
    this.name = 'DialFailed';
  }

  /** For --metrics: refused by a rule (the client's fault, not the upstream's), or why connecting failed. */
  get metricsCause(): { rule: true } | { rule: false; cause: UpstreamFailureCause } | undefined {
    switch (this.reason) {
      case 'denied by rule':
      case 'not mapped':
        return { rule: true };
      case 'refused upstream':
        return { rule: false, cause: 'refused' };
      case 'upstream timeout':
        return { rule: false, cause: 'timeout' };
      case 'unreachable':
        return { rule: false, cause: this.dns ? 'dns' : 'unreachable' };
      case 'hop failed':
        return { rule: false, cause: 'hop' };
      case 'aborted':
        return undefined;
    }
  }

  /** The HTTP status an HTTP proxy answers with. */
  get httpStatus(): number {
    if (this.reason === 'denied by rule' || this.reason === 'not mapped') return 403;
    if (this.reason === 'upstream timeout') return 504;
    return 502;
  }
}

/** Where a request was sent, for the log line. */
export interface Route {
  /** "app.test:80": the destination as the client asked. */
  requested: string;
  /** "127.0.0.1:8000" when --map sent it elsewhere. */
  mappedTo?: string;
  /** The address connected to (or handed to the first hop). */
  resolved?: string;
}

export interface Dialed extends Route {
  conn: Connection;
}

export interface DialerOptions {
  map?: NameMap;
  onlyMapped?: boolean;
  rules?: DestRules;
  hops?: readonly HopAddress[];
  /** Give up connecting after this many ms (per request, all addresses and hops together). */
  connectTimeoutMs: number;
  /** --metrics: rule refusals and upstream connect failures are counted here, where every request dials. */
  metrics?: Metrics;
}

/** How many of a name's addresses are tried before giving up. */
const MAX_ADDRESSES_TRIED = 4;

export class Dialer {
  private readonly rules: DestRules;

  constructor(private readonly opts: DialerOptions) {
    this.rules = opts.rules ?? new DestRules();
  }

  get viaHops(): boolean {
    return (this.opts.hops?.length ?? 0) > 0;
  }

  /**
   * Steps 1-3 of the header: where host:port really goes and the addresses it may use (empty when
   * the name is left for the first hop to resolve). Throws DialFailed.
   */
  async route(host: string, port: number): Promise<{ route: Route; host: string; port: number; addresses: string[] }> {
    const requested = formatHostPort(host, port);
    const mapped = this.opts.map?.resolve(host, port);
    if (!mapped && this.opts.onlyMapped) throw new DialFailed(`${requested} is not a mapped name (--only-mapped)`, 'not mapped', Reply.notAllowed);
    const target = mapped ? { host: mapped.host, port: mapped.port } : { host, port };
    const route: Route = { requested, mappedTo: mapped?.label };
    // The common case, no destination rules: nothing to check, no lookup for an address.
    if (!this.rules.active && net.isIP(target.host)) return { route, ...target, addresses: [target.host] };
    const names = mapped ? [host, mapped.host] : [host];
    const byName = this.rules.checkNames(names);
    if (!byName.ok) throw new DialFailed(byName.reason, 'denied by rule', Reply.notAllowed);

    let addresses: string[];
    if (net.isIP(target.host)) addresses = [target.host];
    else if (this.viaHops && !this.rules.active) addresses = [];
    else {
      try {
        addresses = (await dns.promises.lookup(target.host, { all: true, verbatim: true })).map((a) => a.address);
      } catch (err) {
        // Through hops, a name only the far side knows goes on as a name (the hop resolves it):
        // only name rules could judge it, so an allow list must have named it.
        if (this.viaHops) {
          if (this.rules.hasAllowRules && !byName.allowedByName) throw new DialFailed(`${target.host} does not resolve here, so --allow-dest cannot check its address`, 'denied by rule', Reply.notAllowed);
          return { route, ...target, addresses: [] };
        }
        const code = (err as NodeJS.ErrnoException).code;
        const why = code === 'EAI_AGAIN' ? 'name lookup failed (DNS not reachable right now)' : 'name not found';
        throw new DialFailed(`${target.host}: ${why}`, 'unreachable', Reply.hostUnreachable, true);
      }
    }
    const allowed: string[] = [];
    let firstRefusal: string | undefined;
    for (const ip of addresses) {
      const verdict = this.rules.checkAddress(ip, byName.allowedByName);
      if (verdict.ok) allowed.push(ip);
      else firstRefusal ??= `${ip}${net.isIP(target.host) ? '' : ` (${target.host})`} ${verdict.reason}`;
    }
    if (addresses.length > 0 && allowed.length === 0) throw new DialFailed(firstRefusal!, 'denied by rule', Reply.notAllowed);
    return { route, ...target, addresses: allowed };
  }

  /** Routes and connects; throws DialFailed. Every SOCKS and HTTP request's upstream goes through here. */
  async dial(host: string, port: number, signal?: AbortSignal): Promise<Dialed> {
    const metrics = this.opts.metrics;
    if (!metrics) return this.routeAndConnect(host, port, signal);
    try {
      return await this.routeAndConnect(host, port, signal);
    } catch (err) {
      const m = err instanceof DialFailed ? err.metricsCause : { rule: false as const, cause: upstreamFailureCauseOf(err as Error) };
      if (m?.rule) metrics.connectionRefused('rule');
      else if (m) metrics.upstreamConnectFailed(m.cause);
      throw err;
    }
  }

  private async routeAndConnect(host: string, port: number, signal?: AbortSignal): Promise<Dialed> {
    const { route, host: targetHost, port: targetPort, addresses } = await this.route(host, port);
    const timeoutMs = this.opts.connectTimeoutMs;
    if (this.viaHops) {
      const next = addresses[0] ?? targetHost;
      try {
        // The connect timeout bounds the whole chain (connectAddress, src/endpoints/registry.ts).
        const target: TcpAddress = { scheme: 'tcp', host: next, port: targetPort, hostGiven: true, via: [...this.opts.hops!] };
        const conn = await connectAddress(target, { timeoutMs, signal });
        return { ...route, resolved: `${formatHostPort(next, targetPort)} via ${this.opts.hops!.map((h) => formatHostPort(h.host, h.port)).join(', ')}`, conn };
      } catch (err) {
        if (err instanceof HopError) {
          const reason: DialFailure = err.reply === Reply.connectionRefused ? 'refused upstream' : err.reply === Reply.ttlExpired ? 'upstream timeout' : err.reply === Reply.hostUnreachable || err.reply === Reply.networkUnreachable ? 'unreachable' : 'hop failed';
          throw new DialFailed(err.message, reason, err.reply);
        }
        throw err;
      }
    }
    const deadline = Date.now() + timeoutMs;
    let last: DialFailed | undefined;
    for (const ip of addresses.slice(0, MAX_ADDRESSES_TRIED)) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      try {
        const socket = await connectTcpSocket({ host: ip, port: targetPort, hostGiven: true }, { timeoutMs: left, signal });
        // Lazy addresses: the proxy reads only `local` (the BND address of its reply), while open.
        return { ...route, resolved: formatHostPort(ip, targetPort), conn: socketConnection(socket, true) };
      } catch (err) {
        last = failureOf(err as NodeJS.ErrnoException, formatHostPort(ip, targetPort));
        if (signal?.aborted) break;
      }
    }
    throw last ?? new DialFailed(`connection to ${formatHostPort(targetHost, targetPort)} timed out`, 'upstream timeout', Reply.ttlExpired);
  }
}

/** The cause of an error that is not a DialFailed (a hop's own failure). */
function upstreamFailureCauseOf(err: Error & { code?: string }): UpstreamFailureCause {
  return err instanceof HopError ? 'hop' : 'other';
}

/** A connect error as a DialFailed with the reply code RFC 1928 has for it. */
function failureOf(err: NodeJS.ErrnoException, where: string): DialFailed {
  switch (err.code) {
    case 'ECONNREFUSED':
      return new DialFailed(`connection to ${where} refused`, 'refused upstream', Reply.connectionRefused);
    case 'EHOSTUNREACH':
      return new DialFailed(`host unreachable: ${where}`, 'unreachable', Reply.hostUnreachable);
    case 'ENETUNREACH':
      return new DialFailed(`network unreachable: ${where}`, 'unreachable', Reply.networkUnreachable);
    case 'ETIMEDOUT':
      return new DialFailed(`connection to ${where} timed out`, 'upstream timeout', Reply.ttlExpired);
    default:
      return new DialFailed(err.message, err.message.includes('aborted') ? 'aborted' : 'unreachable', Reply.generalFailure);
  }
}
