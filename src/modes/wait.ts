/**
 * `sockcat wait HOST:PORT`: waits until a server is ready, for scripts (what wait-on and
 * wait-port do): it tries to connect every RETRY_INTERVAL_MS until a connection succeeds, and
 * with --tls until the handshake (and the certificate check) succeeds, and with --expect TEXT
 * until a line containing TEXT arrives. Exit 0 when ready; 1 when --timeout passes first, with
 * one line saying what the last attempt saw (refused, unreachable, timed out, wrong banner…).
 */
import { connectAddress, formatAddress, type Address } from '../endpoints/index';
import { formatDuration, createLogger, type LogOptions } from '../log';
import type { ModeIO } from '../io';

/** Pause between two attempts. */
export const RETRY_INTERVAL_MS = 250;
export const DEFAULT_WAIT_TIMEOUT_MS = 30_000;
/** Longest line kept while looking for --expect: a server that never sends a newline must not fill memory. */
const MAX_EXPECT_LINE = 64 * 1024;

export interface WaitOptions extends LogOptions {
  address: Address;
  /** Give up after this many ms; 0: never. */
  timeoutMs?: number;
  /** Ready only once a line containing this text arrives. */
  expect?: string;
}

/** One attempt's outcome: ready, or why not in words. */
type Attempt = { ready: true } | { ready: false; why: string; /** The deadline stopped it before the server answered. */ cut?: boolean };

/** Resolves with 0 once the address is ready, 1 after the timeout. */
export async function runWait(opts: WaitOptions, io: ModeIO): Promise<number> {
  const logger = createLogger(opts, io.stderr);
  const label = formatAddress(opts.address);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS;
  const started = Date.now();
  const deadline = timeoutMs > 0 ? started + timeoutMs : Infinity;
  // One controller for the whole wait: the timeout and Ctrl-C both stop the attempt in flight.
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  io.signal.addEventListener('abort', onAbort, { once: true });
  const timer = Number.isFinite(deadline) ? setTimeout(() => stop.abort(), timeoutMs) : undefined;
  let attempts = 0;
  let last = 'no attempt made';
  try {
    while (!stop.signal.aborted) {
      attempts++;
      const r = await attempt(opts, stop.signal);
      if (r.ready) {
        const what = opts.expect !== undefined ? ` ('${opts.expect}' received)` : '';
        logger.event('ready', `${label} is ready${what} after ${formatDuration(Date.now() - started)} (${attempts} attempt${attempts === 1 ? '' : 's'})`, {
          address: label,
          attempts,
          duration_ms: Date.now() - started,
        });
        return 0;
      }
      // An attempt cut short by the deadline says little: keep the reason seen before it, if any.
      if (r.cut && attempts > 1) break;
      if (r.why !== last) logger.event('attempt', `${label}: ${r.why}${stop.signal.aborted ? '' : '; retrying'}`, { address: label, attempt: attempts, reason: r.why });
      last = r.why;
      await pause(RETRY_INTERVAL_MS, stop.signal);
    }
  } finally {
    clearTimeout(timer);
    io.signal.removeEventListener('abort', onAbort);
  }
  const why = io.signal.aborted ? 'interrupted' : `not ready after ${formatDuration(timeoutMs)}`;
  logger.error('timeout', `${label} ${why} (${attempts} attempt${attempts === 1 ? '' : 's'}); last: ${last}`, { address: label, attempts, reason: last });
  return 1;
}

/** One try: connect (the TLS transport also handshakes and verifies), then look for --expect. */
async function attempt(opts: WaitOptions, signal: AbortSignal): Promise<Attempt> {
  let conn;
  try {
    conn = await connectAddress(opts.address, { signal });
  } catch (err) {
    if (signal.aborted) return { ready: false, why: `no answer from ${formatAddress(opts.address)} in time (the last attempt was still pending)`, cut: true };
    return { ready: false, why: (err as Error).message };
  }
  const stream = conn.stream;
  if (opts.expect === undefined) {
    // Ready: hang up politely (FIN), the server sees an empty connection.
    stream.end();
    stream.destroy();
    return { ready: true };
  }
  return new Promise<Attempt>((resolve) => {
    const expect = opts.expect!;
    let line = '';
    let lastLine = '';
    const finish = (r: Attempt) => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      signal.removeEventListener('abort', onAbort);
      stream.destroy();
      resolve(r);
    };
    const onData = (chunk: Buffer) => {
      line += chunk.toString('utf8');
      const lines = line.split('\n');
      line = lines.pop()!;
      for (const l of lines) {
        if (l.includes(expect)) return finish({ ready: true });
        if (l.trim() !== '') lastLine = l.replace(/\r$/, '');
      }
      // A partial line already holding the text counts: a prompt ("login: ") has no newline.
      if (line.includes(expect)) return finish({ ready: true });
      if (line.length > MAX_EXPECT_LINE) line = line.slice(-expect.length);
    };
    const notYet = (how: string) => `connected, but ${how} without sending '${expect}'${lastLine ? ` (last line: '${shorten(lastLine)}')` : ''}`;
    const onEnd = () => finish({ ready: false, why: notYet('the server closed the connection') });
    const onError = (err: Error) => finish({ ready: false, why: notYet(`the connection failed (${err.message})`) });
    const onAbort = () => finish({ ready: false, why: notYet('the time ran out') });
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('error', onError);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function shorten(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
