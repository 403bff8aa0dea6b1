/**
 * Internal names (--map, --map-file): a name a client asks for is sent somewhere else without
 * ever reaching DNS, the way ShimmerCat gives local services real-looking names.
 *
 *   app.test=127.0.0.1:8000     app.test on any port → 127.0.0.1:8000
 *   kibana=10.0.0.5             kibana:PORT → 10.0.0.5:PORT (the port asked for is kept)
 *   *.test=127.0.0.1            every name under .test (not "test" itself) → 127.0.0.1, same port
 *
 * An exact name wins over a wildcard, a longer wildcard over a shorter one. Names are compared
 * without case and without a final dot.
 */
import net from 'node:net';
import { UsageError } from '../errors';
import { formatHostPort } from '../endpoints/address';
import { isSafeHostName } from '../endpoints/socks-wire';
import { contentLines, WatchedFile, type WatchedFileOptions } from '../watched-file';

export interface MapTarget {
  host: string;
  /** Absent: the port the client asked for. */
  port?: number;
}

export interface MapEntry {
  /** "app.test", or "*.test" for a wildcard. */
  name: string;
  target: MapTarget;
}

/** Lower case, no final dot: how names are compared. */
export const normalizeName = (name: string) => name.toLowerCase().replace(/\.$/, '');

/** "NAME=HOST[:PORT]" → an entry; throws a UsageError naming `origin`. */
export function parseMapEntry(text: string, origin: string): MapEntry {
  const eq = text.indexOf('=');
  const bad = (why: string) => new UsageError(`${origin}: '${text}' ${why} (e.g. app.test=127.0.0.1:8000, kibana=10.0.0.5 or *.test=127.0.0.1)`);
  if (eq <= 0) throw bad('is not NAME=HOST:PORT or NAME=HOST');
  const name = normalizeName(text.slice(0, eq).trim());
  const right = text.slice(eq + 1).trim();
  const plain = name.startsWith('*.') ? name.slice(2) : name;
  if (!(isSafeHostName(plain) || net.isIP(plain))) throw bad(`has a name that is not a host name or '*.suffix'`);
  let host: string;
  let port: number | undefined;
  const portOf = (t: string) => {
    if (!/^\d{1,5}$/.test(t) || Number(t) < 1 || Number(t) > 65535) throw bad(`has a port '${t}' that is not 1-65535`);
    return Number(t);
  };
  const v6 = /^\[([^\]]+)\](?::(\d*))?$/.exec(right);
  if (v6) {
    host = v6[1];
    if (!net.isIPv6(host)) throw bad(`has '${host}', which is not an IPv6 address`);
    port = v6[2] === undefined ? undefined : portOf(v6[2]);
  } else if (net.isIPv6(right)) {
    host = right;
  } else {
    const colon = right.lastIndexOf(':');
    host = colon < 0 ? right : right.slice(0, colon);
    port = colon < 0 ? undefined : portOf(right.slice(colon + 1));
  }
  if (!(net.isIP(host) || isSafeHostName(host))) throw bad(`has a target '${host}' that is not a host name or IP address`);
  return { name, target: { host, port } };
}

/** The text of a map file: its entries and the problems of its bad lines. */
export function parseMapFile(text: string, path: string): { value: MapEntry[]; count: number; problems: string[] } {
  const entries: MapEntry[] = [];
  const problems: string[] = [];
  for (const { line, number } of contentLines(text)) {
    try {
      entries.push(parseMapEntry(line, `${path}:${number}`));
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  return { value: entries, count: entries.length, problems };
}

/** Finds a name in a list of entries: exact first, then the longest matching wildcard. */
export function lookupName(entries: readonly MapEntry[], name: string): MapEntry | undefined {
  const n = normalizeName(name);
  let best: MapEntry | undefined;
  for (const e of entries) {
    if (e.name === n) return e;
    if (e.name.startsWith('*.') && n.endsWith(e.name.slice(1)) && (!best || e.name.length > best.name.length)) best = e;
  }
  return best;
}

export interface NameMapOptions {
  /** --map entries. */
  entries?: string[];
  /** --map-file. */
  file?: string;
  pollMs?: number;
}

export class NameMap {
  private readonly fixed: MapEntry[];
  private readonly file: WatchedFile<MapEntry[]> | undefined;

  /** Settles once --map-file has been read (at once without one); rejects with a UsageError. */
  readonly ready: Promise<void>;

  constructor(opts: NameMapOptions, onReload?: WatchedFileOptions<MapEntry[]>['onReload']) {
    this.fixed = (opts.entries ?? []).map((e) => parseMapEntry(e, '--map'));
    this.file =
      opts.file === undefined ? undefined : new WatchedFile(opts.file, { flag: '--map-file', initial: [], parse: parseMapFile, badLinesAtStart: 'error', pollMs: opts.pollMs, onReload });
    this.ready = this.file?.ready ?? Promise.resolve();
  }

  /** True when any name is mapped (or a map file is watched). */
  get active(): boolean {
    return this.fixed.length > 0 || this.file !== undefined;
  }

  /** Where `host:port` goes instead, if the name is mapped (--map entries win over the file). */
  resolve(host: string, port: number): { host: string; port: number; label: string } | undefined {
    const e = lookupName(this.fixed, host) ?? lookupName(this.file?.current ?? [], host);
    if (!e) return undefined;
    const target = { host: e.target.host, port: e.target.port ?? port };
    return { ...target, label: formatHostPort(target.host, target.port) };
  }

  close(): void {
    this.file?.close();
  }
}
