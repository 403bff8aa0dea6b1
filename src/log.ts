/**
 * The one room for logging. Errors always print; connection events print with -v. Text lines
 * start with the time (`sockcat: 21:04:05.123 connection from …`). With
 * --log-format json every event is one JSON object per line, for log tools. The connection
 * events of every mode (open, refused, closed with bytes each way) are worded here, once.
 *
 * Logging never takes the process down: a failed write to stderr (EPIPE on a closed pipe,
 * ENOSPC on a full disk) is dropped and counted, and traffic goes on.
 */
import type { Writable } from 'node:stream';
import type { LogFields, ClosedEvent, OpenedEvent, RefusedEvent } from './events';

export type LogFormat = 'text' | 'json';

/** The logging options every mode takes. */
export interface LogOptions {
  /** -v: connection events on stderr. */
  verbose?: boolean;
  /** --log-format: text lines or one JSON object per event. */
  logFormat?: LogFormat;
  /** -q: no start-up line and no notes, only warnings and errors. */
  quiet?: boolean;
}

export interface LoggerOptions {
  stderr: Writable;
  verbose?: boolean;
  format?: LogFormat;
  /** Fields added to every JSON event (forward --workers: the worker's pid). */
  fields?: LogFields;
  /** -q: notices (the start-up line, notes) are not printed. */
  quiet?: boolean;
  /** Events not printed at all (a worker leaves the start-up lines to the first one). */
  mute?: ReadonlySet<string>;
}


/** Failed writes per stream, shared by everything that writes to it (the logger, hex dumps, exec's stderr lines). */
const dropped = new WeakMap<Writable, { count: number }>();

/**
 * Makes `out` safe to write to: its write errors are counted instead of crashing the process
 * (an 'error' event nobody listens to is fatal in Node). Returns the live counter.
 */
export function guardStream(out: Writable): { count: number } {
  let counter = dropped.get(out);
  if (!counter) {
    const c = { count: 0 };
    counter = c;
    dropped.set(out, c);
    out.on('error', () => {
      c.count++;
    });
  }
  return counter;
}

export class Logger {
  readonly verbose: boolean;
  readonly format: LogFormat;
  private readonly stderr: Writable;
  private readonly fields: LogFields;
  readonly quiet: boolean;
  private readonly mute?: ReadonlySet<string>;
  private readonly failures: { count: number };

  constructor(opts: LoggerOptions) {
    this.stderr = opts.stderr;
    this.verbose = opts.verbose ?? false;
    this.format = opts.format ?? 'text';
    this.fields = opts.fields ?? {};
    this.quiet = opts.quiet ?? false;
    this.mute = opts.mute;
    this.failures = guardStream(opts.stderr);
  }

  /** Log lines that could not be written (stderr closed or full): dropped, not fatal. */
  get droppedWrites(): number {
    return this.failures.count;
  }

  /** A connection event, shown with -v: `text` for people, `fields` for JSON. */
  event(event: string, text: string, fields: LogFields = {}): void {
    if (!this.verbose && this.format !== 'json') return;
    this.write('info', event, text, fields);
  }

  /** What a user reads without -v unless they asked for -q: the start-up line, a note on how their words were taken. */
  notice(event: string, text: string, fields: LogFields = {}): void {
    if (this.quiet) return;
    this.write('info', event, text, fields);
  }

  /** Something the user should know even without -v, and even with -q (a problem, not news). */
  warn(event: string, text: string, fields: LogFields = {}): void {
    this.write('warn', event, text, fields);
  }

  /** A failure. Always shown. */
  error(event: string, text: string, fields: LogFields = {}): void {
    this.write('error', event, text, fields);
  }

  /**
   * A half-close, with -v, worded the same in every mode: `127.0.0.1:5555 closed its side` when a
   * peer sends its FIN, `stdin closed; shutting down our write side` when we send ours. `side`
   * names, in JSON, the end that closed: client, server, upstream (forward) or program (exec).
   */
  halfClosed(side: 'client' | 'server' | 'upstream' | 'program', text: string, fields: LogFields = {}): void {
    this.event('eof', text, { side, ...fields });
  }

  /** A connection (or datagram peer) is open. */
  opened(e: OpenedEvent): void {
    this.event('open', `${e.datagrams ? 'datagrams' : 'connection'} from ${e.client}${e.text ?? ''}`, { client: e.client, id: e.id, ...e.fields });
  }

  /** A client was turned away before being served: `event` names the check (denied, limit…). */
  refused(e: RefusedEvent): void {
    this.event(e.event, `refused ${e.client}: ${e.text}`, { client: e.client, ...e.fields });
  }

  /** A connection is over: bytes each way, how long, why. */
  closed(e: ClosedEvent): void {
    const who = e.client ?? e.server!;
    const fields: LogFields = e.client !== undefined ? { client: e.client, id: e.id } : { server: e.server };
    const all = { ...fields, ...e.fields, bytes_in: e.bytesIn, bytes_out: e.bytesOut, duration_ms: e.durationMs, reason: e.reason };
    // A datagram peer is not closed, only forgotten: the one word that differs.
    const verb = e.datagrams ? 'forgot' : 'closed';
    this.event('close', `${verb} ${who}${e.text ?? ''}: ${e.bytesIn} bytes in, ${e.bytesOut} bytes out, ${formatDuration(e.durationMs)} (${e.reason})`, all);
  }

  private write(level: string, event: string, text: string, fields: LogFields): void {
    if (this.mute?.has(event)) return;
    // A stream that failed once (EPIPE) fails again: stop writing, keep counting.
    if (this.failures.count > 0 || this.stderr.destroyed || this.stderr.writableEnded) {
      this.failures.count++;
      return;
    }
    if (this.format === 'json') {
      const obj: Record<string, unknown> = { time: new Date().toISOString(), level, event };
      for (const [k, v] of Object.entries({ ...fields, ...this.fields })) if (v !== undefined) obj[k] = v;
      if (!('message' in obj)) obj.message = text;
      this.stderr.write(JSON.stringify(obj) + '\n');
    } else {
      this.stderr.write(`sockcat: ${clockTime(new Date())} ${text}\n`);
    }
  }
}

export type { LogFields };

/** The logger every mode builds from its -v and --log-format, writing to io.stderr. */
export function createLogger(opts: LogOptions, stderr: Writable, extra: Pick<LoggerOptions, 'fields' | 'mute'> = {}): Logger {
  return new Logger({ stderr, verbose: opts.verbose, format: opts.logFormat, quiet: opts.quiet, ...extra });
}

/**
 * "21:04:05.123": local time to the millisecond, the start of every text log line (JSON lines have
 * their ISO `time`). Local, because a student compares it with the clock on the wall; the date is
 * left out, as in tcpdump's and ss's default output.
 */
export function clockTime(d: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

/** "1.2 s", "35 ms". */
export function formatDuration(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}
