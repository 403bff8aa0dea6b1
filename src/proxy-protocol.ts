/**
 * PROXY protocol headers (HAProxy's specification, versions 1 and 2), sent upstream by
 * `forward --proxy-protocol` before any client byte so the backend learns the real client
 * address instead of the relay's. Only the sending side lives here: sockcat writes headers,
 * it does not accept them.
 *
 * v1 is one text line: "PROXY TCP4 SRC DST SPORT DPORT\r\n" (TCP6 for IPv6, "PROXY UNKNOWN\r\n"
 * when the addresses are not IP). v2 is binary: a 12-byte signature, version/command 0x21
 * (version 2, PROXY), family/protocol 0x11 (TCP over IPv4) or 0x21 (TCP over IPv6), the
 * address block length, then source address, destination address, source port, destination port.
 */
import net from 'node:net';
import ipaddr from 'ipaddr.js';

export type ProxyVersion = 'v1' | 'v2';

/** One end of the proxied connection: an IP address and port, or anything else (unix sockets). */
export interface ProxyEndpoint {
  address: string;
  port?: number;
}

/** The 12 bytes every v2 header starts with ("\r\n\r\n\0\r\nQUIT\n"). */
export const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

const V2_PROXY_COMMAND = 0x21; // version 2 in the high nibble, PROXY in the low one
const V2_TCP4 = 0x11;
const V2_TCP6 = 0x21;
const V2_UNSPEC = 0x00;

type Family = 4 | 6;

/**
 * Both ends in one IP family, or undefined when either end has no IP address and port.
 * A mixed pair (an IPv4 client seen by an IPv6 listener) is sent as IPv6 with the IPv4
 * address in its mapped form, as the specification asks.
 */
function pairFamily(src: ProxyEndpoint, dst: ProxyEndpoint): { family: Family; src: string; dst: string } | undefined {
  if (src.port === undefined || dst.port === undefined) return undefined;
  const fs = net.isIP(src.address);
  const fd = net.isIP(dst.address);
  if (fs === 0 || fd === 0) return undefined;
  if (fs === 4 && fd === 4) return { family: 4, src: src.address, dst: dst.address };
  const v6 = (a: string, f: number) => (f === 4 ? `::ffff:${a}` : a);
  return { family: 6, src: v6(src.address, fs), dst: v6(dst.address, fd) };
}

/** The v1 (text) header for a connection from `src` to `dst` (our listening address). */
export function encodeProxyV1(src: ProxyEndpoint, dst: ProxyEndpoint): Buffer {
  const pair = pairFamily(src, dst);
  if (!pair) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  return Buffer.from(`PROXY TCP${pair.family} ${pair.src} ${pair.dst} ${src.port} ${dst.port}\r\n`, 'latin1');
}

/** The v2 (binary) header for a connection from `src` to `dst` (our listening address). */
export function encodeProxyV2(src: ProxyEndpoint, dst: ProxyEndpoint): Buffer {
  const pair = pairFamily(src, dst);
  if (!pair) {
    // UNSPEC with no address block: the receiver keeps the connection's own addresses.
    const header = Buffer.alloc(16);
    PROXY_V2_SIGNATURE.copy(header, 0);
    header[12] = V2_PROXY_COMMAND;
    header[13] = V2_UNSPEC;
    header.writeUInt16BE(0, 14);
    return header;
  }
  const addrLen = pair.family === 4 ? 4 : 16;
  const blockLen = addrLen * 2 + 4;
  const header = Buffer.alloc(16 + blockLen);
  PROXY_V2_SIGNATURE.copy(header, 0);
  header[12] = V2_PROXY_COMMAND;
  header[13] = pair.family === 4 ? V2_TCP4 : V2_TCP6;
  header.writeUInt16BE(blockLen, 14);
  ipBytes(pair.src, pair.family).copy(header, 16);
  ipBytes(pair.dst, pair.family).copy(header, 16 + addrLen);
  header.writeUInt16BE(src.port!, 16 + addrLen * 2);
  header.writeUInt16BE(dst.port!, 16 + addrLen * 2 + 2);
  return header;
}

/** The header of either version. */
export function encodeProxyHeader(version: ProxyVersion, src: ProxyEndpoint, dst: ProxyEndpoint): Buffer {
  return version === 'v1' ? encodeProxyV1(src, dst) : encodeProxyV2(src, dst);
}

/** Network-order bytes of an IPv4 or IPv6 address. */
export function ipBytes(address: string, family: Family): Buffer {
  // A zone id (fe80::1%eth0) only means something on this machine.
  const parsed = ipaddr.parse(address.replace(/%.*$/, ''));
  const v = family === 6 && parsed.kind() === 'ipv4' ? (parsed as ipaddr.IPv4).toIPv4MappedAddress() : parsed;
  return Buffer.from(v.toByteArray());
}
