/**
 * The datagram side of the runtime, shared by the UDP modes (listen -u, connect -u, forward udp:…):
 * UDP has no connections, so a "client" is an address:port that sent us a datagram, remembered
 * until it falls silent. The peer table does admission (access control, the limit, eviction),
 * idle expiry and the open/close log lines; serveDatagrams() is a datagram server's run loop;
 * StdioDatagrams is the pump between stdio and a socket (listen -u, connect -u).
 */
import type dgram from 'node:dgram';
import type { RemoteInfo } from 'node:dgram';
import { createAccessControl, type AccessControl, type AccessOptions } from '../access';
import { formatDuration, type Logger } from '../log';
import { bindUdpSocket, peerLabel, type UdpAddress } from '../endpoints/udp';
import type { Address, Listener } from '../endpoints/types';
import { announceListening } from './listener';
import { LfToCrlf } from '../endpoints/stdio';
import type { Readable, Writable } from 'node:stream';

/** One remembered peer, with its own state (an upstream socket for forward). */
export interface UdpPeer<S> {
  label: string;
  address: string;
  port: number;
  lastSeen: number;
  started: number;
  /** Bytes received from the peer, and sent to it. */
  received: number;
  sent: number;
  state: S;
}

export interface PeerTableOptions<S> {
  logger: Logger;
  access?: AccessControl;
  /** Refuse datagrams from new peers past this many (default 10000). */
  maxPeers?: number;
  /** Forget a peer after this many ms without a datagram from it (0 or undefined: never). */
  idleMs?: number;
  /** Creates a new peer's state. */
  create: (rinfo: RemoteInfo, label: string) => S;
  /** Releases a peer's state when it is forgotten. */
  release?: (peer: UdpPeer<S>, reason: string) => void;
  /**
   * When the table is full, forget the peer silent the longest to make room for a new one, if it
   * has been silent at least this many ms (undefined: never evict, refuse the newcomer). A table
   * bounded by a scarce resource (forward: one socket per peer) must not stay full of peers that
   * sent one datagram and left until --udp-idle expires.
   */
  evictSilentAfterMs?: number;
  /** Where the mode relays each peer (forward's TARGET): named in the peer's last line and JSON, as forward over TCP does. */
  target?: string;
}

/** Without -k, a peer silent this long is forgotten (replies then wait for the next one to speak). */
export const DEFAULT_UDP_IDLE_MS = 60_000;

/** A full table evicts peers silent this long (when its owner asks for eviction). */
export const DEFAULT_EVICT_SILENT_MS = 1000;

/** Logs of refused peers are kept to one line per address, bounded. */
const MAX_REFUSED_REMEMBERED = 1000;

/** The table of peers: admission (access control, limit), idle expiry, and the open/close log lines. */
export class PeerTable<S> {
  readonly peers = new Map<string, UdpPeer<S>>();
  private readonly refused = new Set<string>();
  private readonly sweeper?: NodeJS.Timeout;

  constructor(private readonly opts: PeerTableOptions<S>) {
    if (opts.idleMs && opts.idleMs > 0) {
      this.sweeper = setInterval(() => this.sweep(), Math.max(50, Math.min(1000, opts.idleMs / 4)));
      this.sweeper.unref();
    }
  }

  /** The peer a datagram came from, created on its first datagram; undefined when refused. */
  admit(rinfo: RemoteInfo): UdpPeer<S> | undefined {
    const label = peerLabel(rinfo);
    const known = this.peers.get(label);
    if (known) {
      known.lastSeen = Date.now();
      // Keep the map in order of last datagram: its first entry is the one silent the longest.
      if (this.opts.evictSilentAfterMs !== undefined) {
        this.peers.delete(label);
        this.peers.set(label, known);
      }
      return known;
    }
    const { logger, access } = this.opts;
    const verdict = access ? access.check(rinfo.address) : { ok: true as const };
    if (!verdict.ok) return this.refuse(label, 'denied', verdict.reason, verdict.reason);
    const max = this.opts.maxPeers ?? 10_000;
    if (this.peers.size >= max && !this.evictFor(label, max)) {
      return this.refuse(label, 'limit', `${max} peers already active, none silent for ${this.opts.evictSilentAfterMs ?? '∞'} ms (--max-conns, open-file limit)`, 'limit');
    }
    const now = Date.now();
    const peer: UdpPeer<S> = { label, address: rinfo.address, port: rinfo.port, lastSeen: now, started: now, received: 0, sent: 0, state: this.opts.create(rinfo, label) };
    this.peers.set(label, peer);
    logger.opened({ client: label, datagrams: true });
    return peer;
  }

  /** Forgets a peer and logs its totals. */
  drop(peer: UdpPeer<S>, reason: string): void {
    if (this.peers.get(peer.label) !== peer) return;
    this.peers.delete(peer.label);
    this.opts.release?.(peer, reason);
    const { target } = this.opts;
    this.opts.logger.closed({ client: peer.label, datagrams: true, text: target && ` → ${target}`, fields: target ? { target } : undefined, bytesIn: peer.received, bytesOut: peer.sent, durationMs: Date.now() - peer.started, reason });
  }

  /** Makes room for `newcomer` by forgetting the peer silent the longest, if it is silent enough. */
  private evictFor(newcomer: string, max: number): boolean {
    const after = this.opts.evictSilentAfterMs;
    if (after === undefined) return false;
    const oldest = this.peers.values().next().value as UdpPeer<S> | undefined;
    if (!oldest || Date.now() - oldest.lastSeen < after) return false;
    this.opts.logger.event('evicted', `forgetting ${oldest.label} (silent for ${Date.now() - oldest.lastSeen} ms) to make room for ${newcomer}: ${max} peers at most`, {
      client: oldest.label,
      for: newcomer,
      max_peers: max,
    });
    this.drop(oldest, 'evicted');
    return true;
  }

  /** Forgets every peer (on stop). */
  close(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    for (const peer of [...this.peers.values()]) this.drop(peer, 'stopped');
  }

  private sweep(): void {
    const limit = Date.now() - (this.opts.idleMs ?? 0);
    for (const peer of [...this.peers.values()]) if (peer.lastSeen < limit) this.drop(peer, 'idle');
  }

  private refuse(label: string, event: string, text: string, reason: string): undefined {
    if (!this.refused.has(label)) {
      if (this.refused.size >= MAX_REFUSED_REMEMBERED) this.refused.clear();
      this.refused.add(label);
      this.opts.logger.refused({ event, client: label, text, fields: { reason } });
    }
    return undefined;
  }
}

/**
 * Resolves when the signal is aborted, or when `idleMs` passed since `lastTraffic()` (a UDP
 * server has no other way to know it is done).
 */
function untilStopped(signal: AbortSignal, idleMs: number | undefined, lastTraffic: () => number, logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const finish = () => {
      if (timer) clearTimeout(timer);
      signal.removeEventListener('abort', finish);
      resolve();
    };
    if (signal.aborted) return finish();
    signal.addEventListener('abort', finish, { once: true });
    if (!idleMs) return;
    const check = () => {
      const left = lastTraffic() + idleMs - Date.now();
      if (left > 0) timer = setTimeout(check, left);
      else {
        logger.event('idle', `no datagram for ${formatDuration(idleMs)}, stopping`);
        finish();
      }
    };
    timer = setTimeout(check, idleMs);
  });
}

/** What a datagram mode hands serveDatagrams(): its peers' state and what to do with each datagram. */
export interface DatagramHandler<S> {
  /** A datagram from an admitted peer (its `received` already counted). */
  onMessage(msg: Buffer, peer: UdpPeer<S>, rinfo: RemoteInfo): void;
  /** Called once the server stops, before its peers are forgotten. */
  stop?(): void;
}

export interface DatagramServeOptions<S> {
  address: Address;
  logger: Logger;
  /** Stop when aborted. */
  signal: AbortSignal;
  /** --allow, --deny, --allow-file, checked for each new peer. */
  access?: AccessOptions;
  /** The peer table's limits and each peer's state (create/release). */
  peers: Omit<PeerTableOptions<S>, 'logger' | 'access'>;
  /** Stop after this many ms without a datagram either way (--idle-timeout). */
  idleTimeoutMs?: number;
  /** Told the bound address once listening (tests read the port). */
  onListening?: (listener: Listener) => void;
  /**
   * Starts the mode on the bound socket: `touch()` marks traffic (for --idle-timeout) the mode
   * sees itself, e.g. replies coming back from upstream.
   */
  start(ctx: { socket: dgram.Socket; label: string; peers: PeerTable<S>; touch: () => void }): DatagramHandler<S>;
}

/**
 * The datagram counterpart of serve(): binds the socket (with the start-up line), admits each
 * new peer through access control and the peer table's limit, counts what every peer sends,
 * hands each datagram to the mode, and on stop forgets every peer (their closed lines) and
 * closes the socket. Resolves when stopped by the signal or by --idle-timeout.
 */
export async function serveDatagrams<S>(opts: DatagramServeOptions<S>): Promise<void> {
  const { logger } = opts;
  const access = createAccessControl(opts.access, logger);
  await access?.ready;
  const { socket, bound, label } = await bindUdpSocket(opts.address as UdpAddress);
  announceListening(logger, { label, address: bound });
  const peers = new PeerTable<S>({ ...opts.peers, logger, access });
  let lastTraffic = Date.now();
  const touch = () => {
    lastTraffic = Date.now();
  };
  const handler = opts.start({ socket, label, peers, touch });
  socket.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
    const peer = peers.admit(rinfo);
    if (!peer) return;
    lastTraffic = Date.now();
    peer.received += msg.length;
    handler.onMessage(msg, peer, rinfo);
  });
  socket.on('error', (err: Error) => logger.error('error', `${label}: ${err.message}`));
  let closed = false;
  const close = () => {
    if (!closed) socket.close();
    closed = true;
  };
  opts.onListening?.({ address: bound, label, close: async () => close() });
  await untilStopped(opts.signal, opts.idleTimeoutMs, () => lastTraffic, logger);
  handler.stop?.();
  peers.close();
  access?.close();
  close();
}

/** Datagrams arriving while this much output is still unwritten are dropped (UDP cannot push back). */
export const STDOUT_BACKLOG_LIMIT = 4 << 20;

export interface StdioDatagramOptions {
  stdin: Readable;
  stdout: Writable;
  logger: Logger;
  /** -C: each line read from stdin ends in CRLF, as line protocols over UDP (SIP, syslog) may want. */
  crlf?: boolean;
  /** Sends one stdin read (split into datagrams by the caller's sendDatagrams); resolves false to stop reading. */
  send(chunk: Buffer): Promise<boolean>;
  /** stdin reached its end (or failed). */
  onEnd(): void;
}

/**
 * The datagram pump between stdio and a UDP socket, the same for `listen -u` and `connect -u`:
 * each stdin read becomes one datagram (one per 65507 bytes), and stdin is read again only once
 * the kernel took it, so a fast stdin never queues without bound; each datagram received goes
 * to stdout, except while stdout has more than STDOUT_BACKLOG_LIMIT bytes unwritten: then it is
 * dropped, with one warning, since UDP cannot slow its sender down.
 */
export class StdioDatagrams {
  /** Datagrams dropped because stdout was not keeping up. */
  dropped = 0;
  private readonly stdin: Readable;
  private stopped = false;

  constructor(private readonly opts: StdioDatagramOptions) {
    this.stdin = opts.crlf ? opts.stdin.pipe(new LfToCrlf()) : opts.stdin;
    this.stdin.on('data', this.onData);
    this.stdin.on('end', this.onEnd);
    this.stdin.on('error', this.onEnd);
    this.stdin.pause();
  }

  /** Starts (or restarts) reading stdin. */
  read(): void {
    if (!this.stopped) this.stdin.resume();
  }

  /** Writes a received datagram to stdout; false when it was dropped. */
  deliver(msg: Buffer): boolean {
    if (this.opts.stdout.writableLength > STDOUT_BACKLOG_LIMIT) {
      if (this.dropped++ === 0) this.opts.logger.warn('dropped', 'stdout is not keeping up: dropping datagrams (UDP cannot slow the sender down)');
      return false;
    }
    this.opts.stdout.write(msg);
    return true;
  }

  /** Stops reading stdin for good, and says how many datagrams were dropped, if any. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.stdin.off('data', this.onData);
    this.stdin.off('end', this.onEnd);
    this.stdin.off('error', this.onEnd);
    this.stdin.pause();
    if (this.dropped > 0) this.opts.logger.warn('dropped', `${this.dropped} datagram(s) dropped because stdout was not keeping up`);
  }

  private readonly onData = (chunk: Buffer): void => {
    // One read, one datagram: the next read waits until this one is handed to the kernel.
    this.stdin.pause();
    void this.opts.send(chunk).then((more) => {
      if (more) this.read();
      else this.stop();
    });
  };

  private readonly onEnd = (): void => {
    if (!this.stopped) this.opts.onEnd();
  };
}
