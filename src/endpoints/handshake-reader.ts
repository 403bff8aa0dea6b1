/**
 * Reads a handshake off a stream in exact pieces (SOCKS greetings, requests, an HTTP response
 * head), without taking a byte more than asked: whatever the peer sent after the handshake stays
 * in the stream's buffer, so the relay that follows passes it on first.
 *
 * Every read is bounded (the caller asks for at most a few hundred bytes at a time, and
 * readUntil has a cap), so a peer cannot make us buffer more than that, and the whole handshake
 * has one deadline, so a peer that sends half a greeting and waits cannot hold a slot forever.
 */
import type { Duplex } from 'node:stream';

/** The peer closed, reset or timed out before the handshake was complete. */
export class HandshakeEnded extends Error {
  constructor(
    message: string,
    /** 'eof', 'reset', 'timeout', 'too-long' or 'aborted'. */
    readonly why: 'eof' | 'reset' | 'timeout' | 'too-long' | 'aborted',
  ) {
    super(message);
    this.name = 'HandshakeEnded';
  }
}

export class HandshakeReader {
  private waiting: (() => void) | undefined;
  private ended = false;
  private failure: HandshakeEnded | undefined;
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly signal: AbortSignal | undefined;

  constructor(
    private readonly stream: Duplex,
    opts: { timeoutMs?: number; signal?: AbortSignal } = {},
  ) {
    stream.on('readable', this.wake);
    stream.on('end', this.onEnd);
    stream.on('error', this.onError);
    stream.on('close', this.onClose);
    const timeoutMs = opts.timeoutMs ?? 0;
    if (timeoutMs > 0) {
      this.timer = setTimeout(() => this.fail(new HandshakeEnded(`no complete handshake within ${timeoutMs / 1000} s`, 'timeout')), timeoutMs);
    }
    if (opts.signal) {
      if (opts.signal.aborted) this.failure = new HandshakeEnded('aborted', 'aborted');
      else opts.signal.addEventListener('abort', this.onAbort, { once: true });
      this.signal = opts.signal;
    }
  }

  private readonly wake = () => {
    const w = this.waiting;
    this.waiting = undefined;
    w?.();
  };
  private readonly onEnd = () => {
    this.ended = true;
    this.wake();
  };
  private readonly onError = (err: Error) => {
    const code = (err as NodeJS.ErrnoException).code;
    this.fail(new HandshakeEnded(code === 'ECONNRESET' || code === 'EPIPE' ? 'connection reset' : err.message, 'reset'));
  };
  private readonly onClose = () => {
    this.ended = true;
    this.wake();
  };
  private readonly onAbort = () => this.fail(new HandshakeEnded('aborted', 'aborted'));

  private fail(err: HandshakeEnded) {
    this.failure ??= err;
    this.wake();
  }

  private wait(): Promise<void> {
    return new Promise((resolve) => {
      this.waiting = resolve;
    });
  }

  /** Exactly `n` bytes (1 ≤ n ≤ 64 KiB); rejects with HandshakeEnded if the peer stops first. */
  async read(n: number): Promise<Buffer> {
    for (;;) {
      if (this.failure) throw this.failure;
      const chunk = this.stream.read(n) as Buffer | null;
      if (chunk !== null) {
        // At EOF read() hands over what is left even when it is short of n.
        if (chunk.length < n) throw new HandshakeEnded('closed in the middle of the handshake', 'eof');
        return chunk;
      }
      if (this.ended || this.stream.destroyed) throw new HandshakeEnded(this.stream.readableLength > 0 ? 'closed in the middle of the handshake' : 'closed before the handshake', 'eof');
      await this.wait();
    }
  }

  /** One byte. */
  async byte(): Promise<number> {
    return (await this.read(1))[0];
  }

  /**
   * Bytes up to and including `delimiter`, at most `max` bytes in all; what follows the
   * delimiter stays in the stream. Rejects with 'too-long' past `max`.
   */
  async readUntil(delimiter: Buffer, max: number): Promise<Buffer> {
    let got = Buffer.alloc(0);
    for (;;) {
      if (this.failure) throw this.failure;
      const chunk = this.stream.read() as Buffer | null;
      if (chunk !== null) {
        // Search from just before the new bytes: the delimiter may straddle two chunks.
        const from = Math.max(0, got.length - delimiter.length + 1);
        got = Buffer.concat([got, chunk]);
        const at = got.indexOf(delimiter, from);
        if (at >= 0) {
          const end = at + delimiter.length;
          if (end < got.length) this.stream.unshift(got.subarray(end));
          return got.subarray(0, end);
        }
        if (got.length > max) throw new HandshakeEnded(`more than ${max} bytes without the end of the header`, 'too-long');
        continue;
      }
      if (this.ended || this.stream.destroyed) throw new HandshakeEnded('closed in the middle of the handshake', 'eof');
      await this.wait();
    }
  }

  /** Puts bytes back at the front of the stream (what was peeked to tell the protocol apart). */
  unshift(bytes: Buffer): void {
    this.stream.unshift(bytes);
  }

  /** Stops listening; the stream is left paused with any unread bytes in its buffer. */
  release(): void {
    if (this.timer) clearTimeout(this.timer);
    this.signal?.removeEventListener('abort', this.onAbort);
    this.stream.off('readable', this.wake);
    this.stream.off('end', this.onEnd);
    this.stream.off('error', this.onError);
    this.stream.off('close', this.onClose);
    this.waiting = undefined;
  }
}
