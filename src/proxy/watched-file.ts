/**
 * A small rules file that is re-read when it changes (--auth-file, --map-file): parsed once at
 * start (a missing file or a bad line is a usage error then), then polled; a later bad read keeps
 * the last good contents, so a file being rewritten never opens or closes the door by accident.
 */
import fs from 'node:fs';
import { UsageError } from '../errors';

export interface WatchedFileEvents {
  /** The file was read again: how many entries, and lines that were skipped. */
  onReload?: (info: { count: number; problems: string[]; error?: string }) => void;
}

/**
 * Lines without comments and blanks, with their 1-based line numbers. Comments are whole lines
 * starting with #, and with `inline` also " # …" at the end of a line (not in password files,
 * where # may be part of a password).
 */
export function contentLines(text: string, inline = true): Array<{ line: string; number: number }> {
  const out: Array<{ line: string; number: number }> = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = (inline ? raw.replace(/(^|\s)#.*$/, '') : raw.replace(/^\s*#.*$/, '')).trim();
    if (line) out.push({ line, number: i + 1 });
  });
  return out;
}

export class WatchedFile<T> {
  private value: T;
  private seen: string;
  private readonly timer: NodeJS.Timeout;
  private polling = false;
  private closed = false;

  /**
   * @param parse turns the file's text into a value and the problems of its bad lines
   *   (each "PATH:LINE: why"); at start any problem is a usage error.
   */
  constructor(
    private readonly path: string,
    private readonly flag: string,
    private readonly parse: (text: string) => { value: T; count: number; problems: string[] },
    private readonly events: WatchedFileEvents = {},
    pollMs = 250,
  ) {
    let st: fs.Stats;
    let text: string;
    try {
      // Stat before reading: a change made during or right after the read differs from it.
      st = fs.statSync(path);
      text = fs.readFileSync(path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new UsageError(`${flag} ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (err as Error).message}`);
    }
    this.seen = signatureOf(st);
    const first = parse(text);
    if (first.problems.length) throw new UsageError(`${flag} ${first.problems[0]}`);
    this.value = first.value;
    this.timer = setInterval(this.poll, pollMs);
    this.timer.unref();
  }

  /** The last good contents. */
  get current(): T {
    return this.value;
  }

  private readonly poll = () => {
    if (this.polling || this.closed) return;
    this.polling = true;
    fs.stat(this.path, (err, st) => {
      this.polling = false;
      if (this.closed) return;
      const now = err ? `missing: ${err.code}` : signatureOf(st);
      if (now === this.seen) return;
      this.seen = now;
      fs.readFile(this.path, 'utf8', (readErr, text) => {
        if (this.closed) return;
        if (readErr) return this.events.onReload?.({ count: -1, problems: [], error: readErr.message });
        const next = this.parse(text);
        this.value = next.value;
        this.events.onReload?.({ count: next.count, problems: next.problems });
      });
    });
  };

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
  }
}

/** "inode:size:mtime": changes when the file is rewritten or replaced. */
function signatureOf(st: fs.Stats): string {
  return `${st.ino}:${st.size}:${st.mtimeMs}`;
}
