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

/** The shell's exit code for a process stopped by each signal: 128 + its number. */
const SIGNAL_EXIT_CODES: Record<string, number> = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 };

/**
 * The exit code of a session cut short by `signal` (aborted with the signal's name, as the CLI
 * does): 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP, like nc and socat, so a script can
 * tell an interrupted transfer from a complete one. Undefined when it was not stopped by a signal.
 */
export function interruptedExitCode(signal: AbortSignal): number | undefined {
  if (!signal.aborted) return undefined;
  return SIGNAL_EXIT_CODES[String(signal.reason)];
}
