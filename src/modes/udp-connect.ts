/**
 * `sockcat connect -u ADDR` (or udp:ADDR): the nc -u client. Each stdin read is one datagram
 * (split at 65507 bytes); datagrams from the server go to stdout. After stdin EOF we keep
 * listening for --quit-after SECS of silence, so replies still in flight are not lost.
 */
import { connectUdpSocket, peerLabel, sendDatagrams, udpError, udpLabel } from '../endpoints/udp';
import type { UdpAddress } from '../endpoints/udp';
import { hexDumper } from '../hexdump';
import { formatDuration, createLogger } from '../log';
import type { ConnectOptions } from './connect';
import { interruptedExitCode, type ModeIO } from '../io';
import { StdioDatagrams } from '../runtime/datagram';

/** Default wait for replies after stdin EOF. */
export const DEFAULT_QUIT_AFTER_MS = 1000;

/** Runs the UDP client; resolves with the exit code (0 done, 1 port unreachable or send failure). */
export async function runUdpConnect(opts: ConnectOptions, io: ModeIO): Promise<number> {
  const logger = createLogger(opts, io.stderr);
  const addr = opts.address as UdpAddress;
  const where = udpLabel(addr);
  const socket = await connectUdpSocket(addr);
  const local = peerLabel(socket.address());
  logger.event('connected', `sending to ${where} from ${local}`, { server: where, local });
  const dump = opts.hex ? hexDumper(io.stderr, { in: '<', out: '>' }) : undefined;
  const quitAfterMs = opts.quitAfterMs ?? DEFAULT_QUIT_AFTER_MS;
  const started = Date.now();
  let bytesIn = 0;
  let bytesOut = 0;

  let how = 'eof';
  const code = await new Promise<number>((resolve) => {
    let stdinDone = false;
    let quitTimer: NodeJS.Timeout | undefined;
    let idleTimer: NodeJS.Timeout | undefined;
    const finish = (exitCode: number, reason: string) => {
      how = reason;
      if (quitTimer) clearTimeout(quitTimer);
      if (idleTimer) clearTimeout(idleTimer);
      io.signal.removeEventListener('abort', onAbort);
      stdio.stop();
      resolve(exitCode);
    };
    // Ctrl-C: an interrupted session (130/143), as for TCP.
    const onAbort = () => finish(interruptedExitCode(io.signal) ?? 0, 'interrupted');
    // Every datagram either way restarts the timers: replies may come in several pieces.
    const traffic = () => {
      if (opts.idleTimeoutMs) {
        if (idleTimer) clearTimeout(idleTimer);
        idleTimer = setTimeout(() => {
          logger.error('idle', `${where}: idle timeout, closing`);
          finish(1, 'idle');
        }, opts.idleTimeoutMs);
      }
      if (stdinDone) {
        if (quitTimer) clearTimeout(quitTimer);
        quitTimer = setTimeout(() => finish(0, 'eof'), quitAfterMs);
      }
    };
    const stdio = new StdioDatagrams({
      stdin: io.stdin,
      stdout: io.stdout,
      logger,
      crlf: opts.crlf,
      async send(chunk) {
        const err = await sendDatagrams(chunk, (part, cb) => socket.send(part, cb));
        if (err) {
          logger.error('send', udpError(err, where).message);
          finish(1, 'error');
          return false;
        }
        bytesOut += chunk.length;
        dump?.('out', chunk);
        traffic();
        return true;
      },
      onEnd() {
        stdinDone = true;
        logger.event('eof', `stdin closed; waiting ${formatDuration(quitAfterMs)} for replies`, { side: 'client', server: where, quit_after_ms: quitAfterMs });
        traffic();
      },
    });
    socket.on('message', (msg: Buffer) => {
      bytesIn += msg.length;
      dump?.('in', msg);
      stdio.deliver(msg);
      traffic();
    });
    socket.on('error', (err: Error) => {
      logger.error('error', udpError(err, where).message);
      finish(1, 'error');
    });
    if (io.signal.aborted) return onAbort();
    io.signal.addEventListener('abort', onAbort, { once: true });
    stdio.read();
    traffic();
  });

  socket.close();
  logger.closed({ server: where, bytesIn, bytesOut, durationMs: Date.now() - started, reason: how });
  // Let stdout flush before the caller ends it or exits.
  await new Promise<void>((ok) => io.stdout.write('', () => ok()));
  if (io.endStdout) io.stdout.end();
  return code;
}
