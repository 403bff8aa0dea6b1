// The chat's byte path for plain lines (LineReader's onWholeLines + Chat.wholeLines) against the
// line-by-line path through split2: same bytes to every client and to the room log, whatever
// the input and however it is cut into chunks.
import { describe, it, expect, vi } from 'vitest';
import { Duplex, Writable } from 'node:stream';
import { Chat } from '../../src/broadcast/chat';
import { LineReader } from '../../src/broadcast/lines';
import { freshMemberState, Room, type Member } from '../../src/broadcast/room';
import { CHAT_LANGUAGES } from '../../src/broadcast/lang/index';
import type { Logger } from '../../src/log';

/** A stream that keeps what is written to it. */
class Sink extends Duplex {
  readonly chunks: Buffer[] = [];
  override _read(): void {}
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.chunks.push(chunk);
    cb();
  }
  text(): string {
    return Buffer.concat(this.chunks).toString();
  }
}

const quietLogger = { event() {}, warn() {}, error() {}, notice() {} } as unknown as Logger;

interface Run {
  /** What the sender, the other client and stdout received (stdout with its timestamps masked). */
  sender: string;
  other: string;
  log: string;
  /** Messages the room counted for the other client (lines or chunks). */
  cuts: number;
}

/** Feeds `chunks` from one client into a room of two, with or without the byte path. */
async function runChat(chunks: Buffer[], wholeLines: boolean, maxLine = 16): Promise<Run> {
  const stdout = new Sink();
  const room = new Room({ maxQueue: 1 << 30, drop: false, echoSelf: false, stdout: stdout as unknown as Writable, logger: quietLogger });
  let cuts = 0;
  const chat = new Chat({ room, logger: { ...quietLogger, event: () => cuts++ } as unknown as Logger, maxLine, strings: CHAT_LANGUAGES.en, names: 'user', wholeLines });
  const member = (id: number): Member => {
    const m: Member = {
      id,
      stream: new Sink(),
      label: `127.0.0.1:${5000 + id}`,
      ...freshMemberState(),
      sendAway: (reason) => {
        if (m.leaving) return;
        m.leaving = reason;
        room.remove(m);
        chat.left(m, reason);
      },
    };
    room.add(m);
    chat.joined(m);
    return m;
  };
  const sender = member(1);
  const other = member(2);
  for (const c of chunks) if (!sender.leaving) chat.input(sender, c);
  if (!sender.leaving) await new Promise<void>((resolve) => chat.inputEnded(sender, resolve));
  room.flush();
  const mask = (s: string) => s.replace(/^\[\d\d:\d\d:\d\d\] /gm, '[T] ');
  return { sender: (sender.stream as Sink).text(), other: (other.stream as Sink).text(), log: mask(stdout.text()), cuts };
}

/** Both paths on the same chunks: the same output. */
async function expectSamePaths(chunks: Buffer[], maxLine = 16): Promise<Run> {
  const fast = await runChat(chunks, true, maxLine);
  const slow = await runChat(chunks, false, maxLine);
  expect(fast).toEqual(slow);
  return fast;
}

const b = (s: string) => Buffer.from(s);

describe('LineReader with onWholeLines', () => {
  it('offers the whole lines of a chunk as one run, finishes a held line and holds a partial one through split2', () => {
    const runs: string[] = [];
    const lines: string[][] = [];
    const reader = new LineReader(100, (ls) => lines.push(ls), () => {}, undefined, (run, n) => (runs.push(`${n}:${run.toString()}`), true));
    reader.write(b('a\nb\npart'));
    reader.write(b('ial\nc\nd\ne'));
    expect(runs).toEqual(['2:a\nb\n', '2:c\nd\n']);
    expect(lines).toEqual([['partial']]);
  });

  it('a declined run is split as usual, in order with the lines around it', () => {
    const seen: string[] = [];
    const reader = new LineReader(100, (ls) => seen.push(...ls.map((l) => `line ${l}`)), () => {}, undefined, (run) => {
      if (run.includes('/')) return false;
      seen.push(`run ${run.toString()}`);
      return true;
    });
    reader.write(b('x'));
    reader.write(b('y\n/cmd\nz\n'));
    reader.write(b('w\n'));
    expect(seen).toEqual(['line xy', 'line /cmd', 'line z', 'run w\n']);
  });

  it('a CR at the end of a chunk and its LF in the next still end one line', () => {
    const lines: string[] = [];
    const runs: string[] = [];
    const reader = new LineReader(100, (ls) => lines.push(...ls), () => {}, undefined, (run) => (runs.push(run.toString()), true));
    reader.write(b('a\r'));
    reader.write(b('\nb\n'));
    expect(lines).toEqual(['a']);
    expect(runs).toEqual(['b\n']);
  });

  it('an overlong line is cut before the run is offered: the run never holds one', () => {
    const seen: string[] = [];
    let cuts = 0;
    const reader = new LineReader(4, (ls) => seen.push(...ls.map((l) => `line ${l}`)), () => cuts++, undefined, (run) => (seen.push(`run ${run.toString()}`), true));
    reader.write(b('ok\nabcdefgh\nfine\n'));
    expect(cuts).toBe(1);
    expect(seen).toEqual(['run ok\n', 'line abcd', 'run fine\n']);
  });
});

describe('chat: plain lines from bytes = line by line', () => {
  it('plain ASCII lines in one chunk', async () => {
    const r = await expectSamePaths([b('hello\nworld\n')]);
    expect(r.other).toContain('<user1> hello\n<user1> world\n');
    expect(r.log).toContain('[T] <user1> hello\n[T] <user1> world\n');
  });

  it('lines split across chunks, a chunk ending in the middle of a UTF-8 character', async () => {
    const bytes = b('café ✓ 😀\nnext\nlast\n');
    for (let i = 1; i < bytes.length; i++) await expectSamePaths([bytes.subarray(0, i), bytes.subarray(i)]);
  });

  it('CRLF, lone CR, control bytes, C1 controls and bidi overrides are escaped as before', async () => {
    const r = await expectSamePaths([b('crlf\r\nlone\rcr\nesc\x1b[31m\ntab\tok\nc1\u009bx\nbidi\u202eevil\n')]);
    expect(r.other).toContain('<user1> crlf\n<user1> lone^Mcr\n<user1> esc^[[31m\n<user1> tab\tok\n<user1> c1\\x9bx\n<user1> bidi\\u202eevil\n');
  });

  it('commands and // escapes mixed with plain lines keep their order', async () => {
    const r = await expectSamePaths([b('one\n/help\ntwo\n//slash\n/nick Zoé\nthree\n')]);
    expect(r.other).toMatch(/<user1> one\n<user1> two\n<user1> \/slash\n\* user1 is now Zoé\n<Zoé> three\n/);
  });

  it('invalid UTF-8 becomes U+FFFD, as before', async () => {
    await expectSamePaths([Buffer.from([0x61, 0xff, 0x0a, 0xc3, 0x0a, 0x62, 0xe2, 0x82, 0x0a])]);
  });

  it('overlong lines are cut, with the notice to the sender', async () => {
    const r = await expectSamePaths([b('short\n' + 'x'.repeat(40) + '\nafter\n')]);
    expect(r.cuts).toBe(1);
    expect(r.other).toContain(`<user1> ${'x'.repeat(16)}\n<user1> after\n`);
  });

  it('/quit in the middle of a chunk: nothing after it goes out', async () => {
    const r = await expectSamePaths([b('a\nb\n/quit\nc\nd\n')]);
    expect(r.other).not.toContain('<user1> c');
  });

  it('fuzz: random lines, random chunks (bounded)', async () => {
    const pieces = ['a', 'bc', 'hello world', 'é', '😀', '✓', '\n', '\n', '\n', '\r\n', '\r', '\t', '/', '//', '/who\n', '/nick Zoé\n', '/nick bob\n', '\x1b', '\x7f', '\u0085', '\u202e', 'x'.repeat(20), '\n/quit\n'];
    const raw = [[0xff], [0xc3], [0xe2, 0x82], [0xf0, 0x9f]];
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    // The byte path must actually be taken, or the comparison proves nothing.
    const spy = vi.spyOn(Chat.prototype as unknown as { wholeLines: () => boolean }, 'wholeLines');
    for (let round = 0; round < 300; round++) {
      const parts: Buffer[] = [];
      const count = 1 + rand(40);
      for (let i = 0; i < count; i++) {
        // Mostly plain text, so that runs of plain lines (the byte path) are common.
        const k = rand(10);
        if (k < 6) parts.push(b(['abc def', 'line', 'x', ''][rand(4)] + '\n'));
        else if (k < 9) parts.push(b(pieces[rand(pieces.length)]));
        else parts.push(Buffer.from(raw[rand(raw.length)]));
      }
      const bytes = Buffer.concat(parts);
      const chunks: Buffer[] = [];
      for (let at = 0; at < bytes.length; ) {
        const len = 1 + rand(rand(2) ? 8 : 64);
        chunks.push(bytes.subarray(at, at + len));
        at += len;
      }
      const maxLine = [8, 16, 4096][rand(3)];
      const fast = await runChat(chunks, true, maxLine);
      const slow = await runChat(chunks, false, maxLine);
      if (JSON.stringify(fast) !== JSON.stringify(slow)) expect({ input: bytes.toString('latin1'), sizes: chunks.map((c) => c.length), maxLine, ...fast }).toEqual({ input: bytes.toString('latin1'), sizes: chunks.map((c) => c.length), maxLine, ...slow });
    }
    const taken = spy.mock.results.filter((r) => r.value === true).length;
    spy.mockRestore();
    expect(taken).toBeGreaterThan(300);
  });
});
