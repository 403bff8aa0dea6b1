/**
 * `sockcat listen -u ADDR` (or udp:ADDR): the nc -u -l server.
 * - default: datagrams from any peer go to stdout; stdin goes to the peer that spoke last.
 * - --keep-open (-k): every peer is tracked (until --udp-idle of silence, at most --max-conns);
 *   stdin goes to all of them.
 * - --echo: each datagram is sent back to its sender.
 * UDP has no end of stream: stdin EOF sends nothing; the server runs until stopped, or until
 * --idle-timeout passes without a datagram either way.
 */
import { sendDatagrams } from '../endpoints/udp';
import { hexDumper } from '../hexdump';
import { createLogger } from '../log';
import { DEFAULT_UDP_IDLE_MS, serveDatagrams, StdioDatagrams, type UdpPeer } from '../runtime/datagram';
import type { ListenOptions } from './listen';
import type { ModeIO } from '../io';

/** Runs the UDP server until stopped; resolves with the exit code. */
export async function runUdpListen(opts: ListenOptions, io: ModeIO): Promise<number> {
  const logger = createLogger(opts, io.stderr);
  const dump = opts.hex ? hexDumper(io.stderr, {}) : undefined;

  await serveDatagrams<null>({
    address: opts.address,
    logger,
    signal: io.signal,
    access: opts.access,
    idleTimeoutMs: opts.idleTimeoutMs,
    onListening: opts.onListening,
    // -k keeps every peer until --udp-idle; otherwise silent peers are forgotten after a minute so
    // the table (bounded by --max-conns) never fills up with peers long gone.
    peers: { maxPeers: opts.maxConns, idleMs: opts.udpIdleMs ?? (opts.keepOpen ? undefined : DEFAULT_UDP_IDLE_MS), create: () => null },
    start: ({ socket, peers, touch }) => {
      let lastPeer: UdpPeer<null> | undefined;
      // Nothing to send to before a peer has spoken: stdin is read from the first datagram on.
      const stdio = opts.echo
        ? undefined
        : new StdioDatagrams({
            stdin: io.stdin,
            stdout: io.stdout,
            logger,
            crlf: opts.crlf,
            async send(chunk) {
              const targets = opts.keepOpen ? [...peers.peers.values()] : lastPeer && peers.peers.has(lastPeer.label) ? [lastPeer] : [];
              for (const peer of targets) {
                const err = await sendDatagrams(chunk, (part, cb) => socket.send(part, peer.port, peer.address, cb));
                if (err) logger.error('send', `sending to ${peer.label} failed: ${err.message}`);
                else {
                  peer.sent += chunk.length;
                  dump?.(`> ${peer.label}`, chunk);
                }
              }
              touch();
              return true;
            },
            onEnd: () => logger.event('eof', 'stdin closed; still receiving (UDP has no end of stream)'),
          });

      return {
        onMessage(msg, peer, rinfo) {
          dump?.(`< ${peer.label}`, msg);
          if (!stdio) {
            peer.sent += msg.length;
            dump?.(`> ${peer.label}`, msg);
            socket.send(msg, rinfo.port, rinfo.address);
            return;
          }
          if (!stdio.deliver(msg)) return;
          if (!lastPeer) stdio.read();
          // Without -k only the last peer matters: replies go to it.
          if (!opts.keepOpen && lastPeer && lastPeer !== peer) peers.drop(lastPeer, 'another peer spoke');
          lastPeer = peer;
        },
        stop: () => stdio?.stop(),
      };
    },
  });
  if (io.endStdout) io.stdout.end();
  return 0;
}
