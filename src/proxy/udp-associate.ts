/**
 * SOCKS5 UDP ASSOCIATE (RFC 1928 section 7): the client's datagrams, each with a small header
 * naming its destination, are relayed out; replies come back with a header naming their source.
 * The association lives exactly as long as the TCP connection that asked for it.
 *
 * - One relay socket faces the client, bound on the address the client reached us on; only
 *   datagrams from the client's IP are taken (and from the port it announced, or else the first
 *   port it sends from), everything else is dropped.
 * - Each destination goes through the same map, rules and resolution as a CONNECT (a denied
 *   destination's datagram is dropped and logged once). Fragments (FRAG ≠ 0) are dropped: the
 *   RFC lets a server that does not reassemble do so.
 * - Replies are taken only from addresses the client has sent to (a NAT's "address and port
 *   restricted" filter), so the relay port cannot be used to reach the client from anywhere.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { Connection } from '../endpoints/types';
import { formatHostPort } from '../endpoints/address';
import type { Logger } from '../log';
import { DialFailed, type Dialer } from './dialer';
import { parseUdpDatagram, udpHeader, type SocksDestination } from '../endpoints/socks-wire';

/** How many (destination → address) answers are remembered, and how many peers may reply. */
const MAX_REMEMBERED = 1024;
/** How long a resolved destination is reused before it is looked up again. */
const ROUTE_TTL_MS = 30_000;

export interface AssociationResult {
  /** Datagram payload bytes from the client relayed out. */
  sent: number;
  /** Datagram payload bytes relayed back to the client. */
  received: number;
  datagramsOut: number;
  datagramsIn: number;
  dropped: number;
}

/** The client-facing relay socket of one association, bound before the reply is sent. */
export class UdpAssociation {
  private readonly clientSide: dgram.Socket;
  private readonly out = new Map<4 | 6, dgram.Socket>();
  private clientPort: number | undefined;
  private readonly clientAddress: string;
  /** "ip:port" of every peer the client sent to: only they may answer. */
  private readonly peers = new Set<string>();
  private readonly routes = new Map<string, { address: string; port: number; at: number } | { refused: string; at: number }>();
  private readonly result: AssociationResult = { sent: 0, received: 0, datagramsOut: 0, datagramsIn: 0, dropped: 0 };
  private closed = false;

  private constructor(
    private readonly conn: Connection,
    announced: SocksDestination,
    private readonly dialer: Dialer,
    private readonly logger: Logger,
    socket: dgram.Socket,
  ) {
    this.clientSide = socket;
    this.clientAddress = unmapped(conn.remote.address);
    // The client may say which port it will send from; 0 (or 0.0.0.0) means "not known yet".
    if (announced.port !== 0) this.clientPort = announced.port;
    socket.on('message', (msg, rinfo) => this.fromClientSide(msg, rinfo));
    socket.on('error', () => this.close());
  }

  /** Binds the relay socket on the address the client reached us on. */
  static async open(conn: Connection, announced: SocksDestination, dialer: Dialer, logger: Logger): Promise<UdpAssociation> {
    const local = unmapped(conn.local.address);
    const socket = dgram.createSocket(net.isIPv6(local) ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, local, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return new UdpAssociation(conn, announced, dialer, logger, socket);
  }

  /** Where the client sends its datagrams (for the reply's BND.ADDR/BND.PORT). */
  get bound(): { host: string; port: number } {
    const a = this.clientSide.address();
    return { host: a.address, port: a.port };
  }

  /** Runs until the TCP connection ends (or `signal` aborts); resolves with the counts. */
  run(signal: AbortSignal): Promise<AssociationResult> {
    const tcp = this.conn.stream;
    return new Promise((resolve) => {
      const done = () => {
        signal.removeEventListener('abort', done);
        this.close();
        tcp.destroy();
        resolve(this.result);
      };
      // The TCP connection carries nothing more; read (and drop) what comes so its EOF is seen.
      tcp.on('data', () => {});
      tcp.once('end', done);
      tcp.once('close', done);
      tcp.once('error', done);
      tcp.resume();
      if (signal.aborted) return done();
      signal.addEventListener('abort', done, { once: true });
    });
  }

  private fromClientSide(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.closed) return;
    if (unmapped(rinfo.address) !== this.clientAddress || (this.clientPort !== undefined && rinfo.port !== this.clientPort)) {
      this.result.dropped++;
      return;
    }
    this.clientPort ??= rinfo.port;
    const d = parseUdpDatagram(msg);
    if (!d || d.frag !== 0) {
      this.result.dropped++;
      return;
    }
    void this.sendOut(d.destination, d.data);
  }

  private async sendOut(dest: SocksDestination, data: Buffer): Promise<void> {
    const key = formatHostPort(dest.host, dest.port);
    let route = this.routes.get(key);
    if (!route || Date.now() - route.at > ROUTE_TTL_MS) {
      try {
        const r = await this.dialer.route(dest.host, dest.port);
        if (r.addresses.length === 0) throw new DialFailed(`${key}: no address to send to`, 'unreachable', 4);
        route = { address: r.addresses[0], port: r.port, at: Date.now() };
      } catch (err) {
        const why = err instanceof DialFailed ? err.message : (err as Error).message;
        if (!route || !('refused' in route)) this.logger.event('udp-denied', `UDP from ${this.conn.remote.label} to ${key} dropped: ${why}`, { client: this.conn.remote.label, destination: key, reason: why });
        route = { refused: why, at: Date.now() };
      }
      if (this.routes.size >= MAX_REMEMBERED) this.routes.clear();
      this.routes.set(key, route);
    }
    if (this.closed || 'refused' in route) {
      this.result.dropped++;
      return;
    }
    const family = net.isIPv6(route.address) ? 6 : 4;
    const socket = this.outSocket(family);
    if (this.peers.size >= MAX_REMEMBERED) this.peers.clear();
    this.peers.add(formatHostPort(route.address, route.port));
    this.result.sent += data.length;
    this.result.datagramsOut++;
    socket.send(data, route.port, route.address);
  }

  /** The socket that talks to destinations of one family, opened on first use. */
  private outSocket(family: 4 | 6): dgram.Socket {
    let s = this.out.get(family);
    if (s) return s;
    s = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
    s.on('message', (msg, rinfo) => this.fromOutside(msg, rinfo));
    s.on('error', () => {});
    this.out.set(family, s);
    return s;
  }

  private fromOutside(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.closed || this.clientPort === undefined) return;
    const from = unmapped(rinfo.address);
    if (!this.peers.has(formatHostPort(from, rinfo.port))) {
      this.result.dropped++;
      return;
    }
    this.result.received += msg.length;
    this.result.datagramsIn++;
    this.clientSide.send([udpHeader(from, rinfo.port), msg], this.clientPort, this.clientAddress);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.clientSide.close();
    for (const s of this.out.values()) s.close();
  }
}

/** "::ffff:1.2.3.4" → "1.2.3.4". */
function unmapped(address: string): string {
  return address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
}
