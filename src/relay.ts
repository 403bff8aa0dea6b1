/**
 * The relay: joins two duplex streams with two one-way copies. Every mode that connects two
 * streams (listen, connect, forward, exec) goes through here.
 *
 * - Backpressure: a copy pauses its source when the destination's buffer is full and resumes on
 *   'drain', so memory stays bounded by the streams' high-water marks however slow a reader is.
 * - Half-close: EOF on one side ends the other side's writable (a TCP shutdown), and the other
 *   direction keeps flowing: a reply sent after the peer's FIN still arrives. Streams must be
 *   opened with allowHalfOpen for this (every endpoint in src/endpoints does).
 * - Ending: the session is over when both directions have ended and flushed. Because a FIN
 *   looks the same whether the peer half-closed or went away, the remaining direction may then
 *   go quiet for at most `closeWait` milliseconds: every byte it moves restarts that wait, so a
 *   reply that keeps streaming is never cut, while a peer that neither talks nor closes is.
 *   Bytes still being written out count as moving: a slow reader is not a silent peer.
 *   Then both streams are destroyed.
 * - Errors: the first error on either side destroys both streams and is reported once.
 * - Bulk reads: once a TCP/unix socket shows it is moving bulk data to another one (a read of
 *   BULK_READ_BYTES or more), it reads into one buffer of its own, reused for every read, instead
 *   of a fresh 64 KiB allocation per read whose garbage cost major GCs (see readIntoOwnBuffer()).
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { isResetError } from './errors';
import { isObserved } from './lifecycle';

export type Side = 'a' | 'b';

/** How a relay session ended. */
export type EndReason =
  /** Both directions reached EOF and were flushed (or the close-wait after the first EOF was 0). */
  | 'eof'
  /** One side reset the connection (ECONNRESET, EPIPE). */
  | 'reset'
  /** Any other stream error. */
  | 'error'
  /** One direction ended and the other did not finish within the close-wait. */
  | 'close-wait'
  /** Nothing moved for idleTimeoutMs. */
  | 'idle'
  /** The signal was aborted, or a stream was destroyed from outside. */
  | 'aborted';

export interface RelayOptions {
  /**
   * Once one direction has ended, how many milliseconds the other may stay silent before both
   * streams are closed (each byte it moves restarts the wait); Infinity waits until it ends by itself. Give one number, or one per side whose EOF came first
   * (e.g. { a: 0, b: Infinity }: when the network side ends we are done, when stdin ends we wait).
   * Default Infinity.
   */
  closeWait?: number | Partial<Record<Side, number>>;
  /** Whether EOF read from a side is passed on as a shutdown of the other side's write half. Default true for both. */
  shutdown?: Partial<Record<Side, boolean>>;
  /** Destroy both streams after this many milliseconds without a byte either way (0 or undefined: never). */
  idleTimeoutMs?: number;
  /** Aborting it destroys both streams; the result's reason is 'aborted'. */
  signal?: AbortSignal;
  /** Sees every chunk, with the side it was read from (for hex dumps). */
  onData?: (from: Side, chunk: Buffer) => void;
  /** Called when a side sends EOF (for -v logs). */
  onEof?: (from: Side) => void;
  /**
   * When one side resets, reset the other one too (RST instead of FIN) where it is a TCP socket,
   * so a relay between two peers (forward) passes the failure on instead of turning it into a
   * clean EOF. Default false.
   */
  propagateReset?: boolean;
  /**
   * Sides whose EOF is passed on only once confirmed: when the side's stream ends, the relay
   * awaits the gate; true passes the EOF on as usual, false ends the session as a reset. A tunnel
   * uses it because a FIN on its data connection looks the same whether the far end finished or
   * its process was killed; the confirmation comes over the tunnel's control channel.
   */
  eofGate?: Partial<Record<Side, () => Promise<boolean>>>;
  /**
   * Sides reset (RST where they are TCP sockets) rather than closed whenever the session ends
   * other than by a clean EOF both ways, so a client of a broken tunnel never mistakes a cut
   * transfer for a complete one. Default: none.
   */
  resetOnFailure?: Partial<Record<Side, boolean>>;
}

export interface RelayResult {
  /** Bytes read from a and written to b. */
  aToB: number;
  /** Bytes read from b and written to a. */
  bToA: number;
  reason: EndReason;
  /** The first error, for 'reset' and 'error'. */
  error?: Error;
  /** Which side the error came from. */
  errorSide?: Side;
  /** Which side sent EOF first, if any did. */
  firstEof?: Side;
  durationMs: number;
}

/**
 * Default close-wait for server modes that join two peers (forward, exec): after one side's EOF
 * the other direction gets 2 s to finish. socat uses 0.5 s (-t); we give a slow reply more room,
 * and it bounds how long an exec'd child may outlive a client that went away.
 */
export const DEFAULT_CLOSE_WAIT_MS = 2000;

const other = (s: Side): Side => (s === 'a' ? 'b' : 'a');
const noop = () => {};

/**
 * Closes a stream with a TCP reset (RST) where it is a plain TCP socket, so the peer sees a
 * failure rather than a clean EOF; any other stream is simply destroyed.
 */
export function resetStream(s: Duplex): void {
  // A TLS socket opened over a TCP socket of ours (new TLSSocket(socket), tls.connect({ socket })):
  // the reset belongs to that TCP socket.
  const parent = (s as { _parent?: Duplex | null })._parent;
  if (parent && parent !== s && typeof (parent as { resetAndDestroy?: unknown }).resetAndDestroy === 'function' && !parent.destroyed) {
    resetStream(parent);
    s.destroy();
    return;
  }
  const reset = (s as { resetAndDestroy?: () => void }).resetAndDestroy;
  if (typeof reset === 'function' && !s.destroyed) {
    try {
      reset.call(s);
      return;
    } catch {
      // Not a TCP handle (a TLS or pipe stream): destroy() below closes it.
    }
  }
  s.destroy();
}

const EMPTY = Buffer.alloc(0);

/**
 * The TCP socket under `s` that can be probed for a hidden reset (a zero-length write: the
 * kernel fails it with ECONNRESET on a reset connection and accepts it after a FIN), or undefined.
 * libuv reports a reset that comes after data it has read as EOF (it takes the hang-up for the
 * end of the stream without reading the error), so a client that sends and resets at once would
 * otherwise look like one that sent and closed. Only an idle writable side is probed: queued
 * writes fail by themselves on a reset connection.
 */
/** A plain TCP or unix socket (not TLS): what it reads comes in buffers of its own, and a write it completes at once is in the kernel. */
export function isPlainSocket(s: Duplex | undefined): s is net.Socket {
  return s instanceof net.Socket && !(s instanceof tls.TLSSocket);
}

function resetProbeFor(s: Duplex): net.Socket | undefined {
  const sock = s instanceof tls.TLSSocket ? (s as { _parent?: Duplex })._parent : s;
  if (!isPlainSocket(sock)) return undefined;
  if (!(sock as { _handle?: unknown })._handle || sock.destroyed || sock.writableEnded || sock.writableLength > 0) return undefined;
  if (s !== sock && (s.writableEnded || s.writableLength > 0)) return undefined;
  return sock;
}

/** A read this large means the sender is ahead of us (bulk transfer): time for a reused read buffer. */
const BULK_READ_BYTES = 32 * 1024;
/** Size of a socket's own read buffer (what Node allocates per read otherwise). */
const READ_BUFFER_BYTES = 128 * 1024;

/** net.Socket's private symbols behind its `onread` option, looked up once (undefined: this Node has none). */
let onreadSymbols: { buffer: symbol; callback: symbol; generator: symbol } | null | undefined = null;
function onreadSymbolsOf(s: net.Socket) {
  if (onreadSymbols !== null) return onreadSymbols;
  const find = (name: string) => Object.getOwnPropertySymbols(s).find((sym) => sym.description === name);
  const [buffer, callback, generator] = [find('kBuffer'), find('kBufferCb'), find('kBufferGen')];
  onreadSymbols = buffer && callback && generator ? { buffer, callback, generator } : undefined;
  return onreadSymbols;
}

/**
 * Whether `src` → `dst` may read into a reused buffer: both plain TCP/unix sockets (a TLS socket
 * or another stream may keep a reference to a chunk after its write callback, as a PassThrough
 * does), `src` not observed by --trace/--stats (they count reads where Node pushes them), and a
 * Node whose sockets take a user buffer the way net.Socket's `onread` option sets one up.
 */
function canReadIntoOwnBuffer(src: Duplex, dst: Duplex): src is net.Socket {
  if (!isPlainSocket(src) || !isPlainSocket(dst) || isObserved(src)) return false;
  const handle = (src as { _handle?: { useUserBuffer?: unknown } })._handle;
  return typeof handle?.useUserBuffer === 'function' && onreadSymbolsOf(src as net.Socket) !== undefined;
}

/**
 * Switches `src` (an open socket: see canReadIntoOwnBuffer()) to reading into one buffer of its
 * own, reused for every read, each read written on to `dst` at once. It is what net.Socket's
 * `onread: { buffer, callback }` option does, which Node takes only when it creates a socket (and
 * its servers create the accepted ones), so the same private fields are set here and the handle
 * is told to use the buffer. From the next read on, `counted(n)` sees each read's size (false:
 * the session is over, stop) and 'data' no longer fires; 'end', 'error' and 'close' stay as they
 * are, and pause()/resume() stop and start the reads. Call it between reads, with nothing
 * buffered in `src` (what was would come out as 'data' after the new reads).
 *
 * The buffer is free again once `dst` has handed the chunk to the kernel: at once when the
 * write completed inside write() (nothing left in writableLength), else when that write's
 * callback comes; until then `src` is paused, which is also the backpressure: at most one buffer
 * in flight.
 */
function readIntoOwnBuffer(src: net.Socket, dst: Duplex, counted: (n: number) => boolean): void {
  const buffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
  let writes = 0;
  let writesDone = 0;
  /** The write that holds the buffer (its number), 0 when none does. */
  let heldUntil = 0;
  const written = () => {
    writesDone++;
    if (heldUntil === 0 || writesDone < heldUntil) return;
    heldUntil = 0;
    if (!src.destroyed && !src.readableEnded) src.resume();
  };
  const read = (n: number, buf: Buffer): boolean => {
    if (!counted(n)) return false;
    writes++;
    dst.write(n === buf.length ? buf : buf.subarray(0, n), written);
    if (dst.writableLength === 0) return true;
    heldUntil = writes;
    src.pause();
    return false;
  };
  const sym = onreadSymbolsOf(src)!;
  const internals = src as unknown as Record<symbol, unknown> & { _handle: { useUserBuffer(b: Buffer): void } };
  internals[sym.buffer] = buffer;
  internals[sym.callback] = read;
  internals[sym.generator] = null;
  internals._handle.useUserBuffer(buffer);
}

/**
 * Relays a ⇄ b until both directions are done, an error happens, or a timer fires.
 * Resolves (never rejects) with byte counts and how it ended; both streams are destroyed by then.
 */
export function relay(a: Duplex, b: Duplex, opts: RelayOptions = {}): Promise<RelayResult> {
  return new Promise((resolve) => new Session(a, b, opts, resolve).start());
}

/**
 * Where a stream's listeners find the copy that reads from it. The listeners are module-level
 * functions (as ws's `socketOnData`), not closures made per session: an idle relayed connection
 * keeps one Session and two Copy objects, not two dozen closures and their contexts
 * (bench/RESULTS.md, wave 5: memory per idle connection).
 */
const kCopy = Symbol('sockcat.relay.copy');
type Relayed = Duplex & { [kCopy]?: Copy };

/** One session: two copies, the timers, the result. */
class Session {
  readonly result: RelayResult = { aToB: 0, bToA: 0, reason: 'eof', durationMs: 0 };
  readonly started = Date.now();
  finished = false;
  lastActivity = Date.now();
  /** The two silence timers: 'close-wait' after the first EOF, 'idle' for the whole session. */
  closeWaitTimer: NodeJS.Timeout | undefined;
  idleTimer: NodeJS.Timeout | undefined;
  readonly copyA: Copy;
  readonly copyB: Copy;
  /** The abort signal's listener, while there is a signal. */
  private onAbort: (() => void) | undefined;

  constructor(
    readonly a: Duplex,
    readonly b: Duplex,
    readonly opts: RelayOptions,
    private readonly resolve: (r: RelayResult) => void,
  ) {
    this.copyA = new Copy(this, 'a', a, b);
    this.copyB = new Copy(this, 'b', b, a);
  }

  start(): void {
    const { opts, a, b } = this;
    if (opts.signal?.aborted) return this.finish('aborted');
    if (opts.signal) {
      this.onAbort = () => this.finish('aborted');
      opts.signal.addEventListener('abort', this.onAbort, { once: true });
    }
    this.copyA.listen();
    this.copyB.listen();
    if (opts.idleTimeoutMs && opts.idleTimeoutMs > 0) this.armQuietTimer('idle', opts.idleTimeoutMs, opts.idleTimeoutMs);
    // Streams may arrive paused (pauseOnConnect, or a stream read before the relay): start them.
    a.resume();
    b.resume();
    this.copyA.catchUp();
    this.copyB.catchUp();
  }

  copyOf(side: Side): Copy {
    return side === 'a' ? this.copyA : this.copyB;
  }

  closeWaitFor(side: Side): number {
    const cw = this.opts.closeWait;
    if (cw === undefined) return Infinity;
    if (typeof cw === 'number') return cw;
    return cw[side] ?? Infinity;
  }

  /** The copy reading from `from` has ended and the other stream's writable side is done. */
  isDirectionDone(from: Side): boolean {
    return this.copyOf(from).ended && this.copyOf(other(from)).flushed;
  }

  finish(reason: EndReason, error?: Error, errorSide?: Side): void {
    if (this.finished) return;
    this.finished = true;
    const { opts, a, b } = this;
    clearTimeout(this.closeWaitTimer);
    clearTimeout(this.idleTimer);
    if (this.onAbort) opts.signal?.removeEventListener('abort', this.onAbort);
    this.copyA.unlisten();
    this.copyB.unlisten();
    if (reason === 'reset' && errorSide && opts.propagateReset) resetStream(this.copyOf(other(errorSide)).src);
    // A session we give up on (a local failure such as a full disk on stdout, or a stop by
    // signal) must not look complete to the peer: a FIN would say "that was all". A TCP peer
    // whose stream we had not finished writing to gets a reset instead.
    if (reason === 'error' && errorSide) resetStream(this.copyOf(other(errorSide)).src);
    if (reason === 'aborted') for (const c of [this.copyA, this.copyB]) if (!c.flushed || !c.ended) resetStream(c.src);
    if (reason !== 'eof') for (const side of ['a', 'b'] as const) if (opts.resetOnFailure?.[side]) resetStream(this.copyOf(side).src);
    for (const s of [a, b]) {
      // Late errors (e.g. a write racing the destroy) must not crash the process.
      s.on('error', noop);
      s.destroy();
    }
    const result = this.result;
    result.reason = reason;
    result.error = error;
    result.errorSide = errorSide;
    result.durationMs = Date.now() - this.started;
    this.resolve(result);
  }

  /** The copy that reads from `from` is over: its EOF was passed on and flushed. */
  directionDone(from: Side): void {
    if (this.finished) return;
    if (this.isDirectionDone('a') && this.isDirectionDone('b')) return this.finish('eof');
    const wait = this.closeWaitFor(from);
    if (wait === Infinity || this.closeWaitTimer) return;
    if (wait <= 0) return this.finish('eof');
    this.lastActivity = Date.now();
    this.armQuietTimer('close-wait', wait, wait);
  }

  /**
   * Ends the session with `reason` once nothing has moved for `ms`. One timer at a time: when
   * it fires early (something moved meanwhile) it is set again for the rest of the silence.
   */
  armQuietTimer(reason: 'close-wait' | 'idle', ms: number, delay: number): void {
    const timer = setTimeout(() => {
      // After an EOF, bytes still being written out mean the other side is not quiet: it is
      // waiting for a slow reader, and a write shows no progress until it completes (a 128 KiB
      // write to a reader at 30 KB/s takes 4 s). Cutting it would end a reply with a FIN, as
      // if it were complete. A reader that takes nothing at all is --idle-timeout's to end.
      if (reason === 'close-wait' && (this.a.writableLength > 0 || this.b.writableLength > 0)) this.lastActivity = Date.now();
      const quiet = Date.now() - this.lastActivity;
      if (quiet >= ms) this.finish(reason);
      else this.armQuietTimer(reason, ms, ms - quiet);
    }, delay);
    if (reason === 'close-wait') this.closeWaitTimer = timer;
    else this.idleTimer = timer;
  }
}

/** One direction: reads from `src` (its side), writes to `dst`; also what is known of `src`'s two halves. */
class Copy {
  /** `src`'s readable side has ended (its EOF is known for sure). */
  ended = false;
  /** `src`'s writable side has been ended and flushed (or deliberately left open) by the other copy. */
  flushed = false;
  /** Whether this direction has been looked at for a reused read buffer (once, at its first bulk read). */
  bulkChecked = false;
  /** A zero-length write is asking the socket whether its EOF was a reset. */
  probing = false;

  constructor(
    readonly session: Session,
    readonly from: Side,
    readonly src: Duplex,
    readonly dst: Duplex,
  ) {}

  listen(): void {
    const { src, dst } = this;
    (src as Relayed)[kCopy] = this;
    src.on('data', copyOnData);
    // A 'drain' of dst lets the copy that writes to it go on: dst's own copy knows its peer.
    dst.on('drain', copyOnDrain);
    src.on('end', copyOnEnd);
    src.on('error', copyOnError);
    src.on('close', copyOnClose);
  }

  unlisten(): void {
    const { src, dst } = this;
    src.off('data', copyOnData);
    dst.off('drain', copyOnDrain);
    src.off('end', copyOnEnd);
    src.off('error', copyOnError);
    src.off('close', copyOnClose);
  }

  /** Counts a read (a 'data' chunk, or one done into the reused buffer); false once the session is over. */
  counted(n: number): boolean {
    const s = this.session;
    if (s.finished) return false;
    if (this.from === 'a') s.result.aToB += n;
    else s.result.bToA += n;
    s.lastActivity = Date.now();
    return true;
  }

  srcEnded(): void {
    const s = this.session;
    if (s.finished || this.ended || this.probing) return;
    // A reset that arrives right after data is reported by Node as a plain EOF: ask the
    // socket before taking it for a clean end.
    const probe = resetProbeFor(this.src);
    if (probe) {
      this.probing = true;
      probe.write(EMPTY, (err?: Error | null) => {
        this.probing = false;
        if (s.finished) return;
        if (err && isResetError(err)) return s.finish('reset', err, this.from);
        this.srcEndedForSure();
      });
      return;
    }
    this.srcEndedForSure();
  }

  srcEndedForSure(): void {
    const s = this.session;
    const from = this.from;
    if (s.finished || this.ended) return;
    this.ended = true;
    s.result.firstEof ??= from;
    s.opts.onEof?.(from);
    if (s.opts.shutdown?.[from] === false) {
      s.copyOf(other(from)).flushed = true;
      return s.directionDone(from);
    }
    const gate = s.opts.eofGate?.[from];
    if (gate) {
      gate().then(
        (ok) => {
          if (s.finished) return;
          if (ok) this.passEof();
          else s.finish('reset', new Error('the connection broke before it ended cleanly'), from);
        },
        (err: Error) => s.finish('error', err, from),
      );
      return;
    }
    this.passEof();
  }

  passEof(): void {
    // Pass the EOF on as a shutdown of the other side's write half (TCP FIN), once what
    // was written before it has been flushed.
    this.dst.end(() => {
      this.session.copyOf(other(this.from)).flushed = true;
      this.session.directionDone(this.from);
    });
  }

  srcClosed(): void {
    // A stream that closes before both of its halves are done was destroyed under us.
    const s = this.session;
    if (!s.finished && !(this.ended && this.flushed)) {
      const err = (this.src as any).errored as Error | null;
      if (err) s.finish(isResetError(err) ? 'reset' : 'error', err, this.from);
      else s.finish('aborted');
    }
  }

  /**
   * A stream may have ended or closed before the relay was called: a client that connects and
   * closes at once (nc -z, a health check) while forward is still connecting upstream has
   * already emitted 'end', with nobody listening; one that reset is already destroyed. Act on
   * it now, or the EOF is never passed on and the session waits for the other side forever.
   * (A stream destroyed but not yet closed still emits 'close', which srcClosed handles.)
   */
  catchUp(): void {
    const s = this.src;
    if (s.readableEnded) this.srcEnded();
    if ((s as any).closed === true) this.srcClosed();
  }
}

function copyOnData(this: Relayed, chunk: Buffer): void {
  const c = this[kCopy]!;
  if (!c.counted(chunk.length)) return;
  const s = c.session;
  s.opts.onData?.(c.from, chunk);
  // Switched before this chunk is written: the switch only changes where the next read
  // lands. Never with onData, which could keep the chunk.
  if (!c.bulkChecked && chunk.length >= BULK_READ_BYTES && this.readableLength === 0) {
    c.bulkChecked = true;
    // Made here, not with the copy: nothing more per connection until one moves bulk data.
    if (!s.opts.onData && canReadIntoOwnBuffer(this, c.dst)) readIntoOwnBuffer(this, c.dst, (n) => c.counted(n));
  }
  if (!c.dst.write(chunk)) this.pause();
}

/** This stream took what was waiting to be written to it: the other stream, which feeds it, may be read again. */
function copyOnDrain(this: Relayed): void {
  const c = this[kCopy]!;
  if (c.session.finished) return;
  c.session.lastActivity = Date.now();
  c.dst.resume();
}

function copyOnEnd(this: Relayed): void {
  this[kCopy]!.srcEnded();
}

function copyOnError(this: Relayed, err: Error): void {
  const c = this[kCopy]!;
  c.session.finish(isResetError(err) ? 'reset' : 'error', err, c.from);
}

function copyOnClose(this: Relayed): void {
  this[kCopy]!.srcClosed();
}
