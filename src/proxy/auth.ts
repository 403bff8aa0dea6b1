/**
 * Proxy logins: --auth USER:PASS (repeatable) and --auth-file FILE (one user:password a line,
 * # comment lines, re-read when it changes). Used by SOCKS5's username/password method and by
 * HTTP's Proxy-Authorization: Basic.
 *
 * Checks take the same time whoever asks: the offered "user:password" and every known entry are
 * hashed to 32 bytes and compared with timingSafeEqual, and every entry is compared (no early
 * exit), so neither a password's length, its first wrong byte nor which user names exist leaks
 * through timing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { UsageError } from '../errors';
import { contentLines, WatchedFile, type WatchedFileOptions } from '../watched-file';

export interface Credentials {
  /** SHA-256 of "user:password" for each entry. */
  digests: Buffer[];
}

const digestOf = (user: string, password: string) => createHash('sha256').update(`${user}\0${password}`).digest();

/** "user:password" → [user, password]; the password may contain ':'. */
export function parseCredential(text: string, origin: string): [string, string] {
  const colon = text.indexOf(':');
  if (colon <= 0) throw new UsageError(`${origin}: '${text.length > 40 ? text.slice(0, 40) + '…' : text.replace(/:.*/, ':…')}' is not USER:PASSWORD (e.g. alice:s3cret)`);
  return [text.slice(0, colon), text.slice(colon + 1)];
}

/** Parses an auth file's text: entries and the problems of bad lines. */
export function parseAuthFile(text: string, path: string): { value: Credentials; count: number; problems: string[] } {
  const digests: Buffer[] = [];
  const problems: string[] = [];
  for (const { line, number } of contentLines(text, false)) {
    const colon = line.indexOf(':');
    // Never quote a bad line: it may be a password.
    if (colon <= 0) problems.push(`${path}:${number}: not user:password`);
    else digests.push(digestOf(line.slice(0, colon), line.slice(colon + 1)));
  }
  return { value: { digests }, count: digests.length, problems };
}

export interface AuthOptions {
  /** --auth USER:PASS entries. */
  users?: string[];
  /** --auth-file. */
  file?: string;
  /** How often the file is looked at for changes (ms). */
  pollMs?: number;
}

export class ProxyAuth {
  private readonly fixed: Buffer[];
  private readonly file: WatchedFile<Credentials> | undefined;

  /** Settles once --auth-file has been read (at once without one); rejects with a UsageError. */
  readonly ready: Promise<void>;

  constructor(opts: AuthOptions, onReload?: WatchedFileOptions<Credentials>['onReload']) {
    this.fixed = (opts.users ?? []).map((u) => {
      const [user, password] = parseCredential(u, '--auth');
      return digestOf(user, password);
    });
    this.file =
      opts.file === undefined
        ? undefined
        : new WatchedFile(opts.file, { flag: '--auth-file', initial: { digests: [] }, parse: parseAuthFile, badLinesAtStart: 'error', pollMs: opts.pollMs, onReload });
    this.ready = this.file?.ready ?? Promise.resolve();
  }

  /** True when clients must log in. */
  get required(): boolean {
    return this.fixed.length > 0 || this.file !== undefined;
  }

  /** Checks a login in constant time (see the file's header). */
  verify(user: string, password: string): boolean {
    const offered = digestOf(user, password);
    let ok = false;
    for (const d of [...this.fixed, ...(this.file?.current.digests ?? [])]) {
      // Not `ok ||= …`: that would stop comparing at the first match.
      if (timingSafeEqual(offered, d)) ok = true;
    }
    return ok;
  }

  /**
   * Checks an HTTP Proxy-Authorization header value ("Basic base64(user:password)").
   * Returns the user on success, or undefined and the user name tried (if any) on failure.
   */
  verifyBasic(header: string | undefined): { ok: boolean; user?: string } {
    if (!header) return { ok: false };
    const m = /^\s*basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
    if (!m) return { ok: false };
    const decoded = Buffer.from(m[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return { ok: false };
    const user = decoded.slice(0, colon);
    return { ok: this.verify(user, decoded.slice(colon + 1)), user };
  }

  close(): void {
    this.file?.close();
  }
}
