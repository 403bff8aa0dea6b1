/** The one helper that reads and watches rules files (--allow-file, --auth-file, --map-file). */
import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WatchedFile, contentLines } from '../src/watched-file';
import { waitFor } from './helpers/net';

const parseLines = (text: string, file: string) => {
  const problems: string[] = [];
  const value: string[] = [];
  for (const { line, number } of contentLines(text)) {
    if (line.includes(' ')) problems.push(`${file}:${number}: bad`);
    else value.push(line);
  }
  return { value, count: value.length, problems };
};

describe('WatchedFile', () => {
  it('reads, re-reads on change, and keeps the last good contents when a re-read fails', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockcat-watched-'));
    const file = path.join(dir, 'rules');
    fs.writeFileSync(file, 'a\n# comment\nb # trailing\n');
    const loads: Array<{ count: number; error?: string; first?: boolean }> = [];
    const w = new WatchedFile(file, { flag: '--x-file', initial: [] as string[], parse: parseLines, pollMs: 20, onReload: (i) => loads.push(i) });
    expect(w.current).toEqual([]);
    await w.ready;
    expect(w.current).toEqual(['a', 'b']);
    expect(loads[0]).toMatchObject({ count: 2, first: true });
    fs.writeFileSync(file, 'c\n');
    await waitFor(() => w.current.join() === 'c', 3000, 'the change');
    fs.chmodSync(file, 0o000);
    fs.rmSync(file);
    fs.mkdirSync(file);
    await waitFor(() => loads.some((l) => l.error?.includes('is a directory')), 3000, 'a failed re-read');
    expect(w.current).toEqual(['c']);
    w.close();
    fs.rmSync(dir, { recursive: true });
  });

  it('rejects ready with a usage error naming the flag: missing file, FIFO, bad lines when asked', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockcat-watched-'));
    await expect(new WatchedFile(path.join(dir, 'none'), { flag: '--x-file', initial: [], parse: parseLines }).ready).rejects.toThrow(/^--x-file: .*none: no such file/);
    const bad = path.join(dir, 'bad');
    fs.writeFileSync(bad, 'ok\nnot ok\n');
    await expect(new WatchedFile(bad, { flag: '--x-file', initial: [], parse: parseLines, badLinesAtStart: 'error' }).ready).rejects.toThrow(/^--x-file: .*bad:2: bad/);
    const reported = new WatchedFile(bad, { flag: '--x-file', initial: [] as string[], parse: parseLines });
    await reported.ready;
    expect(reported.current).toEqual(['ok']);
    reported.close();
    fs.rmSync(dir, { recursive: true });
  });
});
