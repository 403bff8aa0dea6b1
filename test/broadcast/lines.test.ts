import { describe, it, expect } from 'vitest';
import { LineCutter, LineReader, escapeControls, timestamp } from '../../src/broadcast/lines';

/** Runs chunks through a cutter; returns what it passed on and how many lines it cut. */
function cut(maxLine: number, chunks: (string | Buffer)[]): { text: string; cuts: number; pieces: number } {
  let cuts = 0;
  const out: Buffer[] = [];
  const cutter = new LineCutter(maxLine, () => cuts++);
  for (const c of chunks) cutter.feed(Buffer.isBuffer(c) ? c : Buffer.from(c), (p) => out.push(p));
  return { text: Buffer.concat(out).toString(), cuts, pieces: out.length };
}

describe('LineCutter', () => {
  it('passes short lines through untouched, a whole chunk in one piece', () => {
    const r = cut(10, ['one\ntwo\nthree\n']);
    expect(r).toEqual({ text: 'one\ntwo\nthree\n', cuts: 0, pieces: 1 });
  });

  it('cuts a long line at maxLine bytes, ends it at once and skips the rest up to the newline', () => {
    expect(cut(4, ['abcdefgh\nok\n'])).toMatchObject({ text: 'abcd\nok\n', cuts: 1 });
  });

  it('counts a line across chunks and cuts it in the chunk where it grows too long', () => {
    expect(cut(5, ['abc', 'def', 'ghi\nxy', 'z\n'])).toMatchObject({ text: 'abcde\nxyz\n', cuts: 1 });
  });

  it('keeps discarding a line without newline however long it gets, and never holds it', () => {
    const chunk = Buffer.alloc(65536, 'q');
    const chunks = Array.from({ length: 100 }, () => chunk);
    expect(cut(8, [...chunks, 'tail\nnext\n'])).toMatchObject({ text: 'qqqqqqqq\nnext\n', cuts: 1 });
  });

  it('a line of exactly maxLine bytes is not cut, with LF or with CRLF', () => {
    expect(cut(4, ['abcd\nwxyz\r\n'])).toMatchObject({ text: 'abcd\nwxyz\r\n', cuts: 0 });
  });

  it('does not split a UTF-8 character when cutting', () => {
    // "é" is 2 bytes: cutting at 4 bytes would split the second one.
    expect(cut(4, ['aéé\n'])).toMatchObject({ text: 'aé\n', cuts: 1 });
    expect(cut(5, ['a😀b\n'])).toMatchObject({ text: 'a😀\n', cuts: 1 });
  });
});

describe('LineReader', () => {
  it('splits on LF and CRLF, keeps empty lines, and hands over a last line without newline at the end', async () => {
    const lines: string[] = [];
    const reader = new LineReader(100, (ls) => lines.push(...ls), () => {});
    reader.write(Buffer.from('a\r\nb\n\nc'));
    reader.write(Buffer.from('d'));
    await new Promise<void>((resolve) => reader.end(resolve));
    expect(lines).toEqual(['a', 'b', '', 'cd']);
  });

  it('hands over the lines of one chunk together', () => {
    const calls: string[][] = [];
    const reader = new LineReader(100, (ls) => calls.push(ls), () => {});
    reader.write(Buffer.from('a\nb\nc\npartial'));
    reader.write(Buffer.from(' end\n'));
    expect(calls).toEqual([['a', 'b', 'c'], ['partial end']]);
  });

  it('decodes UTF-8 split across chunks', async () => {
    const lines: string[] = [];
    const reader = new LineReader(100, (ls) => lines.push(...ls), () => {});
    const bytes = Buffer.from('héllo\n');
    reader.write(bytes.subarray(0, 2));
    reader.write(bytes.subarray(2));
    await new Promise<void>((resolve) => reader.end(resolve));
    expect(lines).toEqual(['héllo']);
  });
});

describe('escapeControls', () => {
  it('shows C0 controls in caret notation, DEL as ^?, C1 controls as \\x.., and leaves TAB and text alone', () => {
    expect(escapeControls('\x1b[31mred\x1b[0m')).toBe('^[[31mred^[[0m');
    expect(escapeControls('a\rb\x00c\x7fd')).toBe('a^Mb^@c^?d');
    expect(escapeControls('csi\u009b2J')).toBe('csi\\x9b2J');
    expect(escapeControls('tab\there, café ✓')).toBe('tab\there, café ✓');
  });

  it('shows bidi overrides and isolates, which would reorder the rest of the line for readers', () => {
    expect(escapeControls('user \u202eevil\u202c ok')).toBe('user \\u202eevil\\u202c ok');
    expect(escapeControls('\u2066iso\u2069')).toBe('\\u2066iso\\u2069');
    // Right-to-left text itself is not touched.
    expect(escapeControls('שלום مرحبا')).toBe('שלום مرحبا');
  });
});

describe('timestamp', () => {
  it('is [HH:MM:SS] in local time', () => {
    const d = new Date(2026, 0, 2, 3, 4, 5);
    expect(timestamp(d.getTime()).toString()).toBe('[03:04:05] ');
  });
});
