import { describe, it, expect } from 'vitest';
import { TrafficStats, formatBytes, formatClock, formatElapsed, formatRate } from '../src/stats';

describe('stats formatting', () => {
  it('formats bytes in binary units with three significant digits', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1024)).toBe('1.00 KiB');
    expect(formatBytes(1536)).toBe('1.50 KiB');
    expect(formatBytes(12.34 * 1024 * 1024)).toBe('12.3 MiB');
    expect(formatBytes(500 * 1024 ** 3)).toBe('500 GiB');
    expect(formatRate(2048)).toBe('2.00 KiB/s');
  });

  it('formats clocks and durations', () => {
    expect(formatClock(0)).toBe('0:00:00');
    expect(formatClock(7_400)).toBe('0:00:07');
    expect(formatClock(3_723_000)).toBe('1:02:03');
    expect(formatElapsed(350)).toBe('350 ms');
    expect(formatElapsed(2_345)).toBe('2.3 s');
    expect(formatElapsed(61_000)).toBe('0:01:01');
  });
});

describe('TrafficStats', () => {
  it('counts each way and words a summary and a snapshot', () => {
    let t = 1_000;
    const stats = new TrafficStats(() => t);
    stats.opened();
    stats.add('in', 1024 * 1024);
    stats.add('in', 512 * 1024);
    stats.add('out', 12);
    t += 2_000;
    expect(stats.summary(true)).toBe('so far: 1.50 MiB in, 12 B out in 2.0 s (768 KiB/s in, 6 B/s out), 1 connection (1 open)');
    stats.closed();
    expect(stats.summary()).toBe('1.50 MiB in, 12 B out in 2.0 s (768 KiB/s in, 6 B/s out), 1 connection');
    expect(stats.fields()).toEqual({ bytes_in: 1572864, bytes_out: 12, duration_ms: 2000, rate_in: 786432, rate_out: 6, connections: 1, live: 0 });
  });
});
