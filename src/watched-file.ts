/**
 * A rules file that is re-read when it changes (--allow-file, --auth-file, --map-file): read once
 * at start (a missing or unreadable file is a usage error then), then polled; a later bad read
 * keeps the last good contents, so a file being rewritten never opens or closes the door by
 * accident.
 *
 * Only a regular file is read, and never in a way that can block: it is opened non-blocking (a
 * FIFO opens at once instead of waiting for a writer, and is then refused), reloads are read
 * asynchronously, and a parse may be asynchronous too (a 500,000-line allow file is parsed in
 * slices, between which traffic goes on).
 */
import fs from 'node:fs';
import { UsageError } from './errors';

export interface WatchedFileEvents {
  /** The file was read (first: at start): how many entries, and lines that were skipped. */
  onReload?: (info: { count: number; problems: string[]; error?: string; first?: boolean }) => void;
}

/** What a parse makes of the file's text. */
export interface Parsed<T> {
  value: T;
  count: number;
  /** Bad lines, each "PATH:LINE: why". */
  problems: string[];
}

/** A file larger than this is refused rather than read into memory. */
export const MAX_WATCHED_FILE_BYTES = 64 << 20;

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

const OPEN_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NONBLOCK;

function openFailure(path: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  const why =
    code === 'ENOENT' ? 'no such file' : code === 'EACCES' || code === 'EPERM' ? 'permission denied (sockcat cannot read it)' : code === 'ELOOP' ? 'too many symbolic links' : (err as Error).message;
  return `${path}: ${why}`;
}

/** Why `st` is not a file to read, or undefined. */
function notRegular(path: string, st: fs.Stats): string | undefined {
  if (!st.isFile()) {
    const kind = st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a named pipe (FIFO)' : st.isSocket() ? 'a socket' : 'a device';
    return `${path} is ${kind}, not a regular file (it is re-read whenever it changes, so it must be a file)`;
  }
  if (st.size > MAX_WATCHED_FILE_BYTES) return `${path} is ${st.size} bytes, more than the ${MAX_WATCHED_FILE_BYTES >> 20} MiB such a file may hold`;
  return undefined;
}

/** Reads a regular file at start-up; anything else is a UsageError in plain words, never a hang. */
export function readRegularFileSync(path: string, flag: string): { stat: fs.Stats; text: string } {
  let fd: number;
  try {
    fd = fs.openSync(path, OPEN_FLAGS);
  } catch (err) {
    throw new UsageError(`${flag} ${openFailure(path, err)}`);
  }
  try {
    // The identity, size and mtime of what is read: a change made during or after the read differs.
    const stat = fs.fstatSync(fd);
    const problem = notRegular(path, stat);
    if (problem) throw new UsageError(`${flag} ${problem}`);
    return { stat, text: fs.readFileSync(fd, 'utf8') };
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads a regular file without blocking; rejects with an Error in plain words. */
export async function readRegularFile(path: string): Promise<string> {
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(path, OPEN_FLAGS);
  } catch (err) {
    throw new Error(openFailure(path, err));
  }
  try {
    const problem = notRegular(path, await fh.stat());
    if (problem) throw new Error(problem);
    return await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
}

export interface WatchedFileOptions {
  pollMs?: number;
  /** At start, a bad line is a usage error (default true); false: it is reported and skipped. */
  strict?: boolean;
}

export class WatchedFile<T> {
  private value: T | undefined;
  private seen: string;
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  private closed = false;
  /** Settles once the first parse is done (at once for a synchronous parse); rejects with a UsageError. */
  readonly ready: Promise<void>;

  /**
   * @param parse turns the file's text into a value and the problems of its bad lines; it may
   *   return a promise (then `current` is undefined until `ready`).
   */
  constructor(
    private readonly path: string,
    private readonly flag: string,
    private readonly parse: (text: string) => Parsed<T> | Promise<Parsed<T>>,
    private readonly events: WatchedFileEvents = {},
    options: WatchedFileOptions | number = {},
  ) {
    const opts = typeof options === 'number' ? { pollMs: options } : options;
    const { stat, text } = readRegularFileSync(path, flag);
    this.seen = signatureOf(stat);
    const settle = (first: Parsed<T>) => {
      if (opts.strict !== false && first.problems.length) throw new UsageError(`${flag} ${first.problems[0]}`);
      this.value = first.value;
      this.events.onReload?.({ count: first.count, problems: first.problems, first: true });
      if (this.closed) return;
      this.timer = setInterval(this.poll, opts.pollMs ?? 250);
      this.timer.unref();
    };
    const first = parse(text);
    if (first instanceof Promise) {
      this.ready = first.then(settle);
      // Whoever awaits `ready` sees the failure; nobody awaiting it must not crash the process.
      this.ready.catch(() => {});
    } else {
      settle(first);
      this.ready = Promise.resolve();
    }
  }

  /** The last good contents (undefined only while an asynchronous first parse runs). */
  get current(): T {
    return this.value as T;
  }

  private readonly poll = () => {
    if (this.polling || this.closed) return;
    this.polling = true;
    fs.stat(this.path, (err, st) => {
      if (this.closed) return;
      const now = err ? `missing: ${err.code}` : signatureOf(st);
      if (now === this.seen) {
        this.polling = false;
        return;
      }
      this.seen = now;
      // One reload at a time: polling resumes once this one is done.
      void this.reload().finally(() => (this.polling = false));
    });
  };

  private async reload(): Promise<void> {
    let next: Parsed<T>;
    try {
      next = await this.parse(await readRegularFile(this.path));
    } catch (err) {
      if (!this.closed) this.events.onReload?.({ count: -1, problems: [], error: (err as Error).message });
      return;
    }
    if (this.closed) return;
    this.value = next.value;
    this.events.onReload?.({ count: next.count, problems: next.problems });
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
  }
}

/** "inode:size:mtime:mode": changes when the file is rewritten, replaced or made unreadable. */
function signatureOf(st: fs.Stats): string {
  return `${st.ino}:${st.size}:${st.mtimeMs}:${st.mode}`;
}
