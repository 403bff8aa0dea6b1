/**
 * One address syntax for every mode:
 *   9090                   port only (listeners bind 127.0.0.1, clients go to 127.0.0.1)
 *   HOST:PORT              127.0.0.1:9090, localhost:9090, example.org:80
 *   [IPv6]:PORT            [::1]:9090, [::]:9090
 *   SCHEME:REST            tcp:…, plus every scheme registered in ./registry.ts (unix:, udp:, tls: …)
 * This file holds the HOST:PORT part every IP transport shares; each transport parses its own rest.
 */
import net from 'node:net';
import { UsageError } from '../errors';
import type { AddressBase, Role } from './types';

export type { Role };

/** A host and port, the part shared by every IP transport. */
export interface HostPort {
  host: string;
  port: number;
  /** True when the user wrote the host; false when it came from the default. */
  hostGiven: boolean;
  /** -4/-6: only this IP version, for the host itself and for resolving a name. */
  family?: IpFamily;
}

export type IpFamily = 4 | 6;

/**
 * A host:port forced to one IP version (-4/-6): the default host becomes that version's
 * loopback, and an IP literal of the other version is a usage error rather than a silent
 * contradiction. Names are resolved to that version only, when the socket is opened.
 */
export function withFamily<A extends HostPort>(addr: A, family: IpFamily, original: string): A {
  if (!addr.hostGiven) return { ...addr, host: family === 6 ? '::1' : '127.0.0.1', family };
  const other = family === 6 ? (isWildcardHost(addr.host) ? '[::]:PORT' : '[::1]:PORT') : isWildcardHost(addr.host) ? '0.0.0.0:PORT' : '127.0.0.1:PORT';
  refuseOtherFamily(addr.host, family, original, other);
  return { ...addr, family };
}

/** -4/-6 with an IP literal of the other version: a usage error naming what to give instead (`example`). */
export function refuseOtherFamily(host: string, family: IpFamily, original: string, example: string): void {
  const version = net.isIP(host);
  if (version !== 0 && version !== family) {
    throw new UsageError(`-${family} allows IPv${family} only, but ${original} is an IPv${version} address: give an IPv${family} one (e.g. ${example}) or leave out -${family}`);
  }
}

/** Listeners bind loopback unless the user names another address: nothing is exposed by accident. */
export const DEFAULT_LISTEN_HOST = '127.0.0.1';
export const DEFAULT_CONNECT_HOST = '127.0.0.1';

/**
 * Parses "HOST:PORT", "[V6]:PORT" or "PORT" (the part after any scheme prefix).
 * @param text what the user wrote, e.g. "127.0.0.1:9090"
 * @param role listen or connect: decides the default host and whether port 0 is allowed
 * @param original the whole address, to quote in errors
 */
export function parseHostPort(text: string, role: Role, original = text): HostPort {
  const defaultHost = role === 'listen' ? DEFAULT_LISTEN_HOST : DEFAULT_CONNECT_HOST;
  let host: string;
  let portText: string;
  if (/^\d+$/.test(text)) {
    host = '';
    portText = text;
  } else if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) throw new UsageError(`malformed address '${original}': missing ']' after the IPv6 address`);
    host = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (!rest.startsWith(':')) throw new UsageError(`malformed address '${original}': expected ':PORT' after ']' (e.g. [::1]:8080)`);
    portText = rest.slice(1);
    if (net.isIPv6(host) === false) throw new UsageError(`malformed address '${original}': '${host}' is not an IPv6 address`);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) {
      // "localhost", "example.org": a host without its port.
      if (isValidHostName(text)) throw new UsageError(`missing port: add it after the host, e.g. ${original}:9090${original === text ? ` (or ${text} 9090)` : ''}`);
      throw new UsageError(`malformed address '${original}': expected PORT, HOST:PORT or [IPv6]:PORT (e.g. 127.0.0.1:9090)`);
    }
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) throw new UsageError(unbracketedIpv6(text, original));
    if (host === '*') host = '0.0.0.0';
  }
  const port = parsePort(portText, role, original);
  if (host !== '' && !isValidHostName(host)) {
    throw new UsageError(`malformed address '${original}': '${host}' is not a valid host name or IP address`);
  }
  return { host: host || defaultHost, port, hostGiven: host !== '' };
}

/**
 * An IPv6 address written without brackets. "::1" or "fe80::1" is an address without its port
 * (its last group is not a port); "::1:80" most likely means [::1]:80.
 */
function unbracketedIpv6(text: string, original: string): string {
  const colon = text.lastIndexOf(':');
  const [host, port] = [text.slice(0, colon), text.slice(colon + 1)];
  const hostAlone = net.isIPv6(host) && host !== '::' && /^\d{1,5}$/.test(port);
  if (hostAlone) return `malformed address '${original}': write IPv6 addresses in brackets, e.g. [${host}]:${port}`;
  if (net.isIPv6(text) || net.isIPv6(text.split('%')[0])) {
    const scheme = original.slice(0, original.length - text.length);
    return `missing port: write the IPv6 address in brackets with the port after it, e.g. ${scheme}[${text}]:9090${scheme ? '' : ` (or ${text} 9090)`}`;
  }
  return `malformed address '${original}': write IPv6 addresses in brackets, e.g. [${host}]:${port}`;
}

/** Parses a port number, with a message that says what is wrong with it. */
export function parsePort(text: string, role: Role, original = text): number {
  if (text === '') throw new UsageError(`malformed address '${original}': the port is missing`);
  if (!/^\d+$/.test(text)) throw new UsageError(`malformed address '${original}': port '${text}' is not a number`);
  const port = Number(text);
  if (port > 65535) throw new UsageError(`malformed address '${original}': port ${port} is out of range (1-65535)`);
  if (port === 0 && role === 'connect') throw new UsageError(`malformed address '${original}': cannot connect to port 0`);
  return port;
}

function isValidHostName(host: string): boolean {
  if (net.isIP(host)) return true;
  return /^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})$/.test(host) && !host.includes('..');
}

/** "127.0.0.1:9090", "[::1]:9090": the way people write an IP endpoint. */
export function formatHostPort(host: string, port: number | string): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * True for 127.0.0.0/8, ::1 (either spelling), their IPv4-mapped form and localhost: only this
 * machine can reach a listener there (and a proxy there serves only this machine).
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return net.isIPv4(v4) && v4.startsWith('127.');
}

/** True for 0.0.0.0, :: and friends: a listener there is reachable from the network. */
export function isWildcardHost(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '[::]' || host === '::0';
}

/** An address of an IP transport (tcp, tls, udp, a proxy hop). */
export interface HostPortAddress extends AddressBase, HostPort {}

/** True when the address has a host and port (as opposed to a unix socket path). */
export function hasHostPort(addr: AddressBase): addr is HostPortAddress {
  return typeof (addr as Partial<HostPort>).host === 'string' && typeof (addr as Partial<HostPort>).port === 'number';
}
