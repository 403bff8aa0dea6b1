/**
 * `sockcat forward udp:LISTEN udp:TARGET`: a UDP relay. Each client peer (address:port) gets
 * its own upstream socket connected to the target, so every reply comes back on the socket
 * that belongs to that client and is returned to it — two clients never see each other's
 * replies. A peer's upstream socket is closed after --udp-idle seconds without a datagram.
 */
import type dgram from 'node:dgram';
import { type Address, type UdpAddress } from '../endpoints/index';
import { connectUdpSocket, udpError, udpLabel } from '../endpoints/udp';
import type { Listener } from '../endpoints/types';
import { hexDumper } from '../hexdump';
import { createLogger, type LogFormat } from '../log';
import type { AccessOptions } from '../access';
import { ensureFdLimit } from '../runtime/fdlimit';
import { DEFAULT_EVICT_SILENT_MS, DEFAULT_UDP_IDLE_MS, serveDatagrams, type UdpPeer } from '../runtime/datagram';
import type { ModeIO } from '../io';


/** Peers at most when --max-conns is not given (before fitting to the open-file limit). */
const DEFAULT_MAX_PEERS = 10_000;

/** Datagrams a peer may send while its upstream socket is still being opened. */
const MAX_PENDING = 64;

export interface UdpForwardOptions {
  /** Where clients send (udp:…). */
  listen: Address;
  /** Where their datagrams go (udp:…). */
  target: Address;
  /** Forget a peer after this many ms of silence (default 60 s). */
  udpIdleMs?: number;
  /** At most this many peers at once (--max-conns; fewer if the open-file limit cannot hold them). */
  maxConns?: number;
  /** Run sockcat again with a higher open-file limit when --max-conns needs it (the CLI sets this). */
  raiseFdLimit?: boolean;
  access?: AccessOptions;
  verbose?: boolean;
  hex?: boolean;
  logFormat?: LogFormat;
  onListening?: (listener: Listener) => void;
}

/** One client's upstream socket, and what it sent before that socket was ready. */
interface Upstream {
  socket?: dgram.Socket;
  pending: Buffer[];
  opening: boolean;
  closed: boolean;
}

/** Runs the UDP relay until stopped; resolves with the exit code. */
export async function runUdpForward(opts: UdpForwardOptions, io: ModeIO): Promise<number> {
  // Both ends are datagram addresses: the command refused anything else.
  const target = opts.target as UdpAddress;
  const targetLabel = udpLabel(target);
  const logger = createLogger(opts, io.stderr);
  // Each peer holds one upstream socket: fit the peer table to the open-file limit, as TCP
  // forward fits its clients (re-running with a higher limit when allowed).
  const room = await ensureFdLimit({ maxConns: opts.maxConns, defaultMaxConns: DEFAULT_MAX_PEERS, fdsPerClient: 1, logger, relaunch: opts.raiseFdLimit === true, clientsWord: 'UDP peers' });
  if (room.relaunched) return room.exitCode;
  const dump = opts.hex ? hexDumper(io.stderr, {}) : undefined;

  await serveDatagrams<Upstream>({
    address: opts.listen,
    logger,
    signal: io.signal,
    access: opts.access,
    onListening: opts.onListening,
    peers: {
      maxPeers: room.maxConns,
      idleMs: opts.udpIdleMs ?? DEFAULT_UDP_IDLE_MS,
      // A full table forgets the peer silent the longest rather than turn newcomers away until
      // --udp-idle: 1,000 one-datagram source ports must not lock a real client out.
      evictSilentAfterMs: DEFAULT_EVICT_SILENT_MS,
      target: targetLabel,
      create: () => ({ pending: [], opening: false, closed: false }),
      release: (peer) => {
        peer.state.closed = true;
        // UDP has nothing to flush or half-close: closing the upstream socket is the whole goodbye.
        peer.state.socket?.close();
      },
    },
    start: ({ socket: front, label, peers, touch }) => {
      logger.event('forwarding', `forwarding ${label} → ${targetLabel}`, { address: label, target: targetLabel });

      function openUpstream(peer: UdpPeer<Upstream>): void {
        connectUdpSocket(target).then(
          (socket) => {
            if (peer.state.closed) return void socket.close();
            peer.state.socket = socket;
            socket.on('message', (msg: Buffer) => {
              peer.lastSeen = Date.now();
              touch();
              peer.sent += msg.length;
              dump?.(`> ${peer.label}`, msg);
              front.send(msg, peer.port, peer.address);
            });
            // The target may not be up yet (ICMP unreachable): say so, keep the peer, it may retry.
            socket.on('error', (err: Error) => logger.event('upstream-error', `${peer.label} → ${udpError(err, targetLabel).message}`, { client: peer.label }));
            for (const msg of peer.state.pending.splice(0)) socket.send(msg);
          },
          (err: Error) => {
            logger.error('upstream-error', `${peer.label}: ${err.message}`, { client: peer.label });
            peers.drop(peer, 'upstream failed');
          },
        );
      }

      return {
        onMessage(msg, peer) {
          dump?.(`< ${peer.label}`, msg);
          if (peer.state.socket) return void peer.state.socket.send(msg);
          if (!peer.state.opening) {
            peer.state.opening = true;
            openUpstream(peer);
          }
          // Past the bound, datagrams are dropped, as a congested network would.
          if (peer.state.pending.length < MAX_PENDING) peer.state.pending.push(msg);
        },
      };
    },
  });
  return 0;
}
