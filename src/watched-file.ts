/**
 * A rules file that is re-read when it changes (--allow-file, --auth-file, --map-file): the one
 * place that reads such files and watches them.
 *
 * - Reading never blocks: the file is opened non-blocking (a FIFO opens at once instead of
 *   waiting for a writer) and refused unless it is a regular file of sane size.
 * - The first read settles `ready` (a missing or unreadable file rejects it with a UsageError
 *   naming the flag); then the file is polled, and a change (inode, size or mtime) re-reads it.
 * - A later read that fails keeps the last good contents, so a file being rewritten never opens
 *   or closes the door by accident; every load is told to `onReload`.
 */
import fs from 'node:fs';
import { UsageError } from './errors';

/** What a load found: the parsed value, how many entries, and its bad lines (already worded). */
export interface ParsedFile<T> {
  value: T;
  count: number;
  problems: string[];
}

export interface WatchedFileOptions<T> {
  /** The flag that named the file, for messages ("--allow-file"). */
  flag: string;
  /** Turns the file's text into a value (may yield to the event loop for big files). */
  parse: (text: string, path: string) => ParsedFile<T> | Promise<ParsedFile<T>>;
  /** The value before the first load (e.g. an empty list: nobody in until it is read). */
  initial: T;
  /** How often the file is looked at (ms). Default 250. */
  pollMs?: number;
  /** Refuse files larger than this. Default 64 MiB. */
  maxBytes?: number;
  /** Bad lines in the first load are a usage error ('error') or only reported ('report', the default). */
  badLinesAtStart?: 'error' | 'report';
  /** Told about every load. */
  onReload?: (info: { count: number; problems: string[]; error?: string; first?: boolean }) => void;
}

export const DEFAULT_MAX_WATCHED_FILE_BYTES = 64 << 20;

/**
 * Reads a file without ever blocking, refusing anything but a regular file of at most
 * `maxBytes`. Errors are worded for the user ("… is a directory, not a regular file").
 */
export async function readRegularFile(path: string, maxBytes = DEFAULT_MAX_WATCHED_FILE_BYTES): Promise<string> {
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'no such file' : code === 'EACCES' || code === 'EPERM' ? 'permission denied (sockcat cannot read it)' : code === 'ELOOP' ? 'too many symbolic links' : (err as Error).message;
    throw new Error(`${path}: ${why}`);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) {
      const kind = st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a named pipe (FIFO)' : st.isSocket() ? 'a socket' : 'a device';
      throw new Error(`${path} is ${kind}, not a regular file (it is re-read whenever it changes, so it must be a file)`);
    }
    if (st.size > maxBytes) throw new Error(`${path} is ${st.size} bytes, more than the ${maxBytes >> 20} MiB such a file may hold`);
    return await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
}

export class WatchedFile<T> {
  private value: T;
  private seen: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  private closed = false;
  /** Settles after the first read; rejects with a UsageError when the file cannot be used. */
  readonly ready: Promise<void>;

  constructor(
    readonly path: string,
    private readonly opts: WatchedFileOptions<T>,
  ) {
    this.value = opts.initial;
    if (path === '') throw new UsageError(`${opts.flag} needs a file name`);
    this.ready = this.firstLoad();
    // Whoever awaits `ready` sees the failure; nobody awaiting it must not crash the process.
    this.ready.catch(() => {});
  }

  /** The last good contents (the initial value until the first read). */
  get current(): T {
    return this.value;
  }

  private async firstLoad(): Promise<void> {
    // Stat before reading: a change made during or right after the read differs from it.
    try {
      this.seen = signatureOf(await fs.promises.stat(this.path));
    } catch {
      throw new UsageError(`${this.opts.flag}: ${this.path}: no such file`);
    }
    let loaded: ParsedFile<T>;
    try {
      loaded = await this.opts.parse(await readRegularFile(this.path, this.opts.maxBytes), this.path);
    } catch (err) {
      throw new UsageError(`${this.opts.flag}: ${(err as Error).message}`);
    }
    if (this.opts.badLinesAtStart === 'error' && loaded.problems.length > 0) throw new UsageError(`${this.opts.flag}: ${loaded.problems[0]}`);
    if (this.closed) return;
    this.value = loaded.value;
    this.opts.onReload?.({ count: loaded.count, problems: loaded.problems, first: true });
    this.timer = setInterval(this.poll, this.opts.pollMs ?? 250);
    this.timer.unref();
  }

  /** Looks at the file; re-reads it when it is not what was last read. One read at a time. */
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
      void this.reload().finally(() => (this.polling = false));
    });
  };

  private async reload(): Promise<void> {
    try {
      const loaded = await this.opts.parse(await readRegularFile(this.path, this.opts.maxBytes), this.path);
      if (this.closed) return;
      this.value = loaded.value;
      this.opts.onReload?.({ count: loaded.count, problems: loaded.problems });
    } catch (err) {
      this.opts.onReload?.({ count: -1, problems: [], error: (err as Error).message });
    }
  }

  /** Stops watching. */
  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
  }
}

/** "inode:size:mtime:mode": changes when the file is rewritten, replaced or made unreadable. */
function signatureOf(st: fs.Stats): string {
  return `${st.ino}:${st.size}:${st.mtimeMs}:${st.mode}`;
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
