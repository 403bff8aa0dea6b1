/**
 * The tunnel's multiplexer: every public client's connection travels as one stream over the
 * agent's single control connection (TLS by default), after the handshake of protocol.ts.
 *
 * Frames: a 9-byte header — type (1 byte), stream id (4 bytes, big-endian), payload length
 * (4 bytes, big-endian) — then the payload.
 *
 * | type | id | payload |
 * |---|---|---|
 * | DATA   | ≥ 1 | 1..MAX_DATA_PAYLOAD bytes of the stream |
 * | OPEN   | ≥ 1 | client and server addresses (relay → agent only; ids strictly increase) |
 * | FIN    | ≥ 1 | none: the sender will write no more on this stream (half-close) |
 * | RST    | ≥ 1 | none: the stream failed on the sender's side; reset yours |
 * | WINDOW | ≥ 1 | 4 bytes: how many more bytes of DATA the receiver takes on this stream |
 * | PING / PONG | 0 | none: heartbeats |
 *
 * Flow control is per stream, as in HTTP/2: a sender may have at most WINDOW_BYTES of DATA
 * unacknowledged on a stream; the receiver gives credit back as its consumer (the TCP socket to
 * the public client or to LOCAL) takes the bytes, so a slow consumer stops its own stream only,
 * never the others, and the memory a stream holds is bounded by its window. The window is sized
 * to a bandwidth-delay product (frp #2987: a small fixed window capped its tunnels at 10-15 Mbit/s).
 *
 * FrameParser only ever calls its handlers with well-formed frames or throws a MuxError: the
 * connection is then closed and every stream on it reset. It buffers at most one header and one
 * small control payload; DATA payloads are handed over in pieces as they arrive. Mux gathers the
 * pieces of one DATA frame (over TLS, one per 16 KiB record) into one reused 64 KiB buffer and
 * hands the frame over whole, so its socket takes it in one write instead of four or five.
 *
 * A bulk read that filled a 64 KiB buffer of its own is freed as soon as its bytes are sent on or
 * written out (releaseReadBuffer()), instead of at V8's next garbage collection: V8 counts that
 * external memory towards its old-generation limit, and GB/s of it made both processes run a full
 * mark-compact every ~50 ms of a transfer (bench/RESULTS.md, tunnel section). TLS records come in
 * blocks shared between reads, which are left to the GC.
 */
import type net from 'node:net';
import { Duplex } from 'node:stream';
import { isPlainSocket } from '../relay';
import type { WireAddress } from './protocol';

export const FRAME_HEADER_BYTES = 9;
/** Largest DATA payload: a sender cuts bigger writes, a receiver refuses bigger frames. */
export const MAX_DATA_PAYLOAD = 64 * 1024;
/**
 * Bytes a sender may have in flight per stream. 1 MiB carries ~80 Mbit/s per stream at 100 ms
 * round trip, ~8 Gbit/s on loopback; an idle stream holds none of it.
 */
export const WINDOW_BYTES = 1024 * 1024;
/** Streams an agent carries at once; more OPENs are refused with RST. */
export const MAX_STREAMS = 65_536;
/** Queued bytes on the connection above which streams wait for it to drain before sending DATA. */
const CONNECTION_HIGH_WATER = 512 * 1024;
/** Credit is given back once this much of the window was consumed (fewer, bigger WINDOW frames). */
const CREDIT_THRESHOLD = WINDOW_BYTES / 4;
const MAX_ADDRESS_BYTES = 64;
/** `ArrayBuffer.prototype.transfer` (Node ≥ 21); on older Node nothing is released early. */
const transfer = (ArrayBuffer.prototype as { transfer?: (this: ArrayBuffer, length: number) => ArrayBuffer }).transfer;

/**
 * Whether `chunk` is the only view of its ArrayBuffer that a read handed out. Node 24 carves
 * socket reads (and TLS records) out of 64 KiB blocks shared by every socket of the process: a
 * read that left room in its block may share it with another socket's read, and Buffer's own
 * pool is shared too. A read that filled a whole block (a bulk TCP read) is the block's only
 * user. Smaller buffers are never released (Buffer.poolSize is 8 KiB).
 */
export function ownsItsBuffer(chunk: Buffer): boolean {
  return chunk.byteOffset === 0 && chunk.length === chunk.buffer.byteLength && chunk.length > 8 * 1024 && chunk.buffer instanceof ArrayBuffer;
}

/**
 * Frees the memory under `ab` now (detaching it: every view of it becomes empty) instead of at
 * V8's next garbage collection. Only for a buffer that ownsItsBuffer() says a socket read had
 * alone, once its bytes were sent on or handed to the kernel and nobody holds them.
 */
export function releaseReadBuffer(ab: ArrayBufferLike): void {
  if (!transfer || !(ab instanceof ArrayBuffer)) return;
  try {
    transfer.call(ab, 0);
  } catch {
    // Not detachable (an embedder's buffer): the GC frees it as before.
  }
}


export const FrameType = {
  DATA: 0,
  OPEN: 1,
  FIN: 2,
  RST: 3,
  WINDOW: 4,
  PING: 5,
  PONG: 6,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** A frame that breaks the protocol: the connection is closed. */
export class MuxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MuxError';
  }
}

/** Where a stream comes from: the public client, and the relay's address it reached. */
export interface OpenInfo {
  client: WireAddress;
  server: WireAddress;
}

export interface ParserHandlers {
  /** A piece of a DATA frame's payload (a frame may come in several pieces; never empty); `last`: the frame's last piece. */
  data(id: number, chunk: Buffer, last: boolean): void;
  /** Any other frame, whole. */
  frame(type: FrameType, id: number, payload: Buffer): void;
}

/** Largest payload of each type, and whether it needs a stream id. */
const LIMITS: Record<number, { max: number; min: number; stream: boolean }> = {
  [FrameType.DATA]: { min: 1, max: MAX_DATA_PAYLOAD, stream: true },
  [FrameType.OPEN]: { min: 6, max: 2 * (1 + MAX_ADDRESS_BYTES + 2), stream: true },
  [FrameType.FIN]: { min: 0, max: 0, stream: true },
  [FrameType.RST]: { min: 0, max: 0, stream: true },
  [FrameType.WINDOW]: { min: 4, max: 4, stream: true },
  [FrameType.PING]: { min: 0, max: 0, stream: false },
  [FrameType.PONG]: { min: 0, max: 0, stream: false },
};

/** Cuts the connection's bytes into frames. push() throws MuxError at the first bad header. */
export class FrameParser {
  private readonly header = Buffer.alloc(FRAME_HEADER_BYTES);
  private headerFill = 0;
  private type: FrameType = FrameType.DATA;
  private id = 0;
  /** Payload bytes still to come for the current frame (header complete). */
  private remaining = -1;
  private small: Buffer | undefined;
  private smallFill = 0;

  constructor(private readonly handlers: ParserHandlers) {}

  push(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.remaining < 0) {
        const n = Math.min(FRAME_HEADER_BYTES - this.headerFill, chunk.length - off);
        chunk.copy(this.header, this.headerFill, off, off + n);
        this.headerFill += n;
        off += n;
        if (this.headerFill < FRAME_HEADER_BYTES) return;
        this.headerFill = 0;
        this.startFrame();
        if (this.remaining === 0) this.endFrame(Buffer.alloc(0));
        continue;
      }
      const n = Math.min(this.remaining, chunk.length - off);
      if (this.type === FrameType.DATA) {
        this.remaining -= n;
        const last = this.remaining === 0;
        if (last) this.remaining = -1;
        this.handlers.data(this.id, chunk.subarray(off, off + n), last);
        off += n;
        continue;
      }
      chunk.copy(this.small!, this.smallFill, off, off + n);
      this.smallFill += n;
      this.remaining -= n;
      off += n;
      if (this.remaining === 0) {
        const payload = this.small!;
        this.small = undefined;
        this.endFrame(payload);
      }
    }
  }

  private startFrame(): void {
    const type = this.header[0];
    const id = this.header.readUInt32BE(1);
    const len = this.header.readUInt32BE(5);
    const limit = LIMITS[type];
    if (!limit) throw new MuxError(`unknown frame type ${type}`);
    if (len < limit.min || len > limit.max) throw new MuxError(`frame of type ${type} with a ${len}-byte payload (allowed ${limit.min}-${limit.max})`);
    if (limit.stream ? id === 0 : id !== 0) throw new MuxError(`frame of type ${type} on stream ${id}`);
    this.type = type as FrameType;
    this.id = id;
    this.remaining = len;
    if (type !== FrameType.DATA && len > 0) {
      this.small = Buffer.allocUnsafe(len);
      this.smallFill = 0;
    }
  }

  private endFrame(payload: Buffer): void {
    this.remaining = -1;
    this.handlers.frame(this.type, this.id, payload);
  }
}

/** A frame header. */
export function frameHeader(type: FrameType, id: number, length: number): Buffer {
  const h = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  h[0] = type;
  h.writeUInt32BE(id, 1);
  h.writeUInt32BE(length, 5);
  return h;
}

/** A whole frame (header and payload) in one buffer. */
export function encodeFrame(type: FrameType, id: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([frameHeader(type, id, payload.length), payload]);
}

function encodeAddress(a: WireAddress): Buffer {
  const text = Buffer.from(a.address, 'utf8').subarray(0, MAX_ADDRESS_BYTES);
  const b = Buffer.allocUnsafe(1 + text.length + 2);
  b[0] = text.length;
  text.copy(b, 1);
  b.writeUInt16BE(a.port & 0xffff, 1 + text.length);
  return b;
}

/** An OPEN frame's payload. */
export function encodeOpen(info: OpenInfo): Buffer {
  return Buffer.concat([encodeAddress(info.client), encodeAddress(info.server)]);
}

/** An OPEN frame's payload read back; MuxError when it is not two addresses exactly. */
export function parseOpen(p: Buffer): OpenInfo {
  let off = 0;
  const read = (): WireAddress => {
    const len = p[off];
    if (len === undefined || len > MAX_ADDRESS_BYTES || off + 1 + len + 2 > p.length) throw new MuxError('malformed OPEN frame');
    const address = p.toString('utf8', off + 1, off + 1 + len);
    const port = p.readUInt16BE(off + 1 + len);
    off += 1 + len + 2;
    if (!/^[0-9a-fA-F.:%\w-]*$/.test(address)) throw new MuxError('malformed address in an OPEN frame');
    return { address, port };
  };
  const client = read();
  const server = read();
  if (off !== p.length) throw new MuxError('malformed OPEN frame (trailing bytes)');
  return { client, server };
}

/** The error a stream is destroyed with when the far side reset it or the connection was lost. */
function resetError(message: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(message);
  err.code = 'ECONNRESET';
  return err;
}

const noop = () => {};

export interface MuxOptions {
  /** The relay opens streams; the agent accepts them. */
  role: 'relay' | 'agent';
  /** A stream the far side opened (agent only). */
  onStream?: (stream: MuxStream, info: OpenInfo) => void;
  /** Called once when the connection ends, with why. */
  onClose?: (reason: Error) => void;
}

/**
 * One control connection carrying many streams. Any protocol error, stream error or close
 * ends it once: every stream on it is destroyed with ECONNRESET, so the shared relay resets the
 * TCP connection it was joined to (a cut tunnel never looks like a clean end).
 */
export class Mux {
  private readonly streams = new Map<number, MuxStream>();
  private readonly parser: FrameParser;
  private nextId = 1;
  private lastOpened = 0;
  private closedReason: Error | undefined;
  /** Streams with DATA to send, waiting for the connection to drain. */
  private readonly blocked = new Set<MuxStream>();
  private corked = false;
  /** The DATA frame being gathered (see onDataPiece()), and how much of it is in. */
  private gather: Buffer | undefined;
  private gathered = 0;
  /** Whether a stream kept a DATA piece of the read being parsed. */
  private readBufferHeld = false;
  /** When the last bytes arrived (for heartbeats). */
  lastSeen = Date.now();

  constructor(
    readonly socket: Duplex,
    private readonly opts: MuxOptions,
  ) {
    this.parser = new FrameParser({ data: (id, chunk, last) => this.onDataPiece(id, chunk, last), frame: (t, id, p) => this.onFrame(t, id, p) });
    this.uncork = this.uncork.bind(this);
    socket.on('data', (chunk: Buffer) => {
      if (this.closedReason) return;
      this.lastSeen = Date.now();
      // A read that fills its buffer alone is released once parsed, if no stream kept a DATA piece
      // of it (see onDataFrame()).
      this.readBufferHeld = false;
      try {
        this.parser.push(chunk);
      } catch (err) {
        this.close(err as Error);
        return;
      }
      if (!this.readBufferHeld && ownsItsBuffer(chunk)) releaseReadBuffer(chunk.buffer);
    });
    socket.on('drain', () => this.onDrain());
    socket.on('end', () => this.close(new MuxError('the peer closed the connection')));
    socket.on('error', (err: Error) => this.close(err));
    socket.on('close', () => this.close(new MuxError('the connection closed')));
    socket.resume();
    // A connection lost before the mux took it over emits no more 'close': end now (after the
    // caller has its Mux in hand).
    if (socket.destroyed) process.nextTick(() => this.close(new MuxError('the connection closed')));
  }

  get closed(): boolean {
    return this.closedReason !== undefined;
  }

  /** Live streams. */
  get size(): number {
    return this.streams.size;
  }

  /** Opens a stream to the far side (relay only). */
  open(info: OpenInfo): MuxStream {
    const id = this.nextId++;
    const s = new MuxStream(this, id);
    if (this.closedReason) {
      s.destroy(resetError(`the tunnel broke: ${this.closedReason.message}`));
      return s;
    }
    this.streams.set(id, s);
    this.send(encodeFrame(FrameType.OPEN, id, encodeOpen(info)));
    return s;
  }

  ping(): void {
    this.send(frameHeader(FrameType.PING, 0, 0));
  }

  /** Ends the connection with `reason`: every stream is reset, the socket destroyed. */
  close(reason: Error): void {
    if (this.closedReason) return;
    this.closedReason = reason;
    this.socket.on('error', noop);
    this.socket.destroy();
    for (const s of [...this.streams.values()]) s.destroy(resetError(`the tunnel broke: ${reason.message}`));
    this.streams.clear();
    this.blocked.clear();
    this.opts.onClose?.(reason);
  }

  /**
   * Writes frame bytes, batching everything written in one tick into one write (one TLS record
   * run); `sent` is called once the connection has taken them (not if it is lost first).
   */
  send(buf: Buffer, sent?: () => void): void {
    if (this.closedReason || this.socket.destroyed) return;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(this.uncork);
    }
    if (sent) this.socket.write(buf, (err) => err || sent());
    else this.socket.write(buf);
  }

  private uncork(): void {
    this.corked = false;
    this.socket.uncork();
  }

  /** Whether the connection has so much queued that DATA should wait for 'drain'. */
  get full(): boolean {
    return this.socket.writableLength >= CONNECTION_HIGH_WATER;
  }

  /** `s` has DATA to send once the connection drains. */
  waitForDrain(s: MuxStream): void {
    this.blocked.add(s);
  }

  private onDrain(): void {
    // Streams go in the order they came; one that fills the connection again stops the round.
    for (const s of this.blocked) {
      if (this.full) return;
      this.blocked.delete(s);
      s.flush();
    }
  }

  /** `s` is done (both FINs, or a reset): its id is forgotten; late frames for it are dropped. */
  forget(s: MuxStream): void {
    if (this.streams.get(s.id) === s) this.streams.delete(s.id);
    this.blocked.delete(s);
  }

  /**
   * A DATA frame that comes in pieces (over TLS: one per 16 KiB record) is gathered into one
   * buffer and handed over whole, so the stream's socket writes it with one write() instead of
   * one per piece. The buffer is reused for the next frame unless the stream kept it.
   */
  private onDataPiece(id: number, piece: Buffer, last: boolean): void {
    if (last && this.gathered === 0) {
      if (!this.onDataFrame(id, piece)) this.readBufferHeld = true;
      return;
    }
    this.gather ??= Buffer.allocUnsafeSlow(MAX_DATA_PAYLOAD);
    piece.copy(this.gather, this.gathered);
    this.gathered += piece.length;
    if (!last) return;
    const frame = this.gather.subarray(0, this.gathered);
    this.gathered = 0;
    if (!this.onDataFrame(id, frame)) this.gather = undefined;
  }

  /** A whole DATA frame; returns whether its bytes are free again (see MuxStream.receive()). */
  private onDataFrame(id: number, chunk: Buffer): boolean {
    const s = this.streams.get(id);
    // A stream we reset or finished: its last bytes may still be on the way.
    if (!s) {
      if (id >= this.nextId && id > this.lastOpened) throw new MuxError(`DATA on stream ${id}, which was never opened`);
      return true;
    }
    return s.receive(chunk);
  }

  private onFrame(type: FrameType, id: number, payload: Buffer): void {
    switch (type) {
      case FrameType.PING:
        this.send(frameHeader(FrameType.PONG, 0, 0));
        return;
      case FrameType.PONG:
        return;
      case FrameType.OPEN: {
        if (this.opts.role !== 'agent') throw new MuxError('the agent may not open streams');
        if (id <= this.lastOpened) throw new MuxError(`OPEN of stream ${id} after stream ${this.lastOpened}`);
        this.lastOpened = id;
        const info = parseOpen(payload);
        if (this.streams.size >= MAX_STREAMS) {
          this.send(frameHeader(FrameType.RST, id, 0));
          return;
        }
        const s = new MuxStream(this, id);
        this.streams.set(id, s);
        this.opts.onStream?.(s, info);
        return;
      }
      case FrameType.FIN:
      case FrameType.RST:
      case FrameType.WINDOW: {
        const s = this.streams.get(id);
        if (!s) {
          if (id >= this.nextId && id > this.lastOpened) throw new MuxError(`frame of type ${type} on stream ${id}, which was never opened`);
          return;
        }
        if (type === FrameType.FIN) s.receiveFin();
        else if (type === FrameType.RST) s.receiveReset();
        else s.receiveCredit(payload.readUInt32BE(0));
        return;
      }
      default:
        throw new MuxError(`unexpected frame type ${type}`);
    }
  }
}

/**
 * One tunnelled connection: a Duplex with half-close (end() sends FIN, the far side's FIN ends
 * the readable side), backpressure (a write completes only once its bytes fit in the far side's
 * window and the connection is not full), and reset: destroy() before both FINs sends RST, and
 * the far side's RST (or the connection's loss) destroys it with ECONNRESET.
 */
export class MuxStream extends Duplex {
  /** Bytes we may still send. */
  private sendWindow = WINDOW_BYTES;
  /** Bytes the far side may still send us. */
  private recvWindow = WINDOW_BYTES;
  /** Consumed bytes not yet credited back. */
  private unacked = 0;
  /** Received bytes the consumer has not asked for yet (push() said stop). */
  private owed = 0;
  private pending: { chunk: Buffer; cb: (err?: Error | null) => void; release: ArrayBuffer | undefined } | undefined;
  /**
   * The plain socket relay() joins this stream to (see relayWith()): what this stream reads is
   * written to it, and what is written to this stream is its reads.
   */
  private sink: net.Socket | undefined;
  private finSent = false;
  private finReceived = false;
  private resetReceived = false;

  constructor(
    private readonly mux: Mux,
    readonly id: number,
  ) {
    super({ allowHalfOpen: true, readableHighWaterMark: 64 * 1024, writableHighWaterMark: 64 * 1024 });
    // A reset can come before anyone joined the stream to a socket: never an uncaught error.
    this.on('error', noop);
  }

  /**
   * Tells the stream that relay() joins it to `peer` and nothing else holds their chunks. When
   * `peer` is a plain socket, buffers are then freed as soon as their bytes are gone instead of
   * piling up for V8's GC: a DATA piece `peer` took in the same tick is in the kernel, so the
   * connection's read buffer can be released (Mux.onDataFrame()); each of `peer`'s reads written
   * here is released once its last byte is sent.
   */
  relayWith(peer: Duplex): void {
    if (isPlainSocket(peer)) this.sink = peer;
  }

  /**
   * DATA from the far side. Returns whether the bytes are gone from memory we share: handed to
   * the kernel by our sink within push() (or dropped, the stream being destroyed).
   */
  receive(chunk: Buffer): boolean {
    if (this.finReceived) throw new MuxError(`DATA on stream ${this.id} after its FIN`);
    if (chunk.length > this.recvWindow) throw new MuxError(`stream ${this.id} overran its window`);
    this.recvWindow -= chunk.length;
    if (this.destroyed) return true;
    if (this.push(chunk)) this.credit(chunk.length);
    else this.owed += chunk.length;
    return this.readableLength === 0 && this.sink !== undefined && this.sink.writableLength === 0;
  }

  receiveFin(): void {
    if (this.finReceived) throw new MuxError(`second FIN on stream ${this.id}`);
    this.finReceived = true;
    this.push(null);
    if (this.finSent) this.mux.forget(this);
  }

  receiveReset(): void {
    this.resetReceived = true;
    this.mux.forget(this);
    this.destroy(resetError('the far side of the tunnel reset the connection'));
  }

  receiveCredit(n: number): void {
    if (n === 0 || this.sendWindow + n > 2 ** 31) throw new MuxError(`bad WINDOW of ${n} on stream ${this.id}`);
    this.sendWindow += n;
    this.flush();
  }

  private credit(n: number): void {
    this.unacked += n;
    if (this.unacked < CREDIT_THRESHOLD) return;
    const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 4);
    frame[0] = FrameType.WINDOW;
    frame.writeUInt32BE(this.id, 1);
    frame.writeUInt32BE(4, 5);
    frame.writeUInt32BE(this.unacked, FRAME_HEADER_BYTES);
    this.mux.send(frame);
    this.recvWindow += this.unacked;
    this.unacked = 0;
  }

  override _read(): void {
    if (this.owed > 0) {
      const n = this.owed;
      this.owed = 0;
      this.credit(n);
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const release = this.sink !== undefined && ownsItsBuffer(chunk) ? (chunk.buffer as ArrayBuffer) : undefined;
    this.pending = { chunk, cb, release };
    this.flush();
  }

  /** Sends as much of the pending write as the window and the connection allow. */
  flush(): void {
    const p = this.pending;
    if (!p || this.destroyed) return;
    while (p.chunk.length > 0) {
      if (this.mux.closed) {
        this.pending = undefined;
        return p.cb(resetError('the tunnel is closed'));
      }
      if (this.sendWindow <= 0) return; // receiveCredit() calls again
      if (this.mux.full) return this.mux.waitForDrain(this);
      const n = Math.min(p.chunk.length, this.sendWindow, MAX_DATA_PAYLOAD);
      this.mux.send(frameHeader(FrameType.DATA, this.id, n));
      // The connection's write callbacks come in order: after the last piece's, the whole read is sent.
      const release = n === p.chunk.length ? p.release : undefined;
      this.mux.send(n === p.chunk.length ? p.chunk : p.chunk.subarray(0, n), release && (() => releaseReadBuffer(release)));
      this.sendWindow -= n;
      p.chunk = p.chunk.subarray(n);
    }
    this.pending = undefined;
    p.cb();
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.mux.closed) return cb(resetError('the tunnel is closed'));
    this.finSent = true;
    this.mux.send(frameHeader(FrameType.FIN, this.id, 0));
    if (this.finReceived) this.mux.forget(this);
    cb();
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    // Destroyed before both halves closed cleanly: the far side must see a reset, not an end.
    if (!(this.finSent && this.finReceived) && !this.resetReceived && !this.mux.closed) this.mux.send(frameHeader(FrameType.RST, this.id, 0));
    this.mux.forget(this);
    this.pending = undefined;
    cb(err);
  }
}
