/**
 * Logging to stderr. Errors always print; connection events print with -v. With
 * --log-format json every event is one JSON object per line, for log tools.
 */
import type { Writable } from 'node:stream';

export type LogFormat = 'text' | 'json';

export interface LoggerOptions {
  stderr: Writable;
  verbose?: boolean;
  format?: LogFormat;
}

/** The logging options every mode takes. */
export interface LogOptions {
  /** -v: connection events on stderr. */
  verbose?: boolean;
  /** --log-format: text lines or one JSON object per event. */
  logFormat?: LogFormat;
}

export type LogFields = Record<string, string | number | boolean | null | undefined>;

export class Logger {
  readonly verbose: boolean;
  readonly format: LogFormat;
  private readonly stderr: Writable;

  constructor(opts: LoggerOptions) {
    this.stderr = opts.stderr;
    this.verbose = opts.verbose ?? false;
    this.format = opts.format ?? 'text';
  }

  /** A connection event, shown with -v: `text` for people, `fields` for JSON. */
  event(event: string, text: string, fields: LogFields = {}): void {
    if (!this.verbose && this.format !== 'json') return;
    this.write('info', event, text, fields);
  }

  /** Something the user should know even without -v (e.g. "listening on 0.0.0.0 is reachable from the network"). */
  warn(event: string, text: string, fields: LogFields = {}): void {
    this.write('warn', event, text, fields);
  }

  /** A failure. Always shown. */
  error(event: string, text: string, fields: LogFields = {}): void {
    this.write('error', event, text, fields);
  }

  private write(level: string, event: string, text: string, fields: LogFields): void {
    if (this.format === 'json') {
      const obj: Record<string, unknown> = { time: new Date().toISOString(), level, event };
      for (const [k, v] of Object.entries(fields)) if (v !== undefined) obj[k] = v;
      if (!('message' in obj)) obj.message = text;
      this.stderr.write(JSON.stringify(obj) + '\n');
    } else {
      this.stderr.write(`sockcat: ${text}\n`);
    }
  }
}

/** "1.2 s", "35 ms". */
export function formatDuration(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}
