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
   * few as possible — one for a chunk with no overlong line, however many lines it holds — each
   * with the number of newlines in it (the loop finds every one anyway; the reader needs the count).
   */
  feed(chunk: Buffer, out: (piece: Buffer, newlines: number) => void): void {
    let start = 0;
    let pieceStart = 0;
    let newlines = 0;
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
        if (nl !== -1) newlines++;
        start = nl === -1 ? end : nl + 1;
        continue;
      }
      const cut = utf8Boundary(chunk, start, start + room);
      if (cut > pieceStart) out(chunk.subarray(pieceStart, cut), newlines);
      newlines = 0;
      out(NEWLINE, 1);
      this.onCut();
      this.skipping = true;
      this.lineBytes = 0;
      start = pieceStart = cut;
    }
    if (!this.skipping && pieceStart < chunk.length) out(chunk.subarray(pieceStart), newlines);
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
 * Takes a run of whole lines straight from the bytes: `run` starts at the beginning of a line and
 * ends with the newline of its `lines`-th line (LF, or CRLF as sent). Returns false to have them
 * split into strings and handed to `onLines` as usual.
 */
export type WholeLinesHandler = (run: Buffer, lines: number) => boolean;

/**
 * One client's bytes → lines: cut at `maxLine` bytes, split on LF or CRLF by split2, decoded as
 * UTF-8 (invalid bytes become U+FFFD). `onLines` gets the lines of each chunk, in one array,
 * without their line endings: whoever handles them can do so in bulk.
 *
 * With `onWholeLines`, the complete lines of a chunk are first offered as bytes (one run per
 * chunk): a line held from the previous chunk is finished by split2, the run of whole lines
 * after it goes to `onWholeLines`, and a partial last line goes to split2, which holds it until
 * its newline. split2 (and its UTF-8 decoder) is therefore between lines, holding nothing,
 * whenever a run is offered, so a run that is declined goes the usual way unchanged.
 */
export class LineReader {
  private readonly cutter: LineCutter;
  private readonly splitter: Transform;
  private discarded = false;
  private lines: string[] = [];
  private writing = false;
  /** True when everything passed to split2 so far ended with a newline (it holds no partial line). */
  private atLineStart = true;
  private readonly takePiece = (piece: Buffer, newlines: number) => {
    // Pieces after a /quit (the cutter goes on through the chunk) are not for anyone.
    if (this.discarded) return;
    const onWholeLines = this.onWholeLines;
    if (!onWholeLines || newlines === 0) return this.split(piece);
    let start = 0;
    if (!this.atLineStart) {
      // The rest of a line begun in an earlier chunk: split2 holds its start.
      const nl = piece.indexOf(LF);
      this.split(piece.subarray(0, nl + 1));
      if (this.discarded) return;
      start = nl + 1;
      newlines--;
    }
    if (newlines > 0) {
      const end = piece.lastIndexOf(LF) + 1;
      const run = start === 0 && end === piece.length ? piece : piece.subarray(start, end);
      if (!onWholeLines(run, newlines)) this.split(run);
      if (this.discarded) return;
      start = end;
    }
    if (start < piece.length) this.split(piece.subarray(start));
  };

  constructor(
    maxLine: number,
    private readonly onLines: (lines: string[]) => void,
    onCut: () => void,
    onError: (err: Error) => void = () => {},
    private readonly onWholeLines?: WholeLinesHandler,
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
    if (!this.discarded) this.cutter.feed(chunk, this.takePiece);
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

  private split(piece: Buffer): void {
    this.atLineStart = piece[piece.length - 1] === LF;
    // split2 transforms synchronously: the lines of this piece are collected during write().
    this.writing = true;
    this.splitter.write(piece);
    this.writing = false;
    this.handOver();
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
