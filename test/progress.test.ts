import { describe, it, expect } from 'vitest';
import { Writable } from 'node:stream';
import { renderProgress, ProgressMeter, REDRAW_MS, type TtyLike } from '../src/progress';
import { sleep } from './helpers/net';

/** A fake terminal that records what is written to it. */
function fakeTty(isTTY: boolean, columns = 100): TtyLike & { text(): string } {
  let out = '';
  const w = new Writable({
    write(chunk, _enc, cb) {
      out += chunk.toString();
      cb();
    },
  }) as TtyLike & { text(): string };
  w.isTTY = isTTY;
  w.columns = columns;
  w.text = () => out;
  return w;
}

describe('renderProgress', () => {
  it('shows bytes and rate each way and the elapsed time', () => {
    expect(renderProgress({ in: 1536, out: 10 * 1024 * 1024, rateIn: 0, rateOut: 2 * 1024 * 1024, elapsedMs: 5_000 }, 100)).toBe(
      '↑ 10.0 MiB 2.00 MiB/s  ↓ 1.50 KiB 0 B/s  0:00:05',
    );
  });

  it('with a known size: a bar, the percentage and the ETA, within the width', () => {
    const line = renderProgress({ in: 0, out: 25 * 1024 * 1024, rateIn: 0, rateOut: 5 * 1024 * 1024, elapsedMs: 5_000, total: 100 * 1024 * 1024 }, 100);
    expect(line).toMatch(/^↑ 25\.0 MiB 5\.00 MiB\/s {2}↓ 0 B 0 B\/s {2}0:00:05 \[=+> +\] 25% ETA 0:00:15$/);
    expect([...line].length).toBeLessThanOrEqual(99);
    const done = renderProgress({ in: 0, out: 100, rateIn: 0, rateOut: 1, elapsedMs: 1000, total: 100 }, 100);
    expect(done).toMatch(/\[=+\] 100% ETA 0:00:00$/);
    const stalled = renderProgress({ in: 0, out: 0, rateIn: 0, rateOut: 0, elapsedMs: 1000, total: 100 }, 100);
    expect(stalled).toMatch(/\[ +\] 0% ETA --:--:--$/);
  });

  it('drops the bar on a narrow terminal and never exceeds the width', () => {
    for (const width of [20, 40, 60, 200]) {
      const line = renderProgress({ in: 5, out: 50, rateIn: 1, rateOut: 1, elapsedMs: 1000, total: 100 }, width);
      expect([...line].length).toBeLessThanOrEqual(width - 1);
    }
  });
});

describe('ProgressMeter', () => {
  it('writes nothing when stderr is not a terminal', async () => {
    const tty = fakeTty(false);
    const meter = new ProgressMeter({ tty, counts: () => ({ in: 1, out: 2 }) });
    meter.start();
    await sleep(REDRAW_MS * 2.5);
    meter.stream.write('sockcat: a log line\n');
    meter.stop();
    expect(tty.text()).toBe('sockcat: a log line\n');
  });

  it('redraws in place at most 10 times a second, keeps log lines above, and erases itself at the end', async () => {
    const tty = fakeTty(true);
    let out = 0;
    const meter = new ProgressMeter({ tty, counts: () => ({ in: 0, out: (out += 1000) }) });
    meter.start();
    const started = Date.now();
    await sleep(500);
    // A burst of log lines must not turn into a burst of redraws.
    for (let i = 0; i < 20; i++) meter.stream.write(`sockcat: log ${i}\n`);
    await sleep(300);
    meter.stop();
    const seconds = (Date.now() - started) / 1000;
    expect(meter.redraws).toBeGreaterThanOrEqual(2);
    expect(meter.redraws).toBeLessThanOrEqual(Math.ceil(seconds * 10) + 1);
    const text = tty.text();
    // Every log line starts on a clean line (the status line was erased just before).
    for (let i = 0; i < 20; i++) expect(text).toContain(`sockcat: log ${i}\n`);
    expect(text).toMatch(/\r\x1b\[K↑ /);
    // The end: erased, nothing after.
    expect(text.endsWith('\r\x1b[K')).toBe(true);
  });
});
