/**
 * `sockcat listen ADDR`: the nc -l server.
 * - default: accept one client; stdin → client, client → stdout; done when the client closes.
 * - --keep-open (-k): serve clients concurrently until stopped; every client's bytes go to
 *   stdout, stdin goes to every client; stdin EOF shuts down the write side of every client.
 * - --echo: a built-in echo server for any number of concurrent clients.
 */
import { Duplex, PassThrough, type Writable } from 'node:stream';
import { addressKind, type Address, type Connection } from '../endpoints/index';
import { StdioStream, LfToCrlf, stdinLingerMs } from '../endpoints/stdio';
import { hexDumper } from '../hexdump';
import { relay, resetStream, type RelayResult } from '../relay';
import { DEFAULT_MAX_QUEUE } from './broadcast';
import type { ConnectionSummary } from '../runtime/listener';
import { openServer, type ServerModeOptions } from '../runtime/server';
import { exitCodeFor } from './connect';
import { runUdpListen } from './udp-listen';
import type { ModeIO } from '../io';

export interface ListenOptions extends ServerModeOptions {
  address: Address;
  keepOpen?: boolean;
  echo?: boolean;
  /** Shut down the client's write side on stdin EOF (default true). */
  shutdown?: boolean;
  crlf?: boolean;
  idleTimeoutMs?: number;
  hex?: boolean;
  /** -k: cap on the stdin bytes queued for one client (default 1 MiB); past it the client is cut off. */
  maxQueue?: number;
  /** UDP -k: forget a peer after this many ms without a datagram from it. */
  udpIdleMs?: number;
}

/** Runs the server; resolves with the exit code (0 ok, 1 the client reset or a runtime failure). */
export async function runListen(opts: ListenOptions, io: ModeIO): Promise<number> {
  // Datagrams are not a byte stream: they have their own server loop (runtime/datagram.ts).
  if (addressKind(opts.address) === 'datagram') return runUdpListen(opts, io);
  // Without -k (nor --echo) one client is served: no --max-conns to fit to the open-file limit.
  const server = await openServer(opts, io, { mode: 'listen', fdsPerClient: 1, oneShot: !opts.keepOpen && !opts.echo });
  if (server.role === 'done') return server.exitCode;
  const { logger } = server;
  const dumpFor = (conn: Connection) =>
    opts.hex ? hexDumper(io.stderr, { a: `< ${conn.remote.label}`, b: `> ${conn.remote.label}` }) : undefined;
  const summarize = (r: RelayResult): ConnectionSummary => ({ received: r.aToB, sent: r.bToA, reason: r.reason });
  /** -v: the client's FIN as connect -v says the server's, and ours (`ours` says why we send it). */
  const eofFor = (conn: Connection, id: number, ours: string) => (side: 'a' | 'b') =>
    side === 'a'
      ? logger.halfClosed('client', `${conn.remote.label} closed its side`, { client: conn.remote.label, id })
      : logger.halfClosed('server', `${ours}; shutting down our write side to ${conn.remote.label}`, { client: conn.remote.label, id });
  let exitCode = 0;

  if (opts.echo) {
    await server.serve({
      handle: async (conn, ctx) => {
        // The relay joined to a PassThrough is an echo: what comes in goes back, with
        // backpressure, and the client's EOF is echoed as our EOF once everything is sent.
        const r = await relay(conn.stream, new PassThrough(), { idleTimeoutMs: opts.idleTimeoutMs, signal: ctx.signal, onData: dumpFor(conn), onEof: eofFor(conn, ctx.id, 'all echoed') });
        return summarize(r);
      },
    });
    return 0;
  }

  if (!opts.keepOpen) {
    await server.serve({
      maxAccepts: 1,
      handle: async (conn, ctx) => {
        const stdio = new StdioStream(io.stdin, io.stdout, { crlf: opts.crlf, endOutput: io.endStdout });
        const r = await relay(conn.stream, stdio, {
          // The client's EOF ends the exchange once its bytes are on stdout and stdin has nothing
          // more queued (see stdinLingerMs); stdin's EOF only half-closes.
          closeWait: { a: stdinLingerMs(io.stdin), b: Infinity },
          shutdown: { b: opts.shutdown !== false },
          idleTimeoutMs: opts.idleTimeoutMs,
          signal: ctx.signal,
          onData: dumpFor(conn),
          onEof: eofFor(conn, ctx.id, 'stdin closed'),
        });
        exitCode = exitCodeFor(r, conn.remote.label, logger, io.signal);
        return summarize(r);
      },
    });
    return exitCode;
  }

  // -k: one stdin shared by every client, each with a bounded queue of it.
  const maxQueue = opts.maxQueue ?? DEFAULT_MAX_QUEUE;
  const fanout = new StdinFanout(io.stdin, opts.crlf, opts.shutdown !== false, maxQueue);
  try {
    await server.serve({
      handle: async (conn, ctx) => {
        let overflowed = false;
        const tap = fanout.tap(io.stdout, () => {
          // It read nothing while others read a whole queue's worth: cut it off so memory stays
          // bounded, with a reset (what it was owed was never sent; a FIN would say "that was all").
          overflowed = true;
          logger.warn('too-slow', `disconnecting ${conn.remote.label}: not reading, more than ${maxQueue} bytes of stdin queued for it (--max-queue)`, {
            client: conn.remote.label,
            max_queue: maxQueue,
          });
          resetStream(conn.stream);
        });
        const r = await relay(conn.stream, tap, {
          closeWait: { a: 0, b: Infinity },
          idleTimeoutMs: opts.idleTimeoutMs,
          signal: ctx.signal,
          onData: dumpFor(conn),
          onEof: eofFor(conn, ctx.id, 'stdin closed'),
        });
        return { ...summarize(r), reason: overflowed ? 'slow' : r.reason };
      },
    });
  } finally {
    fanout.close();
  }
  if (io.endStdout) io.stdout.end();
  return 0;
}

/**
 * Reads stdin once and hands every chunk to every connected client's tap. Each tap queues at
 * most `maxQueue` bytes: stdin is paused only while every client has a full read buffer, so
 * clients that keep up are never held back by one that does not; a client whose queue would
 * pass the cap is cut off (its `onOverflow`). Memory: at most maxQueue (or one stdin chunk, when
 * that is larger) per client.
 */
class StdinFanout {
  private readonly taps = new Set<ClientTap>();
  private ended = false;
  private readonly input: NodeJS.ReadableStream;
  private readonly onData = (chunk: Buffer) => {
    let wantsMore = false;
    for (const tap of [...this.taps]) {
      // A client with nothing queued takes any chunk (stdin reads up to 64 KiB at once, more than a
      // small --max-queue): only one that has not read what it already had is over the cap.
      if (tap.readableLength > 0 && tap.readableLength + chunk.length > this.maxQueue) {
        tap.overflow();
        continue;
      }
      if (tap.push(chunk)) wantsMore = true;
    }
    // Wait only when nobody can take more; a tap that drains resumes us (ClientTap._read).
    if (!wantsMore) this.input.pause();
  };
  private readonly onEnd = () => {
    this.ended = true;
    if (this.shutdownOnEof) for (const tap of this.taps) tap.push(null);
  };

  constructor(
    input: NodeJS.ReadableStream,
    crlf: boolean | undefined,
    private readonly shutdownOnEof: boolean,
    private readonly maxQueue: number,
  ) {
    this.input = crlf ? input.pipe(new LfToCrlf()) : input;
    this.input.on('data', this.onData);
    this.input.on('end', this.onEnd);
    this.input.on('error', this.onEnd);
    // Nothing is read until a client is there to receive it.
    this.input.pause();
  }

  /** A new client's tap; `onOverflow` is called once if its queue would pass the cap. */
  tap(output: Writable, onOverflow: () => void): ClientTap {
    const tap = new ClientTap(output, () => this.input.resume(), (t) => this.taps.delete(t), onOverflow);
    this.taps.add(tap);
    this.input.resume();
    if (this.ended && this.shutdownOnEof) tap.push(null);
    return tap;
  }

  close(): void {
    this.input.off('data', this.onData);
    this.input.off('end', this.onEnd);
    this.input.off('error', this.onEnd);
    this.input.pause();
  }
}

/** One client's view of the shared stdin (readable) and stdout (writable). */
class ClientTap extends Duplex {
  constructor(
    private readonly output: Writable,
    private readonly wantMore: () => void,
    private readonly onGone: (tap: ClientTap) => void,
    private readonly onOverflow: () => void,
  ) {
    super({ allowHalfOpen: true });
  }
  /** Its queue is over the cap: it gets nothing more, and its client is cut off. */
  overflow(): void {
    this.onGone(this);
    this.onOverflow();
  }
  override _read(): void {
    this.wantMore();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.output.write(chunk)) cb();
    else this.output.once('drain', () => cb());
  }
  override _final(cb: () => void): void {
    cb();
  }
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.onGone(this);
    this.wantMore();
    cb(err);
  }
}
