/**
 * The table of transports. Each transport file registers itself here with its prefix, kind,
 * flags and help, so every mode can use every transport and --help cannot drift from the code.
 *
 * Overlays (tls:, the socks5:/http-connect: hops) ride on another transport's stream: connecting
 * opens the carrier and wraps it; listening opens the carrier and runs the overlay on each
 * accepted stream (or hands it to the listener runtime, which runs it after access control).
 */
import net from 'node:net';
import { addErrorWording, NetError, UsageError } from '../errors';
import { HopError, hopError, type HopAddress } from './hop';
import { Reply } from './socks-wire';
import { hasHostPort, parseHostPort } from './address';
import type { Address, AddressBase, Connection, DialOptions, Listener, BindOptions, Role, Transport, TransportFlag } from './types';

const transports = new Map<string, Transport>();

/** Adds a transport under its scheme and aliases. */
export function registerTransport(t: Transport): void {
  transports.set(t.scheme, t);
  for (const alias of t.aliases ?? []) transports.set(alias, t);
  if (t.describeError) addErrorWording(t.describeError);
}

/** Every registered transport (hops included), once each, in registration order. */
export function allTransports(): Transport[] {
  return [...new Set(transports.values())];
}

/** The transports an address can be written with (not the proxy hops), for --help and messages. */
export function listTransports(): Transport[] {
  return allTransports().filter((t) => !t.hop);
}

/** Every transport flag, with the transport that declares it. */
export function transportFlags(): Array<TransportFlag & { transport: Transport }> {
  return allTransports().flatMap((t) => (t.flags ?? []).map((f) => ({ ...f, transport: t })));
}

export function getTransport(scheme: string): Transport {
  const t = transports.get(scheme);
  if (!t) throw new UsageError(`unknown address type '${scheme}:' (known: ${[...transports.keys()].join(', ')})`);
  return t;
}

/**
 * Parses any address the user can type: "9090", "host:9090", "[::1]:9090" or "scheme:…".
 * A prefix that is a registered scheme selects that transport; anything else is HOST:PORT over TCP.
 */
export function parseAddress(text: string, role: Role): Address {
  const trimmed = text.trim();
  if (trimmed === '') throw new UsageError('missing address (e.g. 9090, 127.0.0.1:9090 or [::1]:9090)');
  const m = /^([a-z][a-z0-9+-]*):(.*)$/i.exec(trimmed);
  if (m) {
    const t = transports.get(m[1].toLowerCase());
    if (t && t.hop) throw new UsageError(`'${trimmed}' is a proxy hop, not an address: give it with --via`);
    if (t) return t.parse(m[2], role, trimmed) as Address;
    // "sctp:1.2.3.4:5" or "http://host": a scheme we do not have, not a host named "sctp"
    // ("localhost:9090" and "host:http" still go on as HOST:PORT).
    const ipv6 = net.isIPv6(trimmed) || net.isIPv6(trimmed.slice(0, trimmed.lastIndexOf(':')));
    if (!ipv6 && (m[2].includes(':') || m[2].startsWith('/'))) {
      const known = listTransports().map((x) => `${x.scheme}:`).join(', ');
      throw new UsageError(`malformed address '${trimmed}': unknown scheme '${m[1]}:' in '${trimmed}' (schemes: ${known})`);
    }
  }
  return { scheme: 'tcp', ...parseHostPort(trimmed, role, trimmed) } as Address;
}

/** Parses a proxy hop ("socks5:HOST:PORT", "http-connect:HOST:PORT"): what --via takes. */
export function parseHop(text: string): AddressBase {
  const m = /^([a-z][a-z0-9+-]*):(.*)$/i.exec(text.trim());
  const t = m ? transports.get(m[1].toLowerCase()) : undefined;
  if (!m || !t?.hop) {
    const hops = allTransports().filter((x) => x.hop).map((x) => `${x.scheme}:`).join(', ');
    throw new UsageError(`malformed proxy hop '${text}': expected one of ${hops} followed by HOST:PORT`);
  }
  return t.parse(m[2], 'connect', text.trim());
}

/** Human form of an address, e.g. "127.0.0.1:9090" or "unix:/tmp/s". */
export function formatAddress(addr: AddressBase): string {
  return getTransport(addr.scheme).format(addr);
}

/** The transport's kind: byte stream or datagrams. */
export function addressKind(addr: AddressBase): 'stream' | 'datagram' {
  return getTransport(addr.scheme).kind;
}

/** An address and the carriers under it, outermost first: tls:h:p → [tls:h:p, tcp:h:p]. */
function layers(addr: AddressBase): AddressBase[] {
  const out = [addr];
  for (let t = getTransport(addr.scheme); t.carrier; t = getTransport(out[out.length - 1].scheme)) out.push(t.carrier(out[out.length - 1]));
  return out;
}

/**
 * Opens an outgoing connection to an address of any stream transport: through its proxy hops
 * (addr.via) if any, then its own overlays (TLS) on top. A failed step closes what was opened.
 *
 * `opts.timeoutMs` bounds the whole way, not each step: the carrier's connect, every hop's
 * handshake and the overlays together (a chain of three slow hops must not take 3 × the
 * --connect-timeout). Each step gets what is left, and one timer aborts whichever step is running
 * when the time is up, even one that keeps no timeout of its own.
 */
export async function connectAddress(addr: AddressBase, opts: DialOptions = {}): Promise<Connection> {
  const hops = addr.via ?? [];
  const path = hops.length > 0 ? [...hops, { ...addr, via: undefined }] : [addr];
  const first = layers(path[0]);
  const base = first[first.length - 1];
  const t = getTransport(base.scheme);
  if (!t.connect) throw new UsageError(`${formatAddress(addr)}: cannot connect to a ${addr.scheme}: address here`);
  // One step (a plain TCP connect): its own timeout is the whole budget already.
  if (path.length === 1 && first.length === 1) return t.connect(base, opts);
  const budget = opts.timeoutMs !== undefined && opts.timeoutMs > 0 ? opts.timeoutMs : 0;
  const deadline = Date.now() + budget;
  const expiry = new AbortController();
  const timer = budget > 0 ? setTimeout(() => expiry.abort(), budget) : undefined;
  const signal = budget === 0 ? opts.signal : opts.signal ? AbortSignal.any([opts.signal, expiry.signal]) : expiry.signal;
  const stepOptions = (): DialOptions => ({ ...opts, signal, timeoutMs: budget > 0 ? Math.max(1, deadline - Date.now()) : opts.timeoutMs });
  // A failure on the way through the hops is named after the hop it happened at; once the time
  // is up, whatever the step said (aborted, its own timeout), it is the chain's timeout.
  const named = (err: unknown, i: number): unknown => {
    // (A step's own timer, given what was left, may fire a moment before ours.)
    const timedOut = budget > 0 && !opts.signal?.aborted && (expiry.signal.aborted || ((err as NetError).code === 'ETIMEDOUT' && Date.now() >= deadline - 20));
    if (timedOut) {
      const within = `no answer within ${budget / 1000} s (the connect timeout covers the whole chain)`;
      if (i < hops.length) return hopError(hops[i] as HopAddress, i + 1, within, Reply.ttlExpired, 'ETIMEDOUT');
      return new NetError(`${formatAddress(addr)}: ${within}`, 'ETIMEDOUT');
    }
    return i < hops.length && !(err instanceof HopError) ? hopError(hops[i] as HopAddress, i + 1, (err as Error).message, Reply.generalFailure, (err as NetError).code) : err;
  };
  let conn: Connection;
  try {
    try {
      conn = await t.connect(base, stepOptions());
    } catch (err) {
      throw named(err, 0);
    }
    for (let i = 0; i < path.length; i++) {
      const next = path[i + 1];
      let destination: { host: string; port: number } | undefined;
      if (next) {
        const end = layers(next).pop()!;
        if (!hasHostPort(end)) {
          conn.stream.destroy();
          throw new UsageError(`${formatAddress(next)}: a proxy hop can only reach HOST:PORT addresses`);
        }
        destination = { host: end.host, port: end.port };
      }
      // Carriers first (a hop reached over TLS), the address's own layer last.
      for (const layer of layers(path[i]).slice(0, -1).reverse()) {
        const wrap = getTransport(layer.scheme).wrap!;
        const inner = conn;
        try {
          conn = await wrap(inner, layer, { ...stepOptions(), destination: layer === path[i] ? destination : undefined, hop: i < hops.length ? i + 1 : undefined });
        } catch (err) {
          inner.stream.destroy();
          throw named(err, i);
        }
      }
    }
    return conn;
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/**
 * Opens a listener on an address of any stream transport. For an overlay (TLS) the carrier is
 * listened on; the overlay runs on each accepted stream, or is returned as Listener.overlay
 * when the caller defers it (the listener runtime runs it after access control).
 */
export async function listenAddress(addr: AddressBase, opts: BindOptions): Promise<Listener> {
  const t = getTransport(addr.scheme);
  if (t.listen) return t.listen(addr, opts);
  if (!t.carrier || !t.acceptor) throw new UsageError(`${formatAddress(addr)}: cannot listen on a ${addr.scheme}: address`);
  const overlay = await t.acceptor(addr, { log: opts.log });
  const never = new AbortController().signal;
  const onConnection = opts.deferOverlay
    ? opts.onConnection
    : (conn: Connection) => {
        overlay.accept(conn, never).then(opts.onConnection, (err: Error) => {
          opts.log?.event('overlay-error', err.message, { client: conn.remote.label });
          conn.stream.destroy();
        });
      };
  const inner = await listenAddress(t.carrier(addr), { ...opts, onConnection });
  const { scheme: _scheme, via: _via, ...bound } = inner.address;
  const address = { ...addr, ...bound } as Address;
  return { address, label: t.format(address), overlay: opts.deferOverlay ? overlay : undefined, close: () => inner.close() };
}
