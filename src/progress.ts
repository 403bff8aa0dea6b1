/**
 * --progress: one status line on a terminal's stderr, pv-style, redrawn in place:
 *
 *   ↑ 12.0 MiB 4.02 MiB/s  ↓ 1.2 KiB 0 B/s  0:00:03 [=========>          ] 48% ETA 0:00:03
 *
 * ↑ is what we send, ↓ what we receive; the bar, percentage and ETA appear when the size of what
 * we send is known (stdin is a regular file). At most one redraw per REDRAW_MS (never more than
 * 10 a second), nothing at all when stderr is not a terminal, and the line is erased at the end
 * so the terminal is left as it was. Log lines written meanwhile go through `stream`, which
 * erases the status line first and redraws it after, so the two never mix.
 */
import { Writable } from 'node:stream';
import { formatBytes, formatClock, formatRate, type ByteCounts } from './stats';

/** Time between two redraws: 5 a second, under the 10 a second we allow ourselves. */
export const REDRAW_MS = 200;
/** The rate shown is over this much recent time, so it follows changes (pv's is over ~1 s too). */
const RATE_WINDOW_MS = 1000;

/** Erase the current line: carriage return, then erase to the end of the line. */
const ERASE = '\r\x1b[K';

export interface ProgressSnapshot extends ByteCounts {
  elapsedMs: number;
  /** Current rates, bytes per second. */
  rateIn: number;
  rateOut: number;
  /** Size of what we send, when known. */
  total?: number;
}

/** The status line for a snapshot, cut to `width` columns. */
export function renderProgress(s: ProgressSnapshot, width = 80): string {
  const head = `↑ ${formatBytes(s.out)} ${formatRate(s.rateOut)}  ↓ ${formatBytes(s.in)} ${formatRate(s.rateIn)}  ${formatClock(s.elapsedMs)}`;
  if (s.total === undefined) return fit(head, width);
  const fraction = s.total > 0 ? Math.min(1, s.out / s.total) : 1;
  const percent = `${Math.floor(fraction * 100)}%`;
  const left = s.total - s.out;
  const eta = fraction >= 1 ? 'ETA 0:00:00' : s.rateOut > 0 ? `ETA ${formatClock((left / s.rateOut) * 1000)}` : 'ETA --:--:--';
  const tail = ` ${percent} ${eta}`;
  // The bar takes whatever room is left, between 10 and 40 columns (no bar on a very narrow terminal).
  const room = width - 1 - head.length - 1 - tail.length - 2;
  if (room < 10) return fit(`${head}${tail}`, width);
  const barWidth = Math.min(40, room);
  const filled = Math.floor(fraction * barWidth);
  const bar = fraction >= 1 ? '='.repeat(barWidth) : '='.repeat(Math.max(0, filled - 1)) + (filled > 0 ? '>' : '') + ' '.repeat(barWidth - filled);
  return fit(`${head} [${bar}]${tail}`, width);
}

/** Cut to the terminal's width, minus one column (writing the last column makes some terminals wrap). */
function fit(line: string, width: number): string {
  const max = Math.max(1, width - 1);
  return [...line].length > max ? [...line].slice(0, max).join('') : line;
}

/** A terminal-like stream: what process.stderr is when it is a TTY. */
export interface TtyLike extends Writable {
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  /** Where to draw: only drawn if it is a TTY. */
  tty: TtyLike;
  /** Current byte counts. */
  counts: () => ByteCounts;
  /** Size of what we send, when known. */
  total?: number;
  now?: () => number;
}

/**
 * Draws the status line every REDRAW_MS while started. `stream` is the stderr to give loggers:
 * their lines appear above the status line.
 */
export class ProgressMeter {
  /** The stream logs should be written to while the meter runs. */
  readonly stream: Writable;
  readonly enabled: boolean;
  private readonly tty: TtyLike;
  private readonly counts: () => ByteCounts;
  private readonly total?: number;
  private readonly now: () => number;
  private startedAt = 0;
  private timer?: NodeJS.Timeout;
  private shown = false;
  private lastDrawAt = -Infinity;
  /** Recent samples for the current rate: [time, in, out]. */
  private samples: Array<[number, number, number]> = [];
  /** How many times the line was drawn (for tests and for the 10-a-second promise). */
  redraws = 0;

  constructor(opts: ProgressOptions) {
    this.tty = opts.tty;
    this.enabled = opts.tty.isTTY === true;
    this.counts = opts.counts;
    this.total = opts.total;
    this.now = opts.now ?? Date.now;
    const meter = this;
    this.stream = this.enabled
      ? new Writable({
          write(chunk, _enc, cb) {
            meter.above(chunk, cb);
          },
        })
      : opts.tty;
  }

  start(): void {
    if (!this.enabled || this.timer) return;
    this.startedAt = this.now();
    this.samples = [[this.startedAt, 0, 0]];
    this.timer = setInterval(() => this.draw(), REDRAW_MS);
    // The meter never keeps the process alive by itself.
    this.timer.unref();
  }

  /** Stops redrawing and erases the line, leaving the terminal as it was. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.shown) this.tty.write(ERASE);
    this.shown = false;
  }

  /** The snapshot the next redraw would show. */
  snapshot(): ProgressSnapshot {
    const t = this.now();
    const c = this.counts();
    this.samples.push([t, c.in, c.out]);
    while (this.samples.length > 2 && t - this.samples[1][0] >= RATE_WINDOW_MS) this.samples.shift();
    const [t0, in0, out0] = this.samples[0];
    const dt = t - t0;
    return {
      in: c.in,
      out: c.out,
      elapsedMs: t - this.startedAt,
      rateIn: dt > 0 ? ((c.in - in0) * 1000) / dt : 0,
      rateOut: dt > 0 ? ((c.out - out0) * 1000) / dt : 0,
      total: this.total,
    };
  }

  private draw(): void {
    const line = renderProgress(this.snapshot(), this.tty.columns || 80);
    this.tty.write(ERASE + line);
    this.shown = true;
    this.lastDrawAt = this.now();
    this.redraws++;
  }

  /**
   * A log line while the meter runs: erase the status line, write the log, and draw the status
   * line again at once unless that would make more than 10 redraws a second (then the next tick does).
   */
  private above(chunk: Buffer | string, cb: (err?: Error | null) => void): void {
    if (this.shown) this.tty.write(ERASE);
    this.shown = false;
    this.tty.write(chunk, (err) => {
      if (this.timer && this.now() - this.lastDrawAt >= 100) this.draw();
      cb(err);
    });
  }
}
