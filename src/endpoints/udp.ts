/**
 * UDP: "udp:HOST:PORT" (and -u on a TCP address). Datagrams do not fit the byte-stream
 * Connection, so this transport registers for parsing and --help only; listen, connect and
 * forward have UDP code of their own (src/modes/udp-*.ts) built on the helpers here.
 */
import dgram from 'node:dgram';
import dns from 'node:dns/promises';
import net from 'node:net';
import { NetError, netError, UsageError } from '../errors';
import { formatHostPort, parseHostPort, type HostPortAddress } from './address';
import { registerTransport } from './registry';
import type { Transport } from './types';

export interface UdpAddress extends HostPortAddress {
  scheme: 'udp';
}

/** The largest payload of one IPv4 UDP datagram; longer stdin reads are split. */
export const MAX_DATAGRAM = 65_507;

export const udpLabel = (a: { host: string; port: number }) => `udp:${formatHostPort(a.host, a.port)}`;

/** "127.0.0.1:5353": how logs name the peer a datagram came from. */
export function peerLabel(rinfo: { address: string; port: number }): string {
  return formatHostPort(rinfo.address, rinfo.port);
}

/** Resolves a host name to one address and its socket type (udp4 or udp6). */
async function resolve(host: string, where: string, action: 'connect' | 'listen', family?: 4 | 6): Promise<{ ip: string; type: dgram.SocketType }> {
  if (net.isIP(host)) return { ip: host, type: net.isIPv6(host) ? 'udp6' : 'udp4' };
  try {
    // -4/-6: that version's addresses only.
    const found = await dns.lookup(host, family ? { family } : {});
    return { ip: found.address, type: found.family === 6 ? 'udp6' : 'udp4' };
  } catch (err) {
    throw netError(err, { action, address: where, host, family });
  }
}

/** Binds a UDP socket on the address (port 0: the system picks); resolves once bound. */
export async function bindUdpSocket(addr: UdpAddress): Promise<{ socket: dgram.Socket; bound: UdpAddress; label: string }> {
  const where = udpLabel(addr);
  const { ip, type } = await resolve(addr.host, where, 'listen', addr.family);
  const socket = dgram.createSocket({ type, ipv6Only: addr.family === 6 });
  await new Promise<void>((ok, fail) => {
    const onError = (err: Error) => {
      socket.close();
      fail(netError(err, { action: 'listen', address: where, host: addr.host, port: addr.port }));
    };
    socket.once('error', onError);
    socket.bind({ address: ip, port: addr.port }, () => {
      socket.off('error', onError);
      ok();
    });
  });
  const a = socket.address();
  const bound: UdpAddress = { ...addr, host: a.address, port: a.port };
  return { socket, bound, label: udpLabel(bound) };
}

/**
 * A UDP socket connected to the address: it only exchanges datagrams with that peer, and an
 * ICMP "port unreachable" comes back as an ECONNREFUSED error on it.
 */
export async function connectUdpSocket(addr: UdpAddress): Promise<dgram.Socket> {
  const where = udpLabel(addr);
  const { ip, type } = await resolve(addr.host, where, 'connect', addr.family);
  const socket = dgram.createSocket({ type });
  await new Promise<void>((ok, fail) => {
    const onError = (err: Error) => {
      socket.close();
      fail(netError(err, { action: 'connect', address: where, host: addr.host, port: addr.port }));
    };
    socket.once('error', onError);
    socket.connect(addr.port, ip, () => {
      socket.off('error', onError);
      ok();
    });
  });
  return socket;
}

/** The user's words for an error on a UDP socket (ICMP unreachable shows as ECONNREFUSED). */
export function udpError(err: unknown, where: string): NetError {
  if ((err as NodeJS.ErrnoException)?.code === 'ECONNREFUSED') {
    return new NetError(`${where}: port unreachable — nothing listens on that UDP port`, 'ECONNREFUSED');
  }
  return netError(err, { action: 'io', address: where });
}

/**
 * Splits one read into datagrams of at most MAX_DATAGRAM bytes and sends them in order;
 * resolves once all were handed to the kernel (the caller pauses its source meanwhile).
 */
export function sendDatagrams(chunk: Buffer, send: (part: Buffer, cb: (err: Error | null) => void) => void): Promise<Error | null> {
  const parts: Buffer[] = [];
  for (let i = 0; i < chunk.length; i += MAX_DATAGRAM) parts.push(chunk.subarray(i, i + MAX_DATAGRAM));
  if (parts.length === 0) parts.push(chunk);
  return parts.reduce<Promise<Error | null>>(
    (prev, part) => prev.then((err) => (err ? err : new Promise((ok) => send(part, (e) => ok(e ?? null))))),
    Promise.resolve(null),
  );
}

export const udpTransport: Transport<UdpAddress> = {
  scheme: 'udp',
  aliases: ['udp4', 'udp6'],
  kind: 'datagram',
  help: 'UDP datagrams (listen, connect, forward); -u is the shorthand',
  example: 'udp:127.0.0.1:5353, listen -u 9999',
  parse: (rest, role, original) => ({ scheme: 'udp', ...parseHostPort(rest, role, original) }),
  format: udpLabel,
  flags: [{ name: 'udp', alias: 'u', type: 'boolean', role: 'both', help: 'UDP instead of TCP: same as writing udp:HOST:PORT' }],
  adopt(addr, flags) {
    if (!flags.udp || addr.scheme === 'udp') return undefined;
    if (addr.scheme !== 'tcp') throw new UsageError(`-u works on TCP addresses, not with ${addr.scheme}: ones`);
    return { ...(addr as HostPortAddress), scheme: 'udp' };
  },
};

registerTransport(udpTransport);

declare module './types' {
  interface AddressMap {
    udp: UdpAddress;
  }
}
