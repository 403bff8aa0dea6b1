/**
 * Line handling for the chat room: splitting a client's bytes into lines (split2) with a hard
 * length limit, escaping control characters, and the timestamps of the server's room log.
 */
import split2 from 'split2';
import type { Transform } from 'node:stream';
import { clockTime } from '../log';

const LF = 0x0a;

/**
 * Cuts every line to `maxLine` bytes *before* the splitter sees it, so no line is ever held
 * whole in memory: a 100 MB line without a newline costs `maxLine` bytes, not 100 MB. The
 * kept part is passed on with a newline at once (the others see it without waiting for the
 * sender's newline); the rest, up to the next newline, is discarded.
 */
export class LineCutter {
  /** Bytes of the current line passed on so far. */
  private lineBytes = 0;
  /** True while discarding the rest of a line that was cut. */
  private skipping = false;

  constructor(
    private readonly maxLine: number,
    private readonly onCut: () => void,
  ) {}

  /**
   * Feeds one chunk; `out` receives the pieces to pass on: sub-slices of `chunk` (no copies), as
   * few as possible — one for a chunk with no overlong line, however many lines it holds.
   */
  feed(chunk: Buffer, out: (piece: Buffer) => void): void {
    let start = 0;
    let pieceStart = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(LF, start);
      const end = nl === -1 ? chunk.length : nl;
      if (this.skipping) {
        if (nl === -1) return;
        // The newline that ends a cut line was already passed on when the line was cut.
        this.skipping = false;
        this.lineBytes = 0;
        start = pieceStart = nl + 1;
        continue;
      }
      const room = this.maxLine - this.lineBytes;
      // A line of exactly maxLine bytes ended by CRLF is not overlong: the CR is its line ending.
      const crlfFits = nl === start + room + 1 && chunk[nl - 1] === 0x0d;
      if (end - start <= room || crlfFits) {
        this.lineBytes = nl === -1 ? this.lineBytes + (end - start) : 0;
        start = nl === -1 ? end : nl + 1;
        continue;
      }
      const cut = utf8Boundary(chunk, start, start + room);
      if (cut > pieceStart) out(chunk.subarray(pieceStart, cut));
      out(NEWLINE);
      this.onCut();
      this.skipping = true;
      this.lineBytes = 0;
      start = pieceStart = cut;
    }
    if (!this.skipping && pieceStart < chunk.length) out(chunk.subarray(pieceStart));
  }
}

const NEWLINE = Buffer.from('\n');

/** Moves a cut position back so it does not split a UTF-8 character (at most 3 bytes back). */
function utf8Boundary(buf: Buffer, min: number, pos: number): number {
  let p = pos;
  while (p > min && pos - p < 3 && (buf[p] & 0xc0) === 0x80) p--;
  return (buf[p] & 0xc0) === 0x80 ? pos : p;
}

/**
 * One client's bytes → lines: cut at `maxLine` bytes, split on LF or CRLF by split2, decoded as
 * UTF-8 (invalid bytes become U+FFFD). `onLines` gets the lines of each chunk, in one array,
 * without their line endings: whoever handles them can do so in bulk.
 */
export class LineReader {
  private readonly cutter: LineCutter;
  private readonly splitter: Transform;
  private discarded = false;
  private lines: string[] = [];
  private writing = false;
  private readonly feedSplitter = (piece: Buffer) => {
    // split2 transforms synchronously: the lines of this piece are collected during write().
    this.writing = true;
    this.splitter.write(piece);
    this.writing = false;
    this.handOver();
  };

  constructor(
    maxLine: number,
    private readonly onLines: (lines: string[]) => void,
    onCut: () => void,
    onError: (err: Error) => void = () => {},
  ) {
    this.cutter = new LineCutter(maxLine, onCut);
    // split2's mapper collects each line and returns nothing to push: no trip through the
    // stream machinery per line (several times faster for short lines).
    const collect = (line: string): undefined => {
      this.lines.push(line);
      if (!this.writing) this.handOver();
      return undefined;
    };
    // The cutter already bounds every line; split2's own limit is a second guard that can only
    // discard, never buffer.
    const guard = { maxLength: maxLine + 8, skipOverflow: true };
    this.splitter = split2(/\r?\n/, collect, guard);
    this.splitter.on('error', onError);
    this.splitter.resume();
  }

  write(chunk: Buffer): void {
    if (!this.discarded) this.cutter.feed(chunk, this.feedSplitter);
  }

  /** Passes on a last line without newline, then calls `done`. */
  end(done: () => void): void {
    // 'finish' comes once split2's flush has handed over the last line.
    this.splitter.once('finish', done);
    this.splitter.end();
  }

  /** Stops delivering lines (the client quit; what it sent after /quit is ignored). */
  discard(): void {
    this.discarded = true;
    this.lines = [];
    this.splitter.destroy();
  }

  private handOver(): void {
    if (this.lines.length === 0) return;
    const lines = this.lines;
    this.lines = [];
    if (!this.discarded) this.onLines(lines);
  }
}

// C0 controls except TAB, DEL, and the C1 controls (U+0080–U+009F), which some terminals obey
// as escape sequences (U+009B is a one-character CSI); and the bidirectional embeddings,
// overrides and isolates (U+202A–U+202E, U+2066–U+2069), which reorder what others see on
// the rest of the line ("Trojan source").
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;
const CONTROL_ALL = /[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;

/**
 * Makes a line safe to show on other people's terminals: ESC → `^[`, CR → `^M`, DEL → `^?`,
 * C1 controls → `\x9b`, bidi overrides → `\u202e`. TAB and printable text are left alone.
 */
export function escapeControls(line: string): string {
  if (!CONTROL.test(line)) return line;
  return line.replace(CONTROL_ALL, caretNotation);
}

function caretNotation(ch: string): string {
  const code = ch.charCodeAt(0);
  if (code < 0x20) return '^' + String.fromCharCode(code + 0x40);
  if (code === 0x7f) return '^?';
  if (code > 0xff) return '\\u' + code.toString(16);
  return '\\x' + code.toString(16);
}

let stampSecond = -1;
let stampBuffer = Buffer.alloc(0);

/** "[12:34:56] " in local time, as a Buffer; built once per second, not once per line. */
export function timestamp(now = Date.now()): Buffer {
  const second = Math.floor(now / 1000);
  if (second !== stampSecond) {
    // The log's clock to the second: "[21:04:05] ".
    stampBuffer = Buffer.from(`[${clockTime(new Date(now)).slice(0, 8)}] `);
    stampSecond = second;
  }
  return stampBuffer;
}
