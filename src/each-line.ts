/**
 * Reading a stream line by line, for text meant for people (a child's stderr in the server's
 * log). Memory stays bounded: a line longer than `maxLine` is cut into pieces.
 */
import type { Readable } from 'node:stream';

export interface EachLineOptions {
  /** Longest line kept whole, in bytes (default 64 KiB); longer ones are passed on in pieces. */
  maxLine?: number;
  /**
   * Called with false when the receiver is full: reading pauses until `resume` is called.
   * Lets a slow log destination slow the writer instead of filling memory.
   */
  onLine: (line: string) => boolean | void;
}

/**
 * Calls `onLine` for each line of `input` (without its LF or CRLF), including a last line with
 * no newline. Resolves when the stream has ended or closed. The returned `resume` restarts a
 * paused input.
 */
export function eachLine(input: Readable, opts: EachLineOptions): { done: Promise<void>; resume: () => void } {
  const maxLine = opts.maxLine ?? 64 * 1024;
  let pending: Buffer = Buffer.alloc(0);
  const emit = (raw: Buffer) => {
    const line = raw.length > 0 && raw[raw.length - 1] === 0x0d ? raw.subarray(0, -1) : raw;
    if (opts.onLine(line.toString('utf8')) === false) input.pause();
  };
  const onData = (chunk: Buffer) => {
    let buf = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    let nl: number;
    while ((nl = buf.indexOf(0x0a)) >= 0) {
      emit(buf.subarray(0, nl));
      buf = buf.subarray(nl + 1);
    }
    while (buf.length > maxLine) {
      emit(buf.subarray(0, maxLine));
      buf = buf.subarray(maxLine);
    }
    // Copy the remainder so the chunk it came from can be freed.
    pending = Buffer.from(buf);
  };
  const done = new Promise<void>((resolve) => {
    const finish = () => {
      input.off('data', onData);
      input.off('end', finish);
      input.off('close', finish);
      if (pending.length) emit(pending);
      pending = Buffer.alloc(0);
      resolve();
    };
    input.on('data', onData);
    input.once('end', finish);
    input.once('close', finish);
    // Read errors (the pipe torn down under us) end the lines like an EOF.
    input.on('error', () => {});
  });
  return { done, resume: () => input.resume() };
}
