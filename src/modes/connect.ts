/**
 * `sockcat connect ADDR`: the nc client. stdin → server, server → stdout.
 * On stdin EOF the socket's write side is shut down and we keep reading until the server
 * closes, so a reply sent after our EOF still arrives (--no-shutdown keeps the write side open).
 */
import { addressKind, connectAddress, formatAddress, type Address } from '../endpoints/index';
import { StdioStream, stdinLingerMs } from '../endpoints/stdio';
import { hexDumper } from '../hexdump';
import { createLogger, Logger, type LogOptions } from '../log';
import { relay, type RelayResult } from '../relay';
import { describeError, NetError } from '../errors';
import { interruptedExitCode, type ModeIO } from '../io';
import { runUdpConnect } from './udp-connect';
import { CERTIFICATE_ALERT } from '../endpoints/tls';

export interface ConnectOptions extends LogOptions {
  address: Address;
  /** Give up connecting after this many ms. */
  connectTimeoutMs?: number;
  /** Close after this many ms without traffic either way. */
  idleTimeoutMs?: number;
  /** Shut down our write side on stdin EOF (default true). */
  shutdown?: boolean;
  /** LF → CRLF on stdin. */
  crlf?: boolean;
  /** UDP: after stdin EOF, quit once no datagram came for this many ms. */
  quitAfterMs?: number;
  hex?: boolean;
}

/** Runs the client; resolves with the exit code (0 ok, 1 network failure). Connection errors reject with a NetError. */
export async function runConnect(opts: ConnectOptions, io: ModeIO): Promise<number> {
  // Datagrams are not a byte stream: they have their own client loop.
  if (addressKind(opts.address) === 'datagram') return runUdpConnect(opts, io);
  const logger = createLogger(opts, io.stderr);
  const label = formatAddress(opts.address);
  let conn;
  try {
    conn = await connectAddress(opts.address, { timeoutMs: opts.connectTimeoutMs, signal: io.signal, log: logger });
  } catch (err) {
    // Ctrl-C while connecting: interrupted, not a network failure.
    const interrupted = interruptedExitCode(io.signal);
    if (interrupted !== undefined) return interrupted;
    throw err;
  }
  logger.event('connected', `connected to ${conn.remote.label} from ${conn.local.label}`, { server: conn.remote.label, local: conn.local.label });
  const stdio = new StdioStream(io.stdin, io.stdout, { crlf: opts.crlf, endOutput: io.endStdout });
  const dump = opts.hex ? hexDumper(io.stderr, { a: '<', b: '>' }) : undefined;
  const result = await relay(conn.stream, stdio, {
    // The server's EOF ends the session once its bytes are on stdout and stdin has nothing more
    // queued (see stdinLingerMs); stdin's EOF only half-closes, and we wait for the server.
    closeWait: { a: stdinLingerMs(io.stdin), b: Infinity },
    shutdown: { b: opts.shutdown !== false },
    idleTimeoutMs: opts.idleTimeoutMs,
    signal: io.signal,
    onData: dump,
    onEof: (side) =>
      side === 'a'
        ? logger.halfClosed('server', `${label} closed its side`, { server: conn.remote.label })
        : logger.halfClosed('client', 'stdin closed; shutting down our write side', { server: conn.remote.label }),
  });
  logger.closed({ server: conn.remote.label, bytesIn: result.aToB, bytesOut: result.bToA, durationMs: result.durationMs, reason: result.reason });
  if (rejectedClientCertificate(opts.address, result)) {
    const how = result.reason === 'reset' ? 'it reset the connection' : result.reason === 'error' ? `it sent ${String((result.error as NodeJS.ErrnoException)?.code ?? 'an alert').replace(/^ERR_SSL_(TLSV1_)?ALERT_/, 'the alert ').toLowerCase().replace(/_/g, ' ')}` : 'it closed the connection';
    logger.error('rejected', `${label}: the server rejected our client certificate (${how} right after the TLS handshake, before sending anything: is --client-cert signed by a CA it trusts?)`);
    return 1;
  }
  return exitCodeFor(result, label, logger, io.signal);
}

/**
 * True when a TLS server let the handshake finish and then shut the door on our client
 * certificate. In TLS 1.3 the client's handshake is over before the server has checked that
 * certificate, and Node servers refuse it by closing (a reset when data was in flight), without
 * an alert: a session that presented a certificate and ended by the server's hand with nothing
 * received is that refusal. An alert after the handshake (OpenSSL servers) says it outright.
 */
function rejectedClientCertificate(address: Address, result: RelayResult): boolean {
  if (address.scheme !== 'tls' || !address.tls?.clientCert || result.aToB > 0) return false;
  if (result.reason === 'reset') return true;
  if (result.reason === 'error') return CERTIFICATE_ALERT.test(String((result.error as NodeJS.ErrnoException)?.code));
  return result.firstEof === 'a';
}

/**
 * Maps how a relay ended to an exit code, printing the reason for failures. A session stopped by
 * a signal (`signal` aborted with its name) is interrupted: 130 (SIGINT) or 143 (SIGTERM).
 */
export function exitCodeFor(result: { reason: string; error?: Error }, label: string, logger: Logger, signal?: AbortSignal): number {
  if (result.reason === 'aborted' && signal) {
    const interrupted = interruptedExitCode(signal);
    if (interrupted !== undefined) return interrupted;
  }
  if (result.error instanceof NetError) {
    // Already worded for the user (e.g. "writing to stdout: no space left on device").
    logger.error(result.reason, result.error.message);
    return 1;
  }
  switch (result.reason) {
    case 'eof':
    case 'aborted':
    // The peer had closed and stdin went quiet: the exchange is over.
    case 'close-wait':
      return 0;
    case 'idle':
      logger.error('idle', `${label}: idle timeout, closing`);
      return 1;
    default:
      logger.error(result.reason, result.error ? describeError(result.error, { action: 'io', address: label }) : `${label}: ${result.reason}`);
      return 1;
  }
}
