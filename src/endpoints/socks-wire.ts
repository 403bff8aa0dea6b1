/**
 * SOCKS on the wire, shared by the server (src/proxy/socks-server.ts) and the hop client
 * (src/proxy/hops.ts): the constants of RFC 1928 (SOCKS5), RFC 1929 (username/password) and
 * SOCKS4/4a, and the address encoding both directions use.
 */
import net from 'node:net';
import type { HandshakeReader } from './handshake-reader';

export const SOCKS5 = 0x05;
export const SOCKS4 = 0x04;

/** Authentication methods offered in the greeting. */
export const METHOD_NONE = 0x00;
export const METHOD_USERPASS = 0x02;
export const METHOD_REFUSED = 0xff;

/** Commands. */
export const CMD_CONNECT = 0x01;
export const CMD_BIND = 0x02;
export const CMD_UDP_ASSOCIATE = 0x03;

/** Address types. */
export const ATYP_IPV4 = 0x01;
export const ATYP_DOMAIN = 0x03;
export const ATYP_IPV6 = 0x04;

/** SOCKS5 reply codes (RFC 1928 section 6). */
export const Reply = {
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowed: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  connectionRefused: 0x05,
  ttlExpired: 0x06,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;
export type ReplyCode = (typeof Reply)[keyof typeof Reply];

/** What a reply code means, in the words a log or an error line uses. */
export function replyText(code: number): string {
  switch (code) {
    case Reply.succeeded:
      return 'succeeded';
    case Reply.generalFailure:
      return 'general failure';
    case Reply.notAllowed:
      return 'not allowed by its rules';
    case Reply.networkUnreachable:
      return 'network unreachable';
    case Reply.hostUnreachable:
      return 'host unreachable';
    case Reply.connectionRefused:
      return 'refused';
    case Reply.ttlExpired:
      return 'timed out (TTL expired)';
    case Reply.commandNotSupported:
      return 'command not supported';
    case Reply.addressTypeNotSupported:
      return 'address type not supported';
    default:
      return `unknown reply code ${code}`;
  }
}

/** SOCKS4 reply codes. */
export const SOCKS4_GRANTED = 0x5a;
export const SOCKS4_REJECTED = 0x5b;

/** A destination as a SOCKS request names it: an IPv4 or IPv6 literal, or a domain name. */
export interface SocksDestination {
  host: string;
  port: number;
  /** How the client sent it: 'ipv4', 'ipv6' or 'domain'. */
  type: 'ipv4' | 'ipv6' | 'domain';
}

/**
 * Host names we pass on: letters, digits, '-', '_' and dots, 1-253 characters. A SOCKS domain
 * is any 0-255 bytes; anything else (NUL, spaces, control characters, UTF-8) never reaches DNS
 * nor a log line.
 */
export function isSafeHostName(name: string): boolean {
  return name.length >= 1 && name.length <= 253 && /^[A-Za-z0-9_]([A-Za-z0-9_.-]*)$/.test(name) && !name.includes('..');
}

/** ATYP + address + port, as in a SOCKS5 request, reply or UDP header. */
export function encodeAddress(host: string, port: number): Buffer {
  const portBytes = Buffer.from([(port >> 8) & 0xff, port & 0xff]);
  const family = net.isIP(host);
  if (family === 4) return Buffer.concat([Buffer.from([ATYP_IPV4]), Buffer.from(host.split('.').map(Number)), portBytes]);
  if (family === 6) return Buffer.concat([Buffer.from([ATYP_IPV6]), ipv6Bytes(host), portBytes]);
  const name = Buffer.from(host, 'latin1');
  if (name.length === 0 || name.length > 255) throw new RangeError(`host name of ${name.length} bytes cannot be sent over SOCKS5 (1-255)`);
  return Buffer.concat([Buffer.from([ATYP_DOMAIN, name.length]), name, portBytes]);
}

/** The 16 bytes of an IPv6 address (with an embedded IPv4 tail or '::' shorthand). */
export function ipv6Bytes(host: string): Buffer {
  let text = host.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  // An IPv4 tail (::ffff:1.2.3.4) becomes two hextets.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1].split('.').map(Number);
    text = text.slice(0, -v4[1].length) + `${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const headParts = head ? head.split(':') : [];
  const tailParts = tail ? tail.split(':') : [];
  const missing = 8 - headParts.length - tailParts.length;
  const parts = [...headParts, ...Array(tail === undefined ? 0 : missing).fill('0'), ...tailParts];
  const out = Buffer.alloc(16);
  parts.forEach((p, i) => out.writeUInt16BE(parseInt(p, 16) & 0xffff, i * 2));
  return out;
}

/** The canonical text of 16 IPv6 bytes ("::1", "2001:db8::5"). */
export function ipv6Text(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  // Shorten the longest run of zero groups (two or more) to '::', as RFC 5952 says.
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** An address in a SOCKS5 message that we cannot use: the caller answers with `reply`. */
export class BadAddress extends Error {
  constructor(
    message: string,
    readonly reply: ReplyCode,
  ) {
    super(message);
    this.name = 'BadAddress';
  }
}

/**
 * Reads ATYP + address + port from a handshake. An unknown ATYP throws BadAddress with
 * "address type not supported"; a domain that is empty or not a plain host name throws
 * BadAddress with "host unreachable" (after reading it whole, so the framing stays intact).
 */
export async function readAddress(reader: HandshakeReader): Promise<SocksDestination> {
  const atyp = await reader.byte();
  let host: string;
  let type: SocksDestination['type'];
  if (atyp === ATYP_IPV4) {
    host = [...(await reader.read(4))].join('.');
    type = 'ipv4';
  } else if (atyp === ATYP_IPV6) {
    host = ipv6Text(await reader.read(16));
    type = 'ipv6';
  } else if (atyp === ATYP_DOMAIN) {
    const len = await reader.byte();
    const name = len === 0 ? Buffer.alloc(0) : await reader.read(len);
    const port = (await reader.read(2)).readUInt16BE(0);
    const text = name.toString('latin1');
    if (len === 0) throw new BadAddress('empty host name', Reply.hostUnreachable);
    if (!isSafeHostName(text)) throw new BadAddress(`host name with characters a host name cannot have (${JSON.stringify(text.slice(0, 40))})`, Reply.hostUnreachable);
    // A name that is really an IP literal ("127.0.0.1" sent as a domain) is treated as that IP.
    return { host: text.toLowerCase().replace(/\.$/, ''), port, type: net.isIP(text) ? (net.isIPv6(text) ? 'ipv6' : 'ipv4') : 'domain' };
  } else {
    throw new BadAddress(`unknown address type 0x${atyp.toString(16).padStart(2, '0')}`, Reply.addressTypeNotSupported);
  }
  const port = (await reader.read(2)).readUInt16BE(0);
  return { host, port, type };
}

/** A UDP ASSOCIATE datagram: RSV(2) FRAG(1) ATYP DST.ADDR DST.PORT DATA (RFC 1928 section 7). */
export interface UdpDatagram {
  frag: number;
  destination: SocksDestination;
  data: Buffer;
}

/** Parses a datagram from a client; undefined when it is malformed (it is then dropped, as the RFC says). */
export function parseUdpDatagram(buf: Buffer): UdpDatagram | undefined {
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0) return undefined;
  const frag = buf[2];
  const atyp = buf[3];
  let at = 4;
  let host: string;
  let type: SocksDestination['type'];
  if (atyp === ATYP_IPV4) {
    if (buf.length < at + 6) return undefined;
    host = [...buf.subarray(at, at + 4)].join('.');
    type = 'ipv4';
    at += 4;
  } else if (atyp === ATYP_IPV6) {
    if (buf.length < at + 18) return undefined;
    host = ipv6Text(buf.subarray(at, at + 16));
    type = 'ipv6';
    at += 16;
  } else if (atyp === ATYP_DOMAIN) {
    const len = buf[at] ?? 0;
    if (len === 0 || buf.length < at + 1 + len + 2) return undefined;
    host = buf.subarray(at + 1, at + 1 + len).toString('latin1');
    if (!isSafeHostName(host)) return undefined;
    host = host.toLowerCase().replace(/\.$/, '');
    type = net.isIP(host) ? (net.isIPv6(host) ? 'ipv6' : 'ipv4') : 'domain';
    at += 1 + len;
  } else return undefined;
  const port = buf.readUInt16BE(at);
  return { frag, destination: { host, port, type }, data: buf.subarray(at + 2) };
}

/** The header put in front of a reply datagram sent back to the client. */
export function udpHeader(fromHost: string, fromPort: number): Buffer {
  return Buffer.concat([Buffer.from([0, 0, 0]), encodeAddress(fromHost, fromPort)]);
}
