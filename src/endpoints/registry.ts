/**
 * The table of transports. Each transport file registers itself here with its prefix, kind and
 * help, so every mode can use every transport and --help cannot drift from the code.
 */
import net from 'node:net';
import { UsageError } from '../errors';
import { parseHostPort, type Address, type Role } from './address';
import type { Transport, Connection, ConnectOptions, Listener, ListenOptions } from './types';

const transports = new Map<string, Transport<any>>();

/** Adds a transport under its scheme and aliases. */
export function registerTransport<A extends Address>(t: Transport<A>): void {
  transports.set(t.scheme, t);
  for (const alias of t.aliases ?? []) transports.set(alias, t);
}

/** Every registered transport, once each, in registration order. */
export function listTransports(): Transport[] {
  return [...new Set(transports.values())];
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
    if (t) return t.parse(m[2], role, trimmed);
    // "sctp:1.2.3.4:5" or "http://host": a scheme we do not have, not a host named "sctp"
    // ("localhost:9090" and "host:http" still go on as HOST:PORT).
    const ipv6 = net.isIPv6(trimmed) || net.isIPv6(trimmed.slice(0, trimmed.lastIndexOf(':')));
    if (!ipv6 && (m[2].includes(':') || m[2].startsWith('/'))) {
      const known = listTransports().map((x) => `${x.scheme}:`).join(', ');
      throw new UsageError(`malformed address '${trimmed}': unknown scheme '${m[1]}:' in '${trimmed}' (schemes: ${known})`);
    }
  }
  return { scheme: 'tcp', ...parseHostPort(trimmed, role, trimmed) };
}

/** Human form of an address, e.g. "127.0.0.1:9090" or "unix:/tmp/s". */
export function formatAddress(addr: Address): string {
  return getTransport(addr.scheme).format(addr);
}

/** Opens an outgoing connection to an address of any stream transport. */
export function connectAddress(addr: Address, opts: ConnectOptions = {}): Promise<Connection> {
  const t = getTransport(addr.scheme);
  if (!t.connect) throw new UsageError(`${formatAddress(addr)}: cannot connect to a ${addr.scheme} address here`);
  return t.connect(addr, opts);
}

/** Opens a listener on an address of any stream transport. */
export function listenAddress(addr: Address, opts: ListenOptions): Promise<Listener> {
  const t = getTransport(addr.scheme);
  if (!t.listen) throw new UsageError(`${formatAddress(addr)}: cannot listen on a ${addr.scheme} address here`);
  return t.listen(addr, opts);
}
