import { describe, it, expect } from 'vitest';
import { PassThrough } from 'node:stream';
import { eachLine } from '../src/each-line';

async function linesOf(chunks: Array<string | Buffer>, maxLine?: number): Promise<string[]> {
  const input = new PassThrough();
  const lines: string[] = [];
  const { done } = eachLine(input, { maxLine, onLine: (l) => void lines.push(l) });
  for (const c of chunks) input.write(c);
  input.end();
  await done;
  return lines;
}

describe('eachLine', () => {
  it('splits on LF and CRLF, across chunk boundaries, and keeps a last line without newline', async () => {
    expect(await linesOf(['one\ntw', 'o\r', '\nthr', 'ee'])).toEqual(['one', 'two', 'three']);
  });

  it('keeps empty lines', async () => {
    expect(await linesOf(['\n\nx\n'])).toEqual(['', '', 'x']);
  });

  it('cuts a line longer than maxLine into pieces instead of buffering it', async () => {
    expect(await linesOf(['abcdefghij', 'kl\n'], 4)).toEqual(['abcd', 'efgh', 'ijkl']);
  });

  it('decodes UTF-8 split across chunks', async () => {
    const text = Buffer.from('le serveur répond\n');
    const cut = text.indexOf(0xc3) + 1;
    expect(await linesOf([text.subarray(0, cut), text.subarray(cut)])).toEqual(['le serveur répond']);
  });

  it('pauses the input when the receiver is full, and resume() restarts it', async () => {
    const input = new PassThrough();
    const lines: string[] = [];
    const reader = eachLine(input, { onLine: (l) => (lines.push(l), false) });
    input.write('a\n');
    await new Promise((r) => setImmediate(r));
    expect(input.isPaused()).toBe(true);
    input.end('b\n');
    await new Promise((r) => setImmediate(r));
    expect(lines).toEqual(['a']);
    reader.resume();
    await reader.done;
    expect(lines).toEqual(['a', 'b']);
  });
});
