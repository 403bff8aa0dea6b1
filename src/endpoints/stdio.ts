/**
 * Standard input and output as one duplex stream, so the relay can join them to a socket like
 * any other stream.
 */
import { Duplex, Transform, type Readable, type Writable } from 'node:stream';

export interface StdioStreamOptions {
  /** Translate LF to CRLF on the way in (lines typed at a terminal, sent to a CRLF protocol). */
  crlf?: boolean;
  /** End `output` when the relay ends this stream's writable (true for pipes we own, false for process.stdout). */
  endOutput?: boolean;
}

/**
 * After the network side's EOF, how long stdin may stay silent before the session ends. A file
 * or pipe on stdin keeps flowing and is sent in full (each chunk restarts the wait: nc's
 * "listen < file" transfer to a client that half-closed at once); an idle pipe ends soon after.
 * An interactive terminal ends at once: the person at it has nothing queued.
 */
export function stdinLingerMs(input: Readable): number {
  return (input as { isTTY?: boolean }).isTTY ? 0 : 500;
}

/** Reads from `input`, writes to `output`, with backpressure both ways. */
export class StdioStream extends Duplex {
  private readonly input: Readable;
  private readonly output: Writable;
  private readonly endOutput: boolean;
  private readonly onInputData = (chunk: Buffer) => {
    if (!this.push(chunk)) this.input.pause();
  };
  private readonly onInputEnd = () => this.push(null);
  private readonly onInputError = (err: Error) => this.destroy(err);

  constructor(input: Readable, output: Writable, opts: StdioStreamOptions = {}) {
    super({ allowHalfOpen: true });
    this.input = opts.crlf ? input.pipe(new LfToCrlf()) : input;
    this.output = output;
    this.endOutput = opts.endOutput ?? false;
    this.input.on('data', this.onInputData);
    this.input.on('end', this.onInputEnd);
    this.input.on('error', this.onInputError);
    this.input.pause();
  }

  override _read(): void {
    this.input.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    // Waiting for the write callback carries the output's backpressure back to the relay.
    if (this.output.write(chunk)) cb();
    else this.output.once('drain', () => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.endOutput) this.output.end(() => cb());
    else cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.input.off('data', this.onInputData);
    this.input.off('end', this.onInputEnd);
    this.input.off('error', this.onInputError);
    // Stop reading stdin so the process can exit; the stream itself belongs to the caller.
    this.input.pause();
    cb(err);
  }
}

/** LF → CRLF; an LF already preceded by CR is left alone, also across chunk boundaries. */
export class LfToCrlf extends Transform {
  private lastWasCr = false;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null, data?: Buffer) => void): void {
    const out: number[] = [];
    let changed = false;
    for (const byte of chunk) {
      if (byte === 0x0a && !this.lastWasCr) {
        out.push(0x0d);
        changed = true;
      }
      out.push(byte);
      this.lastWasCr = byte === 0x0d;
    }
    cb(null, changed ? Buffer.from(out) : chunk);
  }
}
