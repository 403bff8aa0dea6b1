/**
 * TCP: "tcp:HOST:PORT", or just HOST:PORT / PORT.
 * Every socket is opened with allowHalfOpen so that a peer's FIN only ends one direction:
 * a reply sent after the peer's EOF still gets through.
 */
import net from 'node:net';
import dns from 'node:dns/promises';
import { netError, NetError, type ErrorContext } from '../errors';
import { formatHostPort, parseHostPort, type HostPort, type HostPortAddress } from './address';
import { registerTransport } from './registry';
import type { Connection, DialOptions, Listener, BindOptions, Peer, Transport } from './types';

export interface TcpAddress extends HostPortAddress {
  scheme: 'tcp';
}

/** The peer of a socket, as logs show it. */
export function socketPeer(socket: net.Socket, side: 'remote' | 'local'): Peer {
  const rawAddress = side === 'remote' ? socket.remoteAddress : socket.localAddress;
  const port = side === 'remote' ? socket.remotePort : socket.localPort;
  // An IPv4 client of a dual-stack "::" listener shows as ::ffff:1.2.3.4; say 1.2.3.4.
  const address = rawAddress?.startsWith('::ffff:') && net.isIPv4(rawAddress.slice(7)) ? rawAddress.slice(7) : rawAddress ?? '?';
  // A client whose RST came before we accepted it has no address any more (getpeername fails).
  if (rawAddress === undefined && side === 'remote') return { address, port, label: 'a client already gone (reset at once)' };
  return { address, port, label: formatHostPort(address, port ?? '?') };
}

/**
 * Connects a TCP socket and resolves once it is established.
 * Rejects with a NetError worded for the user (refused, unreachable, name not found, timed out).
 */
export function connectTcpSocket(addr: HostPort, opts: DialOptions = {}): Promise<net.Socket> {
  const label = formatHostPort(addr.host, addr.port);
  // -4/-6: the name is resolved to that version only (Node passes `family` on to its lookup).
  const family = addr.family ? { family: addr.family } : {};
  return connectNetSocket({ host: addr.host, port: addr.port, noDelay: true, ...family }, { action: 'connect', address: label, host: addr.host, port: addr.port, family: addr.family }, opts);
}

/**
 * The IP to bind for a host forced to one version (-4/-6): a name is resolved to that version
 * here, since net.Server.listen() resolves names without asking for one.
 */
export async function bindHost(addr: HostPort, label: string): Promise<string> {
  if (!addr.family || net.isIP(addr.host)) return addr.host;
  try {
    return (await dns.lookup(addr.host, { family: addr.family })).address;
  } catch (err) {
    throw netError(err, { action: 'listen', address: label, host: addr.host, port: addr.port, family: addr.family });
  }
}

/**
 * Connects any stream socket (TCP or unix) with allowHalfOpen, honouring the timeout and the
 * abort signal; `ctx` names the address in errors.
 */
export function connectNetSocket(target: net.NetConnectOpts, ctx: ErrorContext, opts: DialOptions = {}): Promise<net.Socket> {
  const label = ctx.address;
  return new Promise((resolve, reject) => {
    const socket = net.connect({ ...target, allowHalfOpen: true });
    let timer: NodeJS.Timeout | undefined;
    const fail = (err: unknown) => {
      cleanup();
      socket.destroy();
      reject(netError(err, ctx));
    };
    const onAbort = () => fail(new NetError(`connect to ${label} aborted`));
    const cleanup = () => {
      if (timer) clearTimeout(timer);
      socket.off('error', fail);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    if (opts.timeoutMs && opts.timeoutMs > 0) {
      timer = setTimeout(
        () => fail(new NetError(`connection to ${label} timed out after ${opts.timeoutMs! / 1000} s`, 'ETIMEDOUT')),
        opts.timeoutMs,
      );
    }
    if (opts.signal?.aborted) return onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('error', fail);
    socket.once('connect', () => {
      cleanup();
      resolve(socket);
    });
  });
}

/**
 * Wraps an established socket as a Connection. With `lazy`, each address is asked of the kernel
 * (getpeername/getsockname) only when first read, and kept: for sockets whose users read them
 * while the socket is open (an accepted client's `local`, the proxy's upstream `remote`), one
 * syscall per connection saved each. Without it both are read now, for callers that read them
 * after the socket has closed (forward's log line names its upstream).
 */
export function socketConnection(socket: net.Socket, lazy = false): Connection {
  if (!lazy) return { stream: socket, remote: socketPeer(socket, 'remote'), local: socketPeer(socket, 'local') };
  return new LazySocketConnection(socket);
}

/**
 * socketConnection()'s lazy kind. A class, so the getters are shared by every connection rather
 * than two closures made per connection. Its addresses are getters on the prototype: copy one
 * field by field (`{ stream, remote: c.remote, local: c.local }`), never with a spread.
 */
class LazySocketConnection implements Connection {
  private remotePeer: Peer | undefined;
  private localPeer: Peer | undefined;
  constructor(readonly stream: net.Socket) {}
  get remote(): Peer {
    return (this.remotePeer ??= socketPeer(this.stream, 'remote'));
  }
  get local(): Peer {
    return (this.localPeer ??= socketPeer(this.stream, 'local'));
  }
}

/**
 * Starts a net.Server-like server listening on host:port and resolves once it is bound.
 * Shared by TCP and TLS (which passes its own server).
 */
export async function bindServer<S extends net.Server>(server: S, addr: HostPort, label: string, opts: BindOptions): Promise<S> {
  // -6 on [::] means IPv6 clients only; without it [::] takes IPv4 clients too (dual stack).
  const where: net.ListenOptions = { host: await bindHost(addr, label), port: addr.port, ipv6Only: addr.family === 6 };
  return bindNetServer(server, where, { action: 'listen', address: label, host: addr.host, port: addr.port }, opts);
}

/** Whether this Node passes net.Server's `reusePort` on (SO_REUSEPORT; Node 22.12 and 23.1). */
export const REUSE_PORT_SUPPORTED = (() => {
  const [major, minor] = process.versions.node.split('.').map(Number);
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
})();

/** Binds any net.Server (TCP, TLS, unix path); rejects with a NetError naming `ctx.address`. */
export function bindNetServer<S extends net.Server>(server: S, where: net.ListenOptions, ctx: ErrorContext, opts: BindOptions): Promise<S> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      server.close();
      reject(netError(err, ctx));
    };
    server.once('error', onError);
    // A deep accept queue (the kernel caps it at net.core.somaxconn): a burst of clients waiting to
    // be accepted must not overflow it, or the kernel drops them and they later see resets.
    // reusePort: in a cluster worker, `exclusive` makes it bind its own socket instead of asking
    // the primary for the shared one.
    const reuse = opts.reusePort && REUSE_PORT_SUPPORTED ? { reusePort: true, exclusive: true } : {};
    server.listen({ ...where, ...reuse, backlog: 4096 }, () => {
      server.off('error', onError);
      // After binding, errors come from accept(): report them and keep listening.
      server.on('error', (err) => opts.onAcceptError?.(err));
      resolve(server);
    });
  });
}

/** Closes a server, resolving when it has stopped accepting (live connections stay up). */
export function closeServer(server: net.Server): Promise<void> {
  // close() stops accepting at once; its callback would wait until every live connection has
  // ended, and ending them is the caller's drain, which runs after this resolves.
  if (server.listening) server.close();
  return Promise.resolve();
}

/** The address a server really bound, with the real port when 0 was asked for. */
export function boundHostPort(server: net.Server, fallback: HostPort): HostPort {
  const a = server.address();
  if (a && typeof a === 'object') return { host: a.address, port: a.port, hostGiven: fallback.hostGiven };
  return fallback;
}

export const tcpTransport: Transport<TcpAddress> = {
  scheme: 'tcp',
  aliases: ['tcp4', 'tcp6'],
  kind: 'stream',
  help: 'TCP (the default when no scheme is given)',
  example: 'tcp:127.0.0.1:9090, [::1]:9090, 9090',
  parse: (rest, role, original) => ({ scheme: 'tcp', ...parseHostPort(rest, role, original) }),
  format: (a) => formatHostPort(a.host, a.port),
  async connect(addr, opts) {
    return socketConnection(await connectTcpSocket(addr, opts));
  },
  async listen(addr, opts): Promise<Listener> {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false, noDelay: true }, (socket) =>
      // Lazy: the runtime reads `remote` at once; `local` only a mode that needs it (exec, PROXY header).
      opts.onConnection(socketConnection(socket, true)),
    );
    await bindServer(server, addr, formatHostPort(addr.host, addr.port), opts);
    const bound: TcpAddress = { scheme: 'tcp', ...boundHostPort(server, addr) };
    return { address: bound, label: formatHostPort(bound.host, bound.port), close: () => closeServer(server) };
  },
};

registerTransport(tcpTransport);

declare module './types' {
  interface AddressMap {
    tcp: TcpAddress;
  }
}
