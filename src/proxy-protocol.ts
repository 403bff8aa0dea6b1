/**
 * PROXY protocol headers (HAProxy's specification, versions 1 and 2), sent upstream by
 * `forward --proxy-protocol` before any client byte so the backend learns the real client
 * address instead of the relay's, and received by `--accept-proxy-protocol` on every listening
 * mode when sockcat itself sits behind HAProxy or another PROXY-speaking load balancer.
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

// ---------------------------------------------------------------------------------------------
// Receiving: `--accept-proxy-protocol` reads one header (either version) before anything else.

/** v1's longest header: "PROXY TCP6 " + two full IPv6 addresses + two ports + CRLF (the specification's 107). */
export const PROXY_V1_MAX_LENGTH = 107;
/**
 * The largest v2 header accepted: 16 fixed bytes plus an address block. The block's length field
 * allows 65535 bytes (TLVs after the addresses); HAProxy sends a few dozen. A bound keeps one
 * stranger from making sockcat buffer 64 KiB per connection before saying anything.
 */
export const PROXY_V2_MAX_LENGTH = 16 + 2048;

const V2_LOCAL_COMMAND = 0x20;
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');

/** What a received header says about the connection. */
export type ProxyHeader =
  /** A proxied connection: `source` is the real client, `destination` the address it connected to. */
  | { version: 1 | 2; command: 'proxy'; source: Required<ProxyEndpoint>; destination: Required<ProxyEndpoint> }
  /**
   * The connection's own addresses stand: a v2 LOCAL command (the proxy's own health check), or a
   * v1 "UNKNOWN" / v2 UNSPEC or unix-socket header (the proxy could not tell who the client is).
   */
  | { version: 1 | 2; command: 'local' | 'unknown' };

/** decodeProxyHeader()'s answer: need more bytes, a bad header (with why), or the header and its length. */
export type ProxyDecodeResult =
  | { status: 'incomplete' }
  | { status: 'invalid'; reason: string }
  | { status: 'done'; header: ProxyHeader; length: number };

/**
 * Decodes the PROXY header at the start of `buf` (the bytes received so far). Never throws:
 * whatever a stranger sends is 'invalid' with a reason, 'incomplete' while a valid header could
 * still follow, or 'done' with the header and how many bytes it took (the rest is the client's).
 */
export function decodeProxyHeader(buf: Buffer): ProxyDecodeResult {
  if (buf.length === 0) return { status: 'incomplete' };
  if (buf[0] === PROXY_V2_SIGNATURE[0]) return decodeV2(buf);
  if (buf[0] === V1_PREFIX[0]) return decodeV1(buf);
  return { status: 'invalid', reason: 'no PROXY header (the connection did not start with one)' };
}

function decodeV1(buf: Buffer): ProxyDecodeResult {
  const prefix = Math.min(buf.length, V1_PREFIX.length);
  if (!buf.subarray(0, prefix).equals(V1_PREFIX.subarray(0, prefix))) return { status: 'invalid', reason: 'no PROXY header (the connection did not start with one)' };
  const end = buf.indexOf('\r\n', 0, 'latin1');
  if (end === -1) {
    if (buf.length >= PROXY_V1_MAX_LENGTH) return { status: 'invalid', reason: `PROXY v1 header longer than ${PROXY_V1_MAX_LENGTH} bytes` };
    // A lone LF, or anything but printable ASCII, can never become a valid line.
    for (let i = 0; i < buf.length; i++) {
      const c = buf[i];
      if (c !== 0x0d && (c < 0x20 || c > 0x7e)) return { status: 'invalid', reason: 'PROXY v1 header holds a byte that is not printable ASCII' };
    }
    return { status: 'incomplete' };
  }
  const length = end + 2;
  if (length > PROXY_V1_MAX_LENGTH) return { status: 'invalid', reason: `PROXY v1 header longer than ${PROXY_V1_MAX_LENGTH} bytes` };
  const line = buf.toString('latin1', 0, end);
  const parts = line.split(' ');
  const proto = parts[1];
  if (proto === 'UNKNOWN') return { status: 'done', header: { version: 1, command: 'unknown' }, length };
  if (proto !== 'TCP4' && proto !== 'TCP6') return { status: 'invalid', reason: `PROXY v1 header names protocol '${printable(proto ?? '')}' (expected TCP4, TCP6 or UNKNOWN)` };
  if (parts.length !== 6) return { status: 'invalid', reason: 'PROXY v1 header does not have 6 fields separated by single spaces' };
  const [, , src, dst, sport, dport] = parts;
  const family = proto === 'TCP4' ? 4 : 6;
  if (net.isIP(src) !== family || net.isIP(dst) !== family) return { status: 'invalid', reason: `PROXY v1 header: addresses are not ${proto} addresses` };
  const sp = parsePort(sport);
  const dp = parsePort(dport);
  if (sp === undefined || dp === undefined) return { status: 'invalid', reason: 'PROXY v1 header: ports must be numbers from 0 to 65535' };
  return { status: 'done', header: { version: 1, command: 'proxy', source: { address: src, port: sp }, destination: { address: dst, port: dp } }, length };
}

/** "0" to "65535", digits only, no leading zero (the specification's form). */
function parsePort(text: string): number | undefined {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text)) return undefined;
  const n = Number(text);
  return n <= 65535 ? n : undefined;
}

function decodeV2(buf: Buffer): ProxyDecodeResult {
  const prefix = Math.min(buf.length, PROXY_V2_SIGNATURE.length);
  if (!buf.subarray(0, prefix).equals(PROXY_V2_SIGNATURE.subarray(0, prefix))) return { status: 'invalid', reason: 'no PROXY header (the connection did not start with one)' };
  if (buf.length < 16) return { status: 'incomplete' };
  const verCmd = buf[12];
  if (verCmd >> 4 !== 2) return { status: 'invalid', reason: `PROXY v2 header with version ${verCmd >> 4}` };
  if (verCmd !== V2_PROXY_COMMAND && verCmd !== V2_LOCAL_COMMAND) return { status: 'invalid', reason: `PROXY v2 header with unknown command ${verCmd & 0x0f}` };
  const famProto = buf[13];
  const blockLen = buf.readUInt16BE(14);
  const length = 16 + blockLen;
  if (length > PROXY_V2_MAX_LENGTH) return { status: 'invalid', reason: `PROXY v2 header of ${length} bytes (sockcat accepts at most ${PROXY_V2_MAX_LENGTH})` };
  if (buf.length < length) return { status: 'incomplete' };
  // LOCAL: the proxy speaks for itself (health checks); the address block, if any, is ignored.
  if (verCmd === V2_LOCAL_COMMAND) return { status: 'done', header: { version: 2, command: 'local' }, length };
  const family = famProto >> 4;
  const transport = famProto & 0x0f;
  if (family > 3 || transport > 2) return { status: 'invalid', reason: `PROXY v2 header with unknown address family/protocol 0x${famProto.toString(16).padStart(2, '0')}` };
  // UNSPEC, unix sockets, or UDP: nothing that names a TCP client; keep the connection's own addresses.
  if (family === 0 || family === 3 || transport !== 1) return { status: 'done', header: { version: 2, command: 'unknown' }, length };
  const addrLen = family === 1 ? 4 : 16;
  if (blockLen < addrLen * 2 + 4) return { status: 'invalid', reason: `PROXY v2 header: address block of ${blockLen} bytes is too short for ${family === 1 ? 'IPv4' : 'IPv6'}` };
  const block = buf.subarray(16, length);
  const source = { address: ipText(block.subarray(0, addrLen)), port: block.readUInt16BE(addrLen * 2) };
  const destination = { address: ipText(block.subarray(addrLen, addrLen * 2)), port: block.readUInt16BE(addrLen * 2 + 2) };
  return { status: 'done', header: { version: 2, command: 'proxy', source, destination }, length };
}

/** An address in the form Node gives remoteAddress: dotted IPv4, compact IPv6, IPv4-mapped as ::ffff:a.b.c.d. */
function ipText(bytes: Buffer): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  const v6 = ipaddr.fromByteArray([...bytes]) as ipaddr.IPv6;
  return v6.isIPv4MappedAddress() ? `::ffff:${v6.toIPv4Address().toString()}` : v6.toString();
}

/** A stranger's text as it may appear in a log line. */
function printable(text: string): string {
  const t = text.replace(/[^\x20-\x7e]/g, '?');
  return t.length > 20 ? `${t.slice(0, 20)}…` : t;
}
