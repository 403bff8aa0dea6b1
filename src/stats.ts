/**
 * Byte counters for --stats, --progress and SIGUSR1: how much went each way, since when, and
 * how fast. Counting is two additions per chunk; everything else happens only when a line is
 * printed, so counting never slows the traffic down.
 */

/** Bytes each way. `in`: from the peer(s) to us; `out`: from us to the peer(s). */
export interface ByteCounts {
  in: number;
  out: number;
}

export class TrafficStats {
  bytesIn = 0;
  bytesOut = 0;
  /** Connections accepted or opened so far, and those still open. */
  connections = 0;
  live = 0;
  readonly startedAt: number;
  private readonly now: () => number;

  constructor(now: () => number = Date.now) {
    this.now = now;
    this.startedAt = now();
  }

  /** Counts a chunk: `in` came from a peer, `out` went to one. */
  add(direction: keyof ByteCounts, bytes: number): void {
    if (direction === 'in') this.bytesIn += bytes;
    else this.bytesOut += bytes;
  }

  opened(): void {
    this.connections++;
    this.live++;
  }

  closed(): void {
    if (this.live > 0) this.live--;
  }

  elapsedMs(): number {
    return this.now() - this.startedAt;
  }

  /**
   * One line: "1.5 MiB in, 12 B out in 2.3 s (655 KiB/s in, 5 B/s out), 1 connection".
   * `soFar` words it for a snapshot (SIGUSR1) rather than a summary.
   */
  summary(soFar = false): string {
    const ms = this.elapsedMs();
    const conns = `${this.connections} connection${this.connections === 1 ? '' : 's'}${soFar && this.live > 0 ? ` (${this.live} open)` : ''}`;
    return `${soFar ? 'so far: ' : ''}${formatBytes(this.bytesIn)} in, ${formatBytes(this.bytesOut)} out in ${formatElapsed(ms)} (${formatRate(rate(this.bytesIn, ms))} in, ${formatRate(rate(this.bytesOut, ms))} out), ${conns}`;
  }

  /** The same numbers for --log-format json. */
  fields(): Record<string, number> {
    const ms = this.elapsedMs();
    return {
      bytes_in: this.bytesIn,
      bytes_out: this.bytesOut,
      duration_ms: ms,
      rate_in: Math.round(rate(this.bytesIn, ms)),
      rate_out: Math.round(rate(this.bytesOut, ms)),
      connections: this.connections,
      live: this.live,
    };
  }
}

/** Bytes per second over `ms` (0 before any time has passed). */
export function rate(bytes: number, ms: number): number {
  return ms > 0 ? (bytes * 1000) / ms : 0;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** "0 B", "999 B", "1.0 KiB", "12.3 MiB", "1.50 GiB": binary units, three significant digits (pv's style). */
export function formatBytes(n: number): string {
  let i = 0;
  let v = n;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${Math.round(v)} B`;
  const digits = v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return `${v.toFixed(digits)} ${UNITS[i]}`;
}

/** "12.3 MiB/s". */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** "0:00:07", "1:02:03": pv's elapsed time and ETA. */
export function formatClock(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h}:${String(m).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

/** "350 ms", "2.3 s", "1:02:03" for long runs. */
export function formatElapsed(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return formatClock(ms);
}
