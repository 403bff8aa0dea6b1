/**
 * Access control for every listening mode: --allow and --deny take addresses or CIDR ranges,
 * IPv4 or IPv6, and deny wins; --allow-file adds one address or range per line and is re-read
 * when it changes, so an allow-list manager can trust a new IP without restarting sockcat.
 * With no allow rule at all, everyone not denied is let in; with an allow file that holds no
 * rule, nobody is (and that is said at start-up).
 *
 * Rules live in a prefix table (one hash set per prefix length), so checking a client costs the
 * same with 3 rules or 500,000: one lookup per prefix length in use, never a scan. The allow file
 * is read and watched by src/watched-file.ts (asynchronously, never blocking traffic, and only
 * when it is a regular file: a FIFO or a device would hang the read and start-up with it).
 */
import ipaddr from 'ipaddr.js';
import { UsageError } from './errors';
import type { Logger } from './log';
import { WatchedFile } from './watched-file';

type IP = ipaddr.IPv4 | ipaddr.IPv6;

/** A parsed rule: the network it covers, as a key in the prefix table. */
export interface AccessRule {
  text: string;
  kind: 'ipv4' | 'ipv6';
  /** The network address with the host bits cleared, as a signed 32-bit number (IPv4) or bigint (IPv6). */
  network: number | bigint;
  bits: number;
}

/** An allow file larger than this is refused rather than read into memory. */
export const MAX_ALLOW_FILE_BYTES = 64 << 20;
/** Bad lines reported one by one at most; the rest are counted. */
const MAX_PROBLEMS_SHOWN = 10;
/** Lines parsed between two yields to the event loop, so a huge file never stalls traffic. */
const LINES_PER_SLICE = 2000;

const notAnAddressMessage = (origin: string, t: string) =>
  `${origin}: '${t}' is not an IP address or CIDR range (e.g. 192.168.1.0/24, 2001:db8::/32)`;

const V4_FOUR_PARTS = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/;

/** Parses "10.0.0.0/8", "192.168.1.7", "::1" or "2001:db8::/32". Throws a UsageError naming the input. */
export function parseRule(text: string, origin = 'rule'): AccessRule {
  const t = text.trim();
  const notAnAddress = () => new UsageError(notAnAddressMessage(origin, t));
  // The common case, without building ipaddr.js objects: a file of 500k IPv4 lines stays cheap.
  const m = V4_FOUR_PARTS.exec(t);
  if (m) {
    let value = 0;
    for (let i = 1; i <= 4; i++) {
      const part = m[i];
      if ((part.length > 1 && part.charCodeAt(0) === 48) || +part > 255) throw notAnAddress();
      value = (value << 8) | +part;
    }
    const bits = m[5] === undefined ? 32 : +m[5];
    if (bits > 32) throw notAnAddress();
    return { text: t, kind: 'ipv4', network: maskV4(value, bits), bits };
  }
  // ipaddr.js also takes legacy forms like "10.1" or "1.2.3" (= 1.2.0.3): almost always a typo here.
  const head = t.split('/')[0];
  if (!head.includes(':')) throw notAnAddress();
  try {
    let addr: IP;
    let bits: number;
    if (t.includes('/')) {
      [addr, bits] = ipaddr.parseCIDR(t);
    } else {
      addr = ipaddr.parse(t.replace(/^\[(.*)\]$/, '$1'));
      bits = addr.kind() === 'ipv4' ? 32 : 128;
    }
    return ruleFor(t, addr, bits);
  } catch {
    throw notAnAddress();
  }
}

/** An IPv4-mapped IPv6 rule (::ffff:10.0.0.0/104) is the same as the IPv4 rule. */
function ruleFor(text: string, addr: IP, bits: number): AccessRule {
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
    return ruleFor(text, (addr as ipaddr.IPv6).toIPv4Address(), bits - 96);
  }
  if (addr.kind() === 'ipv4') return { text, kind: 'ipv4', network: maskV4(v4Number(addr as ipaddr.IPv4), bits), bits };
  return { text, kind: 'ipv6', network: maskV6(v6BigInt(addr as ipaddr.IPv6), bits), bits };
}

/** The address as a signed 32-bit integer: small integers are the cheapest keys a Map has. */
function v4Number(addr: ipaddr.IPv4): number {
  const [a, b, c, d] = addr.octets;
  return (a << 24) | (b << 16) | (c << 8) | d;
}

function v6BigInt(addr: ipaddr.IPv6): bigint {
  return addr.parts.reduce((acc, part) => (acc << 16n) | BigInt(part), 0n);
}

function maskV4(value: number, bits: number): number {
  return bits === 0 ? 0 : value & (-1 << (32 - bits));
}

const ALL_V6 = (1n << 128n) - 1n;
function maskV6(value: bigint, bits: number): bigint {
  return bits === 0 ? 0n : value & (ALL_V6 ^ ((1n << BigInt(128 - bits)) - 1n));
}

/**
 * Networks by prefix length: a client matches when its address, masked to one of the lengths in
 * use, is in that length's set. At most 33 (IPv4) or 129 (IPv6) lookups, whatever the rule count.
 */
export class PrefixTable {
  private readonly v4 = new Map<number, Map<number, string>>();
  private readonly v6 = new Map<number, Map<bigint, string>>();
  private v4Lengths: number[] = [];
  private v6Lengths: number[] = [];
  size = 0;

  add(rule: AccessRule, keepText = true): void {
    const text = keepText ? rule.text : '';
    if (rule.kind === 'ipv4') {
      let set = this.v4.get(rule.bits);
      if (!set) {
        this.v4.set(rule.bits, (set = new Map()));
        this.v4Lengths = [...this.v4.keys()].sort((x, y) => y - x);
      }
      if (!set.has(rule.network as number)) {
        this.size++;
        set.set(rule.network as number, text);
      }
    } else {
      let set = this.v6.get(rule.bits);
      if (!set) {
        this.v6.set(rule.bits, (set = new Map()));
        this.v6Lengths = [...this.v6.keys()].sort((x, y) => y - x);
      }
      if (!set.has(rule.network as bigint)) {
        this.size++;
        set.set(rule.network as bigint, text);
      }
    }
  }

  /** The text of the rule that covers `ip` (longest prefix first), or undefined. */
  find(ip: IP): string | undefined {
    if (ip.kind() === 'ipv4') {
      const value = v4Number(ip as ipaddr.IPv4);
      for (const bits of this.v4Lengths) {
        const hit = this.v4.get(bits)!.get(maskV4(value, bits));
        if (hit !== undefined) return hit;
      }
      return undefined;
    }
    const value = v6BigInt(ip as ipaddr.IPv6);
    for (const bits of this.v6Lengths) {
      const hit = this.v6.get(bits)!.get(maskV6(value, bits));
      if (hit !== undefined) return hit;
    }
    return undefined;
  }
}

/**
 * Parses an allow file's text into a prefix table, yielding to the event loop every few thousand
 * lines. Blank lines and # comments are skipped; bad lines are collected (the first few in words).
 */
export async function parseRuleFile(text: string, path: string): Promise<{ table: PrefixTable; problems: string[] }> {
  const table = new PrefixTable();
  const problems: string[] = [];
  let bad = 0;
  let lineNo = 0;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const line = text.slice(start, end);
    start = end + 1;
    lineNo++;
    const hash = line.indexOf('#');
    const content = (hash >= 0 ? line.slice(0, hash) : line).trim();
    if (content) {
      try {
        table.add(parseRule(content, `${path}:${lineNo}`), false);
      } catch (err) {
        if (++bad <= MAX_PROBLEMS_SHOWN) problems.push((err as Error).message);
      }
    }
    if (lineNo % LINES_PER_SLICE === 0) await new Promise((r) => setImmediate(r));
  }
  if (bad > MAX_PROBLEMS_SHOWN) problems.push(`${path}: ${bad - MAX_PROBLEMS_SHOWN} more bad line(s) not shown`);
  return { table, problems };
}

export interface AccessOptions {
  allow?: string[];
  deny?: string[];
  allowFile?: string;
  /** How often to look at the allow file for changes, in ms. */
  pollMs?: number;
  /** Told about allow-file loads and bad lines. */
  onReload?: (info: { count: number; problems: string[]; error?: string; first?: boolean }) => void;
}

export type AccessVerdict = { ok: true } | { ok: false; reason: string };

export class AccessControl {
  private readonly allow = new PrefixTable();
  private readonly deny = new PrefixTable();
  /** Addresses let in at run time by allow links (src/allow-link.ts); they are in the file too, read later. */
  private granted = new PrefixTable();
  private readonly allowFile?: string;
  /** Rules from the allow file; empty (nobody allowed) until it has been read. */
  private readonly file: WatchedFile<PrefixTable> | undefined;
  /**
   * Settles once the allow file has been read the first time; rejects with a UsageError when it
   * cannot be (serve() awaits it before listening). Resolved at once without an allow file.
   */
  readonly ready: Promise<void>;

  constructor(opts: AccessOptions) {
    for (const r of opts.allow ?? []) this.allow.add(parseRule(r, '--allow'));
    for (const r of opts.deny ?? []) this.deny.add(parseRule(r, '--deny'));
    this.allowFile = opts.allowFile;
    if (this.allowFile === '') throw new UsageError('--allow-file needs a file name (an empty name would let everyone in)');
    this.file =
      this.allowFile === undefined
        ? undefined
        : new WatchedFile(this.allowFile, {
            flag: '--allow-file',
            initial: new PrefixTable(),
            maxBytes: MAX_ALLOW_FILE_BYTES,
            pollMs: opts.pollMs,
            parse: async (text, path) => {
              const { table, problems } = await parseRuleFile(text, path);
              return { value: table, count: table.size, problems };
            },
            // A failed re-read keeps the previous list: say how many entries that is.
            onReload: (info) => opts.onReload?.(info.error ? { ...info, count: this.file!.current.size } : info),
          });
    this.ready = this.file?.ready ?? Promise.resolve();
  }

  /** True when any rule is configured (so unix-socket peers, which have no IP, can be told apart). */
  get active(): boolean {
    return this.allow.size > 0 || this.deny.size > 0 || this.allowFile !== undefined;
  }

  /** True when clients must be on an allow list (so a unix-socket peer, which has no IP, cannot qualify). */
  get hasAllowRules(): boolean {
    return this.allow.size > 0 || this.allowFile !== undefined;
  }

  /**
   * Replaces the addresses let in at run time (allow links). They take effect for the next client
   * at once, without waiting for the allow file, where they are also written, to be re-read.
   */
  setGranted(addresses: string[]): void {
    const table = new PrefixTable();
    for (const a of addresses) table.add(parseRule(a, 'allow-link'));
    this.granted = table;
  }

  /** Decides for one client address. */
  check(address: string): AccessVerdict {
    if (!this.active) return { ok: true };
    let ip: IP;
    try {
      ip = ipaddr.process(address);
    } catch {
      return { ok: false, reason: `not an IP address: ${address}` };
    }
    const denied = this.deny.find(ip);
    if (denied !== undefined) return { ok: false, reason: `denied by --deny ${denied}` };
    if (!this.hasAllowRules) return { ok: true };
    if (this.allow.find(ip) !== undefined || this.file?.current.find(ip) !== undefined || this.granted.find(ip) !== undefined) return { ok: true };
    return { ok: false, reason: 'not in the allow list' };
  }

  /** Stops watching the allow file. */
  close(): void {
    this.file?.close();
  }
}

/**
 * The access control of a listening mode, or undefined when no rule was given; allow-file
 * loads and bad lines in the file are logged. Await its `ready` before accepting anyone.
 */
export function createAccessControl(options: AccessOptions | undefined, logger: Logger): AccessControl | undefined {
  if (!options) return undefined;
  const file = options.allowFile;
  return new AccessControl({
    ...options,
    onReload: ({ count, problems, error, first }) => {
      for (const p of problems) logger.warn('allow-file', `ignoring ${p}`);
      if (error) {
        logger.warn('allow-file', `could not re-read the allow file, keeping the previous list: ${error}`);
        return;
      }
      if (count === 0) {
        // An empty list is not "no list": an allow file with no rule lets nobody in. Say so, loudly.
        const others = options.allow?.length ? ` (only --allow ${options.allow.join(', ')} can connect)` : '';
        logger.warn('allow-file', `allow file ${file} holds no address: nobody is let in until it does${others}`, { count, file });
      } else logger.event('allow-file', `allow file loaded: ${count} entr${count === 1 ? 'y' : 'ies'}`, { count, first });
    },
  });
}
