/**
 * SOCKS5 proxy hop (RFC 1928, user/password RFC 1929): "socks5:[USER:PASS@]HOST:PORT", an
 * overlay used in --via chains. Over a stream to the proxy it asks for a CONNECT to the next
 * hop or the final address; names are sent as names (the proxy resolves them, socks5h style).
 */
import net from 'node:net';
import ipaddr from 'ipaddr.js';
import { formatHop, hopCarrier, hopError, parseHopAddress, readReply, type HopAddress } from './hop';
import { registerTransport } from './registry';
import type { Connection, Transport, WrapOptions } from './types';

const REPLIES: Record<number, string> = {
  1: 'general failure',
  2: 'connection not allowed by its rules',
  3: 'network unreachable',
  4: 'host unreachable',
  5: 'connection refused',
  6: 'TTL expired',
  7: 'command not supported',
  8: 'address type not supported',
};

/** The DST.ADDR/DST.PORT part of a request: IPv4, IPv6 or a name of at most 255 bytes. */
function encodeDestination(host: string, port: number): Buffer {
  const p = Buffer.from([port >> 8, port & 0xff]);
  if (net.isIP(host)) {
    const v4 = net.isIPv4(host);
    return Buffer.concat([Buffer.from([v4 ? 1 : 4, ...ipaddr.parse(host).toByteArray()]), p]);
  }
  const name = Buffer.from(host);
  return Buffer.concat([Buffer.from([3, name.length]), name, p]);
}

/** Length of a CONNECT reply once its address type byte is known. */
function replyLength(buf: Buffer): number | undefined {
  if (buf.length < 5) return undefined;
  const atyp = buf[3];
  const addr = atyp === 1 ? 4 : atyp === 4 ? 16 : atyp === 3 ? 1 + buf[4] : 0;
  return buf.length >= 4 + addr + 2 ? 4 + addr + 2 : undefined;
}

async function wrapSocks5(inner: Connection, hop: HopAddress, opts: WrapOptions): Promise<Connection> {
  const dest = opts.destination;
  if (!dest) throw hopError(hop, opts.hop, 'a SOCKS5 hop needs somewhere to go (use it with --via)');
  const s = inner.stream;
  const fail = (why: string, code?: string) => hopError(hop, opts.hop, why, code);
  try {
    const auth = hop.user !== undefined;
    s.write(Buffer.from(auth ? [5, 2, 0, 2] : [5, 1, 0]));
    const choice = await readReply(s, (b) => (b.length >= 2 ? 2 : undefined), 2, opts.signal);
    if (choice[0] !== 5) throw fail('does not speak SOCKS5');
    if (choice[1] === 2 && auth) {
      const u = Buffer.from(hop.user!);
      const p = Buffer.from(hop.password ?? '');
      s.write(Buffer.concat([Buffer.from([1, u.length]), u, Buffer.from([p.length]), p]));
      const ok = await readReply(s, (b) => (b.length >= 2 ? 2 : undefined), 2, opts.signal);
      if (ok[1] !== 0) throw fail('user name or password refused', 'EACCES');
    } else if (choice[1] !== 0) {
      throw fail(auth ? 'refused every authentication method we offered' : 'requires a user name and password (socks5:USER:PASS@HOST:PORT)', 'EACCES');
    }
    s.write(Buffer.concat([Buffer.from([5, 1, 0]), encodeDestination(dest.host, dest.port)]));
    const reply = await readReply(s, replyLength, 262, opts.signal);
    if (reply[1] !== 0) throw fail(`connection to ${dest.host}:${dest.port} ${REPLIES[reply[1]] ?? `failed (reply ${reply[1]})`}`, reply[1] === 5 ? 'ECONNREFUSED' : undefined);
  } catch (err) {
    if ((err as Error).name === 'NetError') throw err;
    throw fail((err as Error).message);
  }
  return inner;
}

export const socks5Transport: Transport<HopAddress> = {
  scheme: 'socks5',
  aliases: ['socks5h'],
  kind: 'stream',
  hop: true,
  help: 'SOCKS5 proxy hop (with USER:PASS@ for RFC 1929 login); the proxy resolves names',
  example: 'socks5:127.0.0.1:1080, socks5:alice:secret@proxy:1080',
  parse: (rest, role, original) => parseHopAddress('socks5', rest, role, original),
  format: formatHop,
  carrier: hopCarrier,
  wrap: wrapSocks5,
};

registerTransport(socks5Transport);
