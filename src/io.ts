import type { Readable, Writable } from 'node:stream';

/**
 * What a mode gets from the outside world. The CLI passes the process's own streams and a
 * signal aborted on SIGINT/SIGTERM; tests pass PassThrough streams and their own controller.
 */
export interface ModeIO {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  /** Aborted to stop the mode gracefully. */
  signal: AbortSignal;
  /** End stdout when the mode is done with it (true for streams a test owns; false for process.stdout). */
  endStdout?: boolean;
}
