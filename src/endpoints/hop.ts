/**
 * What the proxy hops (socks5:, http-connect:) share: their address syntax
 * ([USER:PASS@]HOST:PORT), the carrier that reaches the proxy (TCP, or TLS for socks5+tls:// and
 * https:// hops), and the error that names the hop ("hop 2 (sas1:1080): …").
 */
import { NetError, UsageError } from '../errors';
import { formatHostPort, parseHostPort, type HostPortAddress } from './address';
import type { ReplyCode } from './socks-wire';
import type { TlsSettings } from './tls';
import type { AddressBase, Role } from './types';

/** How long a proxy may take to answer its handshake when the caller gives no timeout. */
export const HOP_REPLY_TIMEOUT_MS = 10_000;

export interface HopAddress extends HostPortAddress {
  user?: string;
  password?: string;
  /** The hop itself is reached over TLS (socks5+tls://, https://), with these settings. */
  tls?: TlsSettings;
}

/** "[USER:PASS@]HOST:PORT" after the scheme. */
export function parseHopAddress(scheme: string, rest: string, role: Role, original: string): HopAddress {
  const at = rest.lastIndexOf('@');
  const hp = parseHostPort(at >= 0 ? rest.slice(at + 1) : rest, role, original);
  if (at < 0) return { scheme, ...hp };
  const cred = rest.slice(0, at);
  const colon = cred.indexOf(':');
  if (colon < 0) throw new UsageError(`malformed proxy hop '${original}': write the credentials as USER:PASSWORD@`);
  return { scheme, ...hp, user: decodeURIComponent(cred.slice(0, colon)), password: decodeURIComponent(cred.slice(colon + 1)) };
}

/** "socks5:proxy:1080" (or "socks5+tls:…"), credentials left out (they never appear in logs). */
export function formatHop(a: HopAddress): string {
  return `${a.scheme}${a.tls ? '+tls' : ''}:${formatHostPort(a.host, a.port)}`;
}

/** The carrier of a hop: a TCP connection to the proxy, or TLS over one. */
export function hopCarrier(a: HopAddress): AddressBase {
  const hp = { host: a.host, port: a.port, hostGiven: a.hostGiven };
  return (a.tls ? { scheme: 'tls', ...hp, tls: a.tls } : { scheme: 'tcp', ...hp }) as AddressBase;
}

/** A hop failed: the message names it ("hop 2 (sas1:1080): …"). */
export class HopError extends NetError {
  constructor(
    message: string,
    code: string | undefined,
    /** 1-based position of the hop in the chain. */
    readonly hop: number,
    /** What a SOCKS server in front of this chain answers for it (RFC 1928 reply code). */
    readonly reply: ReplyCode,
  ) {
    super(message, code);
    this.name = 'HopError';
  }
}

/** Builds the HopError of hop `n` (of the proxy itself when it is not in a chain). */
export function hopError(a: HopAddress, n: number | undefined, why: string, reply: ReplyCode, code?: string): HopError {
  return new HopError(`${n ? `hop ${n} ` : 'proxy '}(${formatHostPort(a.host, a.port)}): ${why}`, code, n ?? 1, reply);
}
