/**
 * Access control for every listening mode: --allow and --deny take addresses or CIDR ranges,
 * IPv4 or IPv6, and deny wins; --allow-file adds one address or range per line and is re-read
 * when it changes, so an allow-list manager can trust a new IP without restarting sockcat.
 * With no allow rule at all, everyone not denied is let in.
 */
import fs from 'node:fs';
import ipaddr from 'ipaddr.js';
import { UsageError } from './errors';
import type { Logger } from './log';

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

export interface AccessRule {
  text: string;
  range: Range;
}

/** Parses "10.0.0.0/8", "192.168.1.7", "::1" or "2001:db8::/32". Throws a UsageError naming the input. */
export function parseRule(text: string, origin = 'rule'): AccessRule {
  const t = text.trim();
  // ipaddr.js also takes legacy forms like "10.1" or "1.2.3" (= 1.2.0.3): almost always a typo here.
  const v4 = t.split('/')[0];
  const notAnAddress = () => new UsageError(`${origin}: '${t}' is not an IP address or CIDR range (e.g. 192.168.1.0/24, 2001:db8::/32)`);
  if (!v4.includes(':') && !ipaddr.IPv4.isValidFourPartDecimal(v4)) throw notAnAddress();
  try {
    if (t.includes('/')) {
      const range = ipaddr.parseCIDR(t) as Range;
      return { text: t, range: normalizeRange(range) };
    }
    const addr = ipaddr.process(t.replace(/^\[(.*)\]$/, '$1'));
    return { text: t, range: [addr, addr.kind() === 'ipv4' ? 32 : 128] };
  } catch {
    throw notAnAddress();
  }
}

/** An IPv4-mapped IPv6 range (::ffff:10.0.0.0/104) is the same as the IPv4 range. */
function normalizeRange([addr, bits]: Range): Range {
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
    return [(addr as ipaddr.IPv6).toIPv4Address(), bits - 96];
  }
  return [addr, bits];
}

function matches(ip: ipaddr.IPv4 | ipaddr.IPv6, rules: AccessRule[]): AccessRule | undefined {
  return rules.find((r) => r.range[0].kind() === ip.kind() && ip.match(r.range as any));
}

/** Reads an allow file: one address or range per line; blank lines and # comments are skipped. */
export function readRuleFile(path: string): { rules: AccessRule[]; problems: string[] } {
  const rules: AccessRule[] = [];
  const problems: string[] = [];
  const lines = fs.readFileSync(path, 'utf8').split(/\r?\n/);
  lines.forEach((line, i) => {
    const content = line.replace(/#.*/, '').trim();
    if (!content) return;
    try {
      rules.push(parseRule(content, `${path}:${i + 1}`));
    } catch (err) {
      problems.push((err as Error).message);
    }
  });
  return { rules, problems };
}

export interface AccessOptions {
  allow?: string[];
  deny?: string[];
  allowFile?: string;
  /** How often to look at the allow file for changes, in ms. */
  pollMs?: number;
  /** Told about allow-file reloads and bad lines. */
  onReload?: (info: { count: number; problems: string[]; error?: string }) => void;
}

export type AccessVerdict = { ok: true } | { ok: false; reason: string };

export class AccessControl {
  private readonly allow: AccessRule[];
  private readonly deny: AccessRule[];
  private fileRules: AccessRule[] = [];
  private readonly allowFile?: string;
  private readonly onReload?: AccessOptions['onReload'];
  private watching = false;
  private pollTimer: NodeJS.Timeout | undefined;
  private polling = false;
  /** The allow file's identity, size and mtime when last read, to tell a change. */
  private seen: string | undefined;

  constructor(opts: AccessOptions) {
    this.allow = (opts.allow ?? []).map((r) => parseRule(r, '--allow'));
    this.deny = (opts.deny ?? []).map((r) => parseRule(r, '--deny'));
    this.allowFile = opts.allowFile;
    this.onReload = opts.onReload;
    if (this.allowFile) {
      if (!fs.existsSync(this.allowFile)) throw new UsageError(`--allow-file: ${this.allowFile}: no such file`);
      // Stat before reading: a change made during or right after the read differs from it. (fs.watchFile
      // takes its own baseline later, asynchronously, and so missed a change made in between.)
      this.seen = signatureOf(fs.statSync(this.allowFile));
      const { rules, problems } = readRuleFile(this.allowFile);
      this.fileRules = rules;
      if (problems.length) this.onReload?.({ count: rules.length, problems });
      this.pollTimer = setInterval(this.poll, opts.pollMs ?? 250);
      this.pollTimer.unref();
      this.watching = true;
    }
  }

  /** True when any rule is configured (so unix-socket peers, which have no IP, can be told apart). */
  get active(): boolean {
    return this.allow.length > 0 || this.deny.length > 0 || this.allowFile !== undefined;
  }

  /** True when clients must be on an allow list (so a unix-socket peer, which has no IP, cannot qualify). */
  get hasAllowRules(): boolean {
    return this.allow.length > 0 || this.allowFile !== undefined;
  }

  /** Looks at the allow file; reloads it when it is not what was last read. */
  private readonly poll = () => {
    if (this.polling || !this.allowFile) return;
    this.polling = true;
    fs.stat(this.allowFile, (err, st) => {
      this.polling = false;
      if (!this.watching) return;
      const now = err ? `missing: ${err.code}` : signatureOf(st);
      if (now === this.seen) return;
      this.seen = now;
      this.reload();
    });
  };

  private readonly reload = () => {
    if (!this.allowFile) return;
    try {
      const { rules, problems } = readRuleFile(this.allowFile);
      this.fileRules = rules;
      this.onReload?.({ count: rules.length, problems });
    } catch (err) {
      // Keep the last good list: a file being rewritten must not open or close the door by accident.
      this.onReload?.({ count: this.fileRules.length, problems: [], error: (err as Error).message });
    }
  };

  /** Decides for one client address. */
  check(address: string): AccessVerdict {
    if (!this.active) return { ok: true };
    let ip: ipaddr.IPv4 | ipaddr.IPv6;
    try {
      ip = ipaddr.process(address);
    } catch {
      return { ok: false, reason: `not an IP address: ${address}` };
    }
    const denied = matches(ip, this.deny);
    if (denied) return { ok: false, reason: `denied by --deny ${denied.text}` };
    if (this.allow.length === 0 && this.allowFile === undefined) return { ok: true };
    if (matches(ip, this.allow) || matches(ip, this.fileRules)) return { ok: true };
    return { ok: false, reason: 'not in the allow list' };
  }

  /** Stops watching the allow file. */
  close(): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.watching = false;
  }
}

/** "inode:size:mtime": changes when the file is rewritten or replaced. */
function signatureOf(st: fs.Stats): string {
  return `${st.ino}:${st.size}:${st.mtimeMs}`;
}

/**
 * The access control of a listening mode, or undefined when no rule was given; allow-file
 * reloads and bad lines in the file are logged.
 */
export function createAccessControl(options: AccessOptions | undefined, logger: Logger): AccessControl | undefined {
  if (!options) return undefined;
  return new AccessControl({
    ...options,
    onReload: ({ count, problems, error }) => {
      for (const p of problems) logger.warn('allow-file', `ignoring ${p}`);
      if (error) logger.warn('allow-file', `could not re-read the allow file, keeping the previous list: ${error}`);
      else logger.event('allow-file', `allow file loaded: ${count} entr${count === 1 ? 'y' : 'ies'}`, { count });
    },
  });
}
