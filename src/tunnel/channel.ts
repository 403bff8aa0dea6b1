/**
 * A framed message channel over one stream (a tunnel's control connection, or a data
 * connection until its `open`): reads frames with FrameReader, hands each message to the
 * current handler or to whoever awaits next(), and writes frames. Any protocol error, stream
 * error or close ends it once, with a reason in words.
 */
import type { Duplex } from 'node:stream';
import { encodeFrame, FrameReader, ProtocolError, type Message } from './protocol';

/** How long a refused peer is given to read the refusal and close (see close()). */
const LINGER_MS = 2000;

type Waiter = { resolve: (m: Message) => void; reject: (e: Error) => void; timer?: NodeJS.Timeout };

export class Channel {
  private readonly reader = new FrameReader();
  private readonly queue: Message[] = [];
  private waiter: Waiter | undefined;
  private handler: ((m: Message) => void) | undefined;
  private closedReason: Error | undefined;
  private readonly closeCallbacks: Array<(reason: Error) => void> = [];
  /** Set by rawAfterNext(): stop reading frames after the next message. */
  private rawAfter = false;
  private detached = false;
  /** When the last frame arrived (for heartbeats). */
  lastSeen = Date.now();

  constructor(readonly stream: Duplex) {
    this.onData = this.onData.bind(this);
    this.onEnd = this.onEnd.bind(this);
    this.onError = this.onError.bind(this);
    this.onClose = this.onClose.bind(this);
    stream.on('data', this.onData);
    stream.on('end', this.onEnd);
    stream.on('error', this.onError);
    stream.on('close', this.onClose);
  }

  get closed(): boolean {
    return this.closedReason !== undefined;
  }

  /** Writes one message; false when the stream's buffer is full (the caller may ignore it for small control frames). */
  send(msg: Message): boolean {
    if (this.closedReason || this.stream.destroyed || this.stream.writableEnded) return false;
    return this.stream.write(encodeFrame(msg));
  }

  /** The next message, or a rejection when the channel ends or `timeoutMs` passes first. */
  next(timeoutMs: number, what = 'a reply'): Promise<Message> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.closedReason) return Promise.reject(this.closedReason);
    return new Promise((resolve, reject) => {
      const w: Waiter = { resolve, reject };
      w.timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new ProtocolError(`no ${what} within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.waiter = w;
    });
  }

  /**
   * The next message is the last frame on this stream: raw bytes follow it (a data connection's
   * `open`), so they are kept for detach() instead of being read as frames.
   */
  rawAfterNext(): void {
    this.rawAfter = true;
  }

  /** From now on every message goes to `handler` (queued ones first). */
  setHandler(handler: (m: Message) => void): void {
    this.handler = handler;
    while (this.queue.length && this.handler === handler && !this.closedReason) handler(this.queue.shift()!);
  }

  /** Called once when the channel ends, with why. */
  onClosed(cb: (reason: Error) => void): void {
    if (this.closedReason) cb(this.closedReason);
    else this.closeCallbacks.push(cb);
  }

  /**
   * Stops reading frames and hands the stream back, paused, with any bytes read past the last
   * frame pushed back into it: what follows is raw tunnelled data.
   */
  detach(): Duplex {
    this.detached = true;
    this.stream.off('data', this.onData);
    this.stream.off('end', this.onEnd);
    this.stream.off('error', this.onError);
    this.stream.off('close', this.onClose);
    this.stream.pause();
    const rest = this.reader.takeRest();
    if (rest.length) this.stream.unshift(rest);
    return this.stream;
  }

  /**
   * Ends the channel with `reason` and destroys the stream. A stream whose write side was already
   * ended (a refusal's last frame is on its way) is not destroyed at once: closing a socket with
   * unread bytes makes the kernel send a reset, which can destroy that frame before the peer reads
   * it. What the peer still sends is read and dropped until it closes too, for at most LINGER_MS.
   */
  close(reason: Error): void {
    this.end(reason);
    const stream = this.stream;
    if (!stream.writableEnded || stream.destroyed) {
      stream.destroy();
      return;
    }
    const timer = setTimeout(() => stream.destroy(), LINGER_MS);
    stream.once('close', () => clearTimeout(timer));
    stream.once('end', () => stream.destroy());
    stream.off('data', this.onData);
    stream.resume();
  }

  private onData(chunk: Buffer): void {
    if (this.closedReason) return;
    this.lastSeen = Date.now();
    try {
      this.reader.append(chunk);
    } catch (err) {
      this.close(err as Error);
      return;
    }
    for (;;) {
      if (this.closedReason || this.detached) return;
      let m: Message | undefined;
      try {
        m = this.reader.next();
      } catch (err) {
        this.close(err as Error);
        return;
      }
      if (!m) return;
      if (this.rawAfter) {
        // Raw bytes follow: stop listening now, the rest waits in the reader for detach().
        this.detached = true;
        this.stream.off('data', this.onData);
        this.stream.pause();
      }
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = undefined;
        clearTimeout(w.timer);
        w.resolve(m);
      } else if (this.handler) this.handler(m);
      else if (this.queue.length < 64) this.queue.push(m);
      else return this.close(new ProtocolError('too many frames before the handshake finished'));
    }
  }

  private onEnd(): void {
    this.close(new ProtocolError('the peer closed the connection'));
  }

  private onError(err: Error): void {
    this.close(err);
  }

  private onClose(): void {
    this.end(new ProtocolError('the connection closed'));
  }

  private end(reason: Error): void {
    if (this.closedReason) return;
    this.closedReason = reason;
    this.stream.on('error', () => {});
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      clearTimeout(w.timer);
      w.reject(reason);
    }
    for (const cb of this.closeCallbacks.splice(0)) cb(reason);
  }
}
