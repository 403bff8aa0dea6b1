/**
 * Socket lifecycle events, for --trace, --stats and --progress, gathered in one place for every
 * mode and transport. Node publishes each TCP/unix socket it creates on `node:diagnostics_channel`
 * (`net.client.socket`, `net.server.socket`) and each listen on `tracing:net.server.listen`; the
 * TLS transport publishes its TLS sockets on SECURE_SOCKET_CHANNEL (their bytes no longer pass
 * through the TCP socket they ride on). Nothing is subscribed unless one of those flags is on.
 *
 * Observing never changes behaviour: no listener is added to a socket (an 'error' listener would
 * swallow errors, a 'data' listener would start the flow); instead each socket's own emit(), push()
 * (what one read() from the kernel returned, null for the peer's FIN) and _writeGeneric() (one
 * write to the kernel) report to us before doing their usual work.
 */
import dc from 'node:diagnostics_channel';
import type dgram from 'node:dgram';
import net from 'node:net';
import type tls from 'node:tls';

/** Published by the TLS transport: { socket: TLSSocket, carrier?: the net.Socket below it, role }. */
export const SECURE_SOCKET_CHANNEL = 'sockcat:tls.socket';

export interface SecureSocketMessage {
  socket: tls.TLSSocket;
  /** The TCP socket the TLS socket rides on, when it was a separate net.Socket. */
  carrier?: net.Socket;
  role: 'client' | 'server';
}

/** For the TLS transport: tells --trace/--stats about a TLS socket (free when nobody listens). */
export function publishSecureSocket(msg: SecureSocketMessage): void {
  const ch = dc.channel(SECURE_SOCKET_CHANNEL);
  if (ch.hasSubscribers) ch.publish(msg);
}

/** Which end we are: we dialled it (`client`) or a listener accepted it (`accepted`). */
export type SocketRole = 'client' | 'accepted';

/** What happened to one socket, in order. */
export type LifecycleEvent =
  | { type: 'listen'; address: string; host?: string; port?: number; path?: string; backlog?: number }
  | { type: 'listen-error'; address: string; code?: string; message: string }
  | { type: 'listener-closed'; address: string }
  | { type: 'resolved'; id: number; host: string; address: string; family: number }
  | { type: 'resolve-error'; id: number; host: string; code?: string }
  | { type: 'syn-sent'; id: number; address: string; port?: number; unix?: true }
  | { type: 'attempt-failed'; id: number; address: string; port: number; code?: string }
  | { type: 'established'; id: number; local: string; remote: string; unix?: true }
  | { type: 'accepted'; id: number; local: string; remote: string; unix?: true }
  | { type: 'tls'; id: number; protocol: string; cipher: string; verified: boolean | null; role: 'client' | 'server' }
  | { type: 'read'; id: number; role: SocketRole; bytes: number }
  | { type: 'write'; id: number; role: SocketRole; bytes: number }
  | { type: 'peer-fin'; id: number }
  | { type: 'our-fin'; id: number }
  | { type: 'reset-received'; id: number; code: string }
  | { type: 'reset-sent'; id: number }
  | { type: 'refused'; id: number; address: string }
  | { type: 'error'; id: number; code?: string; message: string }
  | { type: 'closed'; id: number; role: SocketRole; bytesIn: number; bytesOut: number; firstFin?: 'peer' | 'us'; reset?: 'received' | 'sent' }
  | { type: 'udp-bound'; id: number; address: string; host: string }
  | { type: 'udp-connected'; id: number; remote: string }
  | { type: 'datagram-in'; id: number; bytes: number; from: string }
  | { type: 'datagram-out'; id: number; bytes: number; to?: string }
  | { type: 'udp-error'; id: number; code?: string; message: string }
  | { type: 'udp-closed'; id: number; datagramsIn: number; datagramsOut: number };

export type LifecycleListener = (e: LifecycleEvent) => void;

const listeners = new Set<LifecycleListener>();
let subscribed = false;
let nextId = 1;

/** Per-socket bookkeeping, kept on the socket under a symbol. */
interface Watch {
  id: number;
  role: SocketRole;
  bytesIn: number;
  bytesOut: number;
  peerFin: boolean;
  ourFin: boolean;
  firstFin?: 'peer' | 'us';
  reset?: 'received' | 'sent';
  established: boolean;
  /** A unix socket's path, from the connection attempt. */
  path?: string;
  /** Set on a TCP socket a TLS socket took over: its close is reported by the TLS socket. */
  carried?: boolean;
  closed: boolean;
}
const kWatch = Symbol('sockcat.lifecycle');
/** Sockets not yet closed, for flushLifecycle(). */
const live = new Map<net.Socket, Watch>();

type Watched = net.Socket & { [kWatch]?: Watch };

/**
 * Calls `listener` for every lifecycle event from now on; returns the unsubscribe function.
 * The first subscriber subscribes us to Node's channels.
 */
export function onLifecycle(listener: LifecycleListener): () => void {
  listeners.add(listener);
  if (!subscribed) {
    subscribed = true;
    dc.subscribe('net.client.socket', onClientSocket);
    dc.subscribe('net.server.socket', onServerSocket);
    dc.subscribe('udp.socket', onUdpSocket);
    dc.subscribe(SECURE_SOCKET_CHANNEL, onSecureSocket as (m: unknown) => void);
    dc.tracingChannel('net.server.listen').subscribe(listenTracer);
  }
  return () => listeners.delete(listener);
}

/** Whether --trace/--stats/--progress watch this socket (then its reads must go through push()). */
export function isObserved(socket: net.Socket): boolean {
  return (socket as Watched)[kWatch] !== undefined;
}

function emit(e: LifecycleEvent): void {
  for (const l of listeners) l(e);
}

function onClientSocket(msg: unknown): void {
  watch((msg as { socket: net.Socket }).socket, 'client');
}

function onServerSocket(msg: unknown): void {
  const socket = (msg as { socket: net.Socket }).socket;
  const w = watch(socket, 'accepted');
  w.established = true;
  if (socket.remoteAddress === undefined) {
    // A unix socket: the client's end has no name.
    const server = (socket as unknown as { server?: net.Server }).server?.address();
    emit({ type: 'accepted', id: w.id, local: typeof server === 'string' ? `unix:${server}` : 'unix socket', remote: 'a local process', unix: true });
  } else emit({ type: 'accepted', id: w.id, local: peerLabel(socket.localAddress, socket.localPort, socket), remote: peerLabel(socket.remoteAddress, socket.remotePort, socket) });
}

function onSecureSocket(msg: SecureSocketMessage): void {
  const { socket, carrier, role } = msg;
  const below = carrier ? (carrier as Watched)[kWatch] : undefined;
  if (below) below.carried = true;
  // The TLS socket carries on under the TCP connection's number.
  const w = watch(socket, role === 'client' ? 'client' : 'accepted', below?.id);
  w.established = true;
  const report = () => {
    const cipher = socket.getCipher?.();
    emit({
      type: 'tls',
      id: w.id,
      protocol: socket.getProtocol?.() ?? '?',
      cipher: cipher?.standardName ?? cipher?.name ?? '?',
      verified: role === 'client' ? socket.authorized : socket.getPeerCertificate?.() && Object.keys(socket.getPeerCertificate()).length ? socket.authorized : null,
      role,
    });
  };
  // Published before or after the handshake, depending on the transport: report it once done.
  if ((socket as unknown as { _secureEstablished?: boolean })._secureEstablished) report();
  else w.onSecure = report;
}

/** Instruments one socket; idempotent. */
function watch(socket: net.Socket, role: SocketRole, id?: number): Watch & { onSecure?: () => void } {
  const s = socket as Watched;
  if (s[kWatch]) return s[kWatch]!;
  const w: Watch & { onSecure?: () => void } = { id: id ?? nextId++, role, bytesIn: 0, bytesOut: 0, peerFin: false, ourFin: false, established: false, closed: false };
  s[kWatch] = w;
  live.set(s, w);

  const push = s.push;
  s.push = function (this: net.Socket, chunk: unknown, encoding?: BufferEncoding) {
    if (chunk === null) {
      if (!w.peerFin && !w.carried) {
        w.peerFin = true;
        w.firstFin ??= 'peer';
        emit({ type: 'peer-fin', id: w.id });
      }
    } else if (chunk !== undefined && !w.carried) {
      const n = typeof chunk === 'string' ? Buffer.byteLength(chunk, encoding) : (chunk as Uint8Array).length;
      if (n > 0) {
        w.bytesIn += n;
        emit({ type: 'read', id: w.id, role: w.role, bytes: n });
      }
    }
    return push.call(this, chunk as Buffer, encoding);
  } as typeof s.push;

  const internals = s as unknown as { _writeGeneric?: (writev: boolean, data: unknown, encoding: BufferEncoding, cb: unknown) => unknown };
  const writeGeneric = internals._writeGeneric;
  if (typeof writeGeneric === 'function') {
    internals._writeGeneric = function (this: unknown, writev, data, encoding, cb) {
      const n = writev
        ? (data as Array<{ chunk: Buffer | string; encoding: BufferEncoding }>).reduce((sum, d) => sum + (typeof d.chunk === 'string' ? Buffer.byteLength(d.chunk, d.encoding) : d.chunk.length), 0)
        : typeof data === 'string'
          ? Buffer.byteLength(data, encoding)
          : (data as Uint8Array).length;
      if (n > 0 && !w.carried) {
        w.bytesOut += n;
        emit({ type: 'write', id: w.id, role: w.role, bytes: n });
      }
      return writeGeneric.call(this, writev, data, encoding, cb);
    };
  }

  const resetAndDestroy = s.resetAndDestroy;
  if (typeof resetAndDestroy === 'function') {
    s.resetAndDestroy = function () {
      if (!w.closed && !w.reset && !w.carried) {
        w.reset = 'sent';
        emit({ type: 'reset-sent', id: w.id });
      }
      return resetAndDestroy.call(this);
    };
  }

  const origEmit = s.emit as (this: unknown, event: string | symbol, ...args: unknown[]) => boolean;
  s.emit = function (this: unknown, event: string | symbol, ...args: unknown[]) {
    try {
      observe(s, w, event, args);
    } catch {
      // Tracing must never break the connection.
    }
    return origEmit.call(this, event, ...args);
  } as typeof s.emit;
  return w;
}

function observe(s: net.Socket, w: Watch & { onSecure?: () => void }, event: string | symbol, args: unknown[]): void {
  switch (event) {
    case 'lookup': {
      const [err, address, family, host] = args as [NodeJS.ErrnoException | null, string, number | string, string];
      if (err) emit({ type: 'resolve-error', id: w.id, host, code: err.code });
      // An IP literal needs no resolution: say nothing.
      else if (host !== address) emit({ type: 'resolved', id: w.id, host, address, family: Number(String(family).replace('IPv', '')) });
      break;
    }
    case 'connectionAttempt': {
      const [address, port] = args as [string, number | undefined];
      if (port === undefined) w.path = address;
      emit(port === undefined ? { type: 'syn-sent', id: w.id, address, unix: true } : { type: 'syn-sent', id: w.id, address, port });
      break;
    }
    case 'connectionAttemptFailed': {
      const [address, port, , err] = args as [string, number, number, NodeJS.ErrnoException];
      emit({ type: 'attempt-failed', id: w.id, address, port, code: err?.code });
      break;
    }
    case 'connect':
      if (!w.established) {
        w.established = true;
        const pipe = w.path ?? (s as unknown as { _pipeName?: string })._pipeName;
        if (s.remoteAddress === undefined) emit({ type: 'established', id: w.id, local: 'us', remote: pipe ? `unix:${pipe}` : 'unix socket', unix: true });
        else emit({ type: 'established', id: w.id, local: peerLabel(s.localAddress, s.localPort, s), remote: peerLabel(s.remoteAddress, s.remotePort, s) });
      }
      break;
    case 'secureConnect': {
      // The client's certificate check is done (authorized is set) just before this event.
      const report = w.onSecure;
      w.onSecure = undefined;
      report?.();
      break;
    }
    case 'secure': {
      // The handshake is done; the check runs in this event's listeners, after us: report after them.
      const report = w.onSecure;
      if (report && w.role === 'accepted') {
        w.onSecure = undefined;
        setImmediate(report);
      }
      break;
    }
    case 'finish':
      if (!w.ourFin && !w.carried) {
        w.ourFin = true;
        w.firstFin ??= 'us';
        emit({ type: 'our-fin', id: w.id });
      }
      break;
    case 'error': {
      if (w.carried) break;
      const err = args[0] as NodeJS.ErrnoException & { address?: string; port?: number };
      if (err?.code === 'ECONNREFUSED') {
        emit({ type: 'refused', id: w.id, address: err.address ? peerLabel(err.address, err.port, s) : '?' });
      } else if (err?.code === 'ECONNRESET' || err?.code === 'EPIPE') {
        if (!w.reset) {
          w.reset = 'received';
          emit({ type: 'reset-received', id: w.id, code: err.code });
        }
      } else emit({ type: 'error', id: w.id, code: err?.code, message: err?.message ?? String(err) });
      break;
    }
    case 'close':
      reportClosed(s, w);
      break;
  }
}

function reportClosed(s: net.Socket, w: Watch): void {
  live.delete(s);
  if (w.closed || w.carried) return;
  w.closed = true;
  emit({ type: 'closed', id: w.id, role: w.role, bytesIn: w.bytesIn, bytesOut: w.bytesOut, firstFin: w.firstFin, reset: w.reset });
}

/**
 * At exit: reports as closed the sockets whose exchange is over (destroyed, or FIN both ways)
 * but whose 'close' event would only come after the process has gone.
 */
export function flushLifecycle(): void {
  for (const [s, w] of live) if (s.destroyed || (w.peerFin && w.ourFin) || w.reset) reportClosed(s, w);
}

/**
 * A UDP socket: no connection, no handshake, no FIN. Its steps are the bind, an optional
 * connect() (which only fixes the peer: nothing is sent), each datagram, and the close.
 */
function onUdpSocket(msg: unknown): void {
  const socket = (msg as { socket: dgram.Socket }).socket;
  const id = nextId++;
  let ins = 0;
  let outs = 0;
  let connected = false;
  const label = (a: { address: string; port: number }) => (net.isIPv6(a.address) ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`);
  const send = socket.send as (this: dgram.Socket, ...args: unknown[]) => void;
  socket.send = function (this: dgram.Socket, ...args: unknown[]) {
    try {
      const data = args[0];
      const total = Array.isArray(data) ? data.reduce((n: number, b: Uint8Array | string) => n + (typeof b === 'string' ? Buffer.byteLength(b) : b.length), 0) : typeof data === 'string' ? Buffer.byteLength(data) : (data as Uint8Array).length;
      // send(msg, offset, length, …) when the next two are numbers and (unconnected) a port follows.
      const withRange = typeof args[1] === 'number' && typeof args[2] === 'number' && (connected || typeof args[3] === 'number');
      const bytes = withRange ? (args[2] as number) : total;
      const rest = withRange ? args.slice(3) : args.slice(1);
      const to = connected ? undefined : typeof rest[0] === 'number' ? label({ address: typeof rest[1] === 'string' ? rest[1] : '127.0.0.1', port: rest[0] }) : undefined;
      outs++;
      emit({ type: 'datagram-out', id, bytes, to });
    } catch {
      // Tracing never breaks a send.
    }
    return send.apply(this, args);
  } as typeof socket.send;
  const origEmit = socket.emit as (this: unknown, event: string | symbol, ...args: unknown[]) => boolean;
  socket.emit = function (this: unknown, event: string | symbol, ...args: unknown[]) {
    try {
      if (event === 'listening') {
        const a = socket.address();
        emit({ type: 'udp-bound', id, address: label(a), host: a.address });
      } else if (event === 'connect') {
        connected = true;
        emit({ type: 'udp-connected', id, remote: label(socket.remoteAddress()) });
      } else if (event === 'message') {
        const [m, rinfo] = args as [Buffer, dgram.RemoteInfo];
        ins++;
        emit({ type: 'datagram-in', id, bytes: m.length, from: label(rinfo) });
      } else if (event === 'error') {
        const err = args[0] as NodeJS.ErrnoException;
        emit({ type: 'udp-error', id, code: err?.code, message: err?.message ?? String(err) });
      } else if (event === 'close') emit({ type: 'udp-closed', id, datagramsIn: ins, datagramsOut: outs });
    } catch {
      // Tracing never breaks the socket.
    }
    return origEmit.call(this, event, ...args);
  } as typeof socket.emit;
}

function peerLabel(address: string | undefined, port: number | undefined, s: net.Socket): string {
  if (address === undefined) {
    // A unix socket: name its path (the server's; the client's end has none).
    const path = (s as unknown as { _pipeName?: string })._pipeName ?? (s as unknown as { server?: net.Server }).server?.address();
    return typeof path === 'string' ? `unix:${path}` : 'unix socket';
  }
  const a = address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
  return net.isIPv6(a) ? `[${a}]:${port}` : `${a}:${port}`;
}

const listenOptions = new WeakMap<net.Server, net.ListenOptions>();

/** listen(): what was asked (host, port, backlog) and, once bound, what we got. */
const listenTracer = {
  // listen() starts with the options (host, port, backlog); the bound address comes at asyncEnd.
  start(msg: unknown) {
    const { server, options } = msg as { server: net.Server; options?: net.ListenOptions };
    if (options) listenOptions.set(server, options);
  },
  end() {},
  asyncStart(msg: unknown) {
    const { server, options } = msg as { server: net.Server; options?: net.ListenOptions };
    if (options) listenOptions.set(server, options);
  },
  asyncEnd(msg: unknown) {
    const { server } = msg as { server: net.Server };
    const options = listenOptions.get(server);
    const bound = server.address();
    if (bound && typeof bound === 'object') {
      emit({ type: 'listen', address: bound.family === 'IPv6' ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`, host: bound.address, port: bound.port, backlog: options?.backlog });
    } else if (typeof bound === 'string') {
      emit({ type: 'listen', address: `unix:${bound}`, path: bound, backlog: options?.backlog });
    }
    const origEmit = server.emit as (this: unknown, event: string | symbol, ...args: unknown[]) => boolean;
    let closed = false;
    server.emit = function (this: unknown, event: string | symbol, ...args: unknown[]) {
      if (event === 'close' && !closed) {
        closed = true;
        emit({ type: 'listener-closed', address: typeof bound === 'string' ? `unix:${bound}` : bound ? `${bound.address}:${bound.port}` : '?' });
      }
      return origEmit.call(this, event, ...args);
    } as typeof server.emit;
  },
  error(msg: unknown) {
    const { options, error } = msg as { options: net.ListenOptions; error: NodeJS.ErrnoException };
    const address = options?.path ? `unix:${options.path}` : `${options?.host ?? '*'}:${options?.port ?? '?'}`;
    emit({ type: 'listen-error', address, code: error?.code, message: error?.message ?? String(error) });
  },
};
