/**
 * Option groups shared by several commands, and the conversions from yargs' argv to the
 * modes' typed options. Every check that can fail here throws a UsageError (exit 2).
 */
import type { Argv } from 'yargs';
import { UsageError } from '../errors';
import { formatAddress, getTransport, hasHostPort, listTransports, parseAddress, transportFlags, withFamily, type IpFamily, type Address, type AddressBase, type AddressSlot, type FlagValues, type PemFile, type Role, type TcpAddress, type TlsAddress, type Transport } from '../endpoints/index';
import { checkKeyPair, readPem } from '../endpoints/tls';
import type { AccessOptions } from '../access';
import { parseMetricsAddress } from '../metrics';
import { durationOption, parseAllowLinkAddress } from '../allow-link';
import type { LogFormat } from '../log';
import { DEFAULT_CLOSE_WAIT_MS } from '../relay';
import { COMMAND_MARK } from './help-layout';

/** -4/-6, nc's: one IP version only, for the address itself and for resolving its name. */
export function withFamilyOptions<T>(y: Argv<T>) {
  return y
    .option('ipv4', { alias: '4', type: 'boolean', describe: 'IPv4 only (nc -4): names resolve to IPv4 addresses, the default host is 127.0.0.1' })
    .option('ipv6', { alias: '6', type: 'boolean', describe: 'IPv6 only (nc -6): names resolve to IPv6 addresses, the default host is ::1' });
}

/** -4, -6 or neither; both is a usage error. */
export function familyOption(argv: FlagValues): IpFamily | undefined {
  if (argv.ipv4 && argv.ipv6) throw new UsageError('-4 and -6 contradict each other: give one of them');
  return argv.ipv4 ? 4 : argv.ipv6 ? 6 : undefined;
}

/** An address (and its --via hops) forced to -4/-6; a unix: path has no IP version: refused. */
function applyFamily(addr: Address, family: IpFamily | undefined): Address {
  if (family === undefined) return addr;
  if (!hasHostPort(addr)) throw new UsageError(`-${family} chooses the IP version, and ${formatAddress(addr)} is not an IP address: leave out -${family}`);
  const forced = withFamily(addr, family, formatAddress(addr)) as Address;
  const via = addr.via?.map((hop) => (hasHostPort(hop) ? withFamily(hop, family, formatAddress(hop)) : hop));
  return via ? ({ ...forced, via } as Address) : forced;
}

/** -v, -x, --log-format and the transport options: every command has them. */
export function withCommonOptions<T>(y: Argv<T>, roles: readonly Role[] = ['listen', 'connect'], kinds?: readonly string[]) {
  return withFamilyOptions(withTransportOptions(y, roles, kinds))
    .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: 'Log connection events on stderr (listening, connection from, closed with byte counts)' })
    .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'No start-up line (listening on …) and no notes: only warnings and errors' })
    .option('hex', { alias: 'x', type: 'boolean', default: false, describe: 'Hex dump of both directions on stderr, each chunk marked with its direction' })
    .option('log-format', { choices: ['text', 'json'] as const, default: 'text' as const, describe: 'Log lines for people (text) or one JSON object per event (json)' });
}

/** Access control, limits and graceful stop: every listening mode has them. */
export function withListenerOptions<T>(y: Argv<T>) {
  return y
    // Not `array: true`: yargs arrays are greedy and would swallow the positional address after them.
    // Repeating the flag still collects every value.
    .option('allow', { type: 'string', describe: 'Only let in clients from this address or CIDR range (repeatable; IPv4 and IPv6)' })
    .option('deny', { type: 'string', describe: 'Refuse clients from this address or CIDR range (repeatable; deny wins over allow)' })
    .option('allow-file', { type: 'string', describe: 'File with one address or CIDR per line (# comments); re-read when it changes' })
    .option('max-conns', { type: 'number', describe: 'Refuse new clients while this many are connected (default 10000)' })
    .option('drain-timeout', { type: 'number', describe: 'On SIGINT/SIGTERM, seconds live connections may take to finish before they are closed' })
    .option('accept-proxy-protocol', { type: 'boolean', describe: "Behind HAProxy or a load balancer: read a PROXY v1/v2 header first and use its client address (needs --trusted-proxy)" })
    .option('allow-link', { type: 'string', describe: 'Serve allow links on http://ADDR/LINKID (PORT = 127.0.0.1:PORT): opening one lets the visitor in (needs --allow-file, --allow-link-file)' })
    .option('allow-link-file', { type: 'string', describe: "Allow links, 'ID LABEL [TTL]' a line, re-read live; delete a line to revoke (make one: sockcat allow-link new)" })
    .option('allow-link-ttl', { type: 'string', describe: 'How long a visit lets the visitor in, unless its link says (default 12h; 30m, 2d, or seconds)' })
    .option('allow-link-redirect', { type: 'string', describe: 'After a visit, redirect the browser to this URL instead of a short page' })
    .option('metrics', { type: 'string', describe: 'Serve Prometheus metrics on http://ADDR/metrics (PORT = 127.0.0.1:PORT); scrapes are not clients' })
    .option('trusted-proxy', { type: 'string', describe: 'Address or CIDR of a proxy allowed to send a PROXY header (repeatable); any other source is closed' });
}

/** --udp-idle: how long a silent UDP peer is remembered (listen -u -k, forward udp:…). */
export function withUdpIdle<T>(y: Argv<T>) {
  return y.option('udp-idle', { type: 'number', describe: 'UDP: forget a peer (and close its upstream socket in forward) after SECS without a datagram from it (default 60; listen -k: never)' });
}

/** --idle-timeout: for commands that relay. */
export function withIdleTimeout<T>(y: Argv<T>) {
  return y.option('idle-timeout', { type: 'number', describe: 'Close a connection after SECS without traffic either way' });
}

/** --close-wait and --idle-timeout: for server modes that relay two peers (forward, exec). */
export function withRelayOptions<T>(y: Argv<T>) {
  // The default is applied once, by the modes (DEFAULT_CLOSE_WAIT_MS), and only shown here.
  return withIdleTimeout(y).option('close-wait', {
    type: 'number',
    describe: `After one side sends EOF, SECS the other direction may take to finish before both are closed (default ${DEFAULT_CLOSE_WAIT_MS / 1000})`,
  });
}

/**
 * The transport flags, from the transports themselves (each declares its flags and the role
 * they mean something for). A mode whose addresses never take a flag hides it from its --help;
 * typed anyway, it is refused by settleAddresses.
 */
export function withTransportOptions<T>(y: Argv<T>, roles: readonly Role[] = ['listen', 'connect'], kinds: readonly string[] = ['stream', 'datagram']): Argv<T> {
  for (const f of transportFlags()) {
    const means = (f.role === 'both' || roles.includes(f.role)) && kinds.includes(f.transport.kind);
    y = y.option(f.name, { type: f.type, alias: f.alias, group: 'Transport options:', describe: f.help, hidden: !means });
  }
  return y;
}

/**
 * Hides from a mode's --help the shared flags it refuses (it still refuses them with a clear
 * line if typed), so the help lists exactly what the mode takes.
 */
export function hideRefused<T>(y: Argv<T>, names: readonly string[]): Argv<T> {
  return names.reduce((acc, name) => acc.hide(name), y);
}

/** One address of a command, before its transport flags are applied. */
export interface AddressSlotSpec extends AddressSlot {
  address: Address;
}

const camel = (name: string) => name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/**
 * Applies the transport flags to a command's addresses, once: --tls/-u/--cert turn addresses
 * into another transport, each transport fills its settings (PEM files are read now), and a
 * flag that no address takes is refused (exit 2) instead of silently ignored. `roles` are the
 * roles the command has, for the wording ("this mode only listens").
 */
export function settleAddresses(slots: AddressSlotSpec[], argv: FlagValues, roles: readonly Role[], kinds: readonly string[] = ['stream', 'datagram']): Address[] {
  const family = familyOption(argv);
  const settled = slots.map((slot) => applyFamily(settleAddress(slot.address, argv, slot), family));
  for (const addr of settled) {
    const t = getTransport(addr.scheme);
    if (!kinds.includes(t.kind)) throw new UsageError(`${formatAddress(addr)}: this mode works on byte streams (tcp:, tls:, unix:), not on ${t.scheme}: datagrams`);
  }
  refuseUnusedFlags(settled.map((address, i) => ({ address, role: slots[i].role })), argv, roles);
  return settled;
}

function settleAddress(address: Address, argv: FlagValues, slot: AddressSlot): Address {
  let addr: AddressBase = address;
  for (const t of listTransports()) {
    const taken = t.adopt?.(addr, argv, slot);
    if (taken) {
      addr = taken;
      break;
    }
  }
  const t = getTransport(addr.scheme);
  return (t.configure ? t.configure(addr, argv, slot.role) : addr) as Address;
}

function refuseUnusedFlags(settled: Array<{ address: AddressBase; role: Role }>, argv: FlagValues, roles: readonly Role[]): void {
  const unused = new Map<Transport, string[]>();
  for (const f of transportFlags()) {
    const value = argv[camel(f.name)];
    if (value === undefined || value === false) continue;
    const used = settled.some(({ address, role }) => getTransport(address.scheme) === f.transport && (f.role === 'both' || f.role === role));
    if (!used) unused.set(f.transport, [...(unused.get(f.transport) ?? []), f.name]);
  }
  for (const [t, names] of unused) {
    const flags = names.map((n) => `--${n}`).join(', ');
    throw new UsageError(t.unusedFlags?.(names, [...roles]) ?? `${flags} ${names.length > 1 ? 'apply' : 'applies'} to ${t.scheme}: addresses, and there is none here`);
  }
}

/**
 * One address with the transport flags applied (see settleAddresses). Settings travel inside
 * the Address object, so modes pass addresses around without knowing about TLS or unix modes.
 * `argv.listenOnly` (modes that only listen) and `argv.tlsOnConnect` (connect: --tls is for its
 * one address) also refuse flags the address does not take; a command with several addresses
 * (forward) calls settleAddresses instead.
 */
export function applyTransportOptions(addr: Address, argv: Record<string, unknown>, role: Role): Address {
  const only = argv.listenOnly ? 'listen' : argv.tlsOnConnect ? 'connect' : undefined;
  if (!only) return settleAddress(addr, argv, { role, primary: role === 'listen' });
  return settleAddresses([{ address: addr, role, primary: true }], argv, [only])[0];
}

/** --cert and --key of a mode that holds its own TLS server (relay): read and checked now. */
export function readPemOption(certPath: string, keyPath: string): { cert: PemFile; key: PemFile } {
  const cert = readPem(certPath, '--cert');
  const key = readPem(keyPath, '--key');
  checkKeyPair(cert, key, '--cert', '--key');
  return { cert, key };
}

/** A PEM file read now (e.g. expose --ca), with the same worded errors. */
export function readPemFile(path: string, flag: string): PemFile {
  return readPem(path, flag);
}

/** Seconds from the command line → milliseconds, refusing negative and non-numbers. */
export function secondsOption(value: unknown, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`${flag} takes a number of seconds ≥ 0 (e.g. 5 or 0.5), not ${shown(value)}`);
  const ms = Math.round(n * 1000);
  // Node fires a longer timer after 1 ms (and re-arming ones every millisecond): refuse it here,
  // where every seconds flag is settled, rather than let "never" mean "at once".
  if (ms > MAX_TIMER_MS) {
    throw new UsageError(`${flag} takes at most ${MAX_TIMER_MS / 1000} seconds (about 24.8 days, the longest timer Node keeps), not ${shown(value)}; leave it out for no limit`);
  }
  return ms;
}

/** The longest delay a Node timer honours: 2^31 - 1 ms. */
export const MAX_TIMER_MS = 2_147_483_000;

/** A positive whole number, or undefined. */
export function countOption(value: unknown, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} takes a whole number ≥ 1, not ${shown(value)}`);
  return n;
}

/** yargs turns a word given to a number option into NaN: say "a word", not "'NaN'", which the user never typed. */
function shown(value: unknown): string {
  return typeof value === 'number' && Number.isNaN(value) ? 'a word' : `'${value}'`;
}

/**
 * The address from positionals: "ADDR", or nc-style "HOST PORT".
 */
export function addressFromArgs(first: unknown, second: unknown, role: Role, what = 'address'): Address {
  return parseAddress(addressText(first, second, what), role);
}

/** The address text positionals stand for: "ADDR", "HOST PORT" or "PORT HOST" (nc's -l -p 9090 127.0.0.1 order) → "HOST:PORT". */
export function addressText(first: unknown, second: unknown, what = 'address'): string {
  const given = (v: unknown) => v !== undefined && v !== '';
  if (!given(first) && given(second)) return String(second);
  if (!given(first)) throw new UsageError(`missing ${what} (e.g. 9090, 127.0.0.1:9090 or [::1]:9090)`);
  if (!given(second)) return String(first);
  let [host, port] = [String(first), String(second)];
  const isPort = (t: string) => /^\d+$/.test(t);
  if (isPort(host) && isPort(port)) throw new UsageError(`two ports given (${host} and ${port}): give one, with its host if needed (e.g. 127.0.0.1 ${port})`);
  if (isPort(host)) [host, port] = [port, host];
  if (host.includes(':') && !host.startsWith('[')) host = `[${host}]`;
  return `${host}:${port}`;
}

export interface CommonArgs {
  [key: string]: unknown;
  verbose?: boolean;
  quiet?: boolean;
  hex?: boolean;
  logFormat?: LogFormat;
}

export interface ListenerArgs {
  [key: string]: unknown;
  allow?: string | string[];
  deny?: string | string[];
  allowFile?: string;
  maxConns?: number;
  drainTimeout?: number;
  acceptProxyProtocol?: boolean;
  trustedProxy?: string | string[];
  metrics?: string;
  allowLink?: string;
  allowLinkFile?: string;
  allowLinkTtl?: string;
  allowLinkRedirect?: string;
}

/**
 * A repeatable flag: absent, once (a string) or several times (an array); "a,b" also splits.
 * An empty entry (`--allow=`, `--allow=,`, `--allow "$UNSET"`) is refused: for an access rule,
 * quietly dropping it would turn a list meant to shut the door into no list at all.
 */
export function listOption(value: string | string[] | undefined, flag: string): string[] {
  if (value === undefined) return [];
  const items = ([] as string[]).concat(value).flatMap((v) => String(v).split(',')).map((v) => v.trim());
  if (items.some((v) => v === '')) {
    throw new UsageError(`${flag} got an empty rule (an unset shell variable?): give an address or CIDR range, e.g. ${flag} 192.168.1.0/24`);
  }
  return items;
}

export function commonFromArgs(argv: CommonArgs) {
  return { verbose: argv.verbose, quiet: quietOption(argv), hex: argv.hex, logFormat: argv.logFormat };
}

/** -q, refused with -v: one asks for more lines, the other for fewer. */
export function quietOption(argv: { verbose?: boolean; quiet?: boolean }): boolean {
  if (argv.quiet && argv.verbose) throw new UsageError('-q (--quiet) and -v (--verbose) contradict each other: give one of them');
  return argv.quiet === true;
}

/** Listener options in the modes' shape. */
export function listenerFromArgs(argv: ListenerArgs) {
  const allow = listOption(argv.allow, '--allow');
  const deny = listOption(argv.deny, '--deny');
  if (Array.isArray(argv.allowFile)) throw new UsageError('--allow-file takes one file (put every address in it)');
  if (argv.allowFile !== undefined && String(argv.allowFile).trim() === '') {
    throw new UsageError('--allow-file got an empty file name (an unset shell variable?): an empty name would let everyone in');
  }
  const access: AccessOptions | undefined = allow.length || deny.length || argv.allowFile !== undefined ? { allow, deny, allowFile: argv.allowFile } : undefined;
  const trusted = listOption(argv.trustedProxy, '--trusted-proxy');
  if (trusted.length && !argv.acceptProxyProtocol && argv.allowLink === undefined) {
    throw new UsageError('--trusted-proxy names the proxies whose PROXY header (or, for --allow-link, X-Forwarded-For) is believed: add --accept-proxy-protocol');
  }
  if (argv.acceptProxyProtocol && !trusted.length) {
    // Believing a header from anyone would let any client claim any address and walk through --allow.
    throw new UsageError('--accept-proxy-protocol needs --trusted-proxy CIDR: the address of the proxy allowed to name the client (e.g. --trusted-proxy 10.0.0.5)');
  }
  return {
    access,
    acceptProxy: argv.acceptProxyProtocol ? { trusted } : undefined,
    metrics: argv.metrics === undefined ? undefined : parseMetricsAddress(String(argv.metrics)),
    allowLink: allowLinkFromArgs(argv, trusted),
    maxConns: countOption(argv.maxConns, '--max-conns'),
    drainTimeoutMs: secondsOption(argv.drainTimeout, '--drain-timeout'),
  };
}

/** --allow-link and its companions, checked together. */
function allowLinkFromArgs(argv: ListenerArgs, trusted: string[]) {
  const one = (v: unknown, flag: string) => {
    if (Array.isArray(v)) throw new UsageError(`${flag} takes one value`);
    if (v !== undefined && String(v).trim() === '') throw new UsageError(`${flag} got an empty value (an unset shell variable?)`);
    return v === undefined ? undefined : String(v);
  };
  const address = one(argv.allowLink, '--allow-link');
  const linkFile = one(argv.allowLinkFile, '--allow-link-file');
  const ttl = one(argv.allowLinkTtl, '--allow-link-ttl');
  const redirect = one(argv.allowLinkRedirect, '--allow-link-redirect');
  if (address === undefined) {
    if (linkFile !== undefined || ttl !== undefined || redirect !== undefined) throw new UsageError('--allow-link-file, --allow-link-ttl and --allow-link-redirect go with --allow-link ADDR');
    return undefined;
  }
  if (linkFile === undefined) throw new UsageError('--allow-link needs --allow-link-file FILE: the links it serves (make one with: sockcat allow-link new LABEL --file FILE)');
  if (argv.allowFile === undefined) throw new UsageError('--allow-link needs --allow-file FILE: visitors are added there (so a restart keeps them), and without an allow list everyone is let in anyway');
  if (redirect !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(redirect);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) throw new UsageError(`--allow-link-redirect takes an http:// or https:// URL, not '${redirect}'`);
  }
  // --tls, --cert and --key make it HTTPS, as they do for the listening address.
  const where = applyTransportOptions(parseAllowLinkAddress(address), argv, 'listen') as TcpAddress | TlsAddress;
  if (where.scheme === 'tls' && argv.acceptProxyProtocol) {
    throw new UsageError('--allow-link over TLS cannot read a PROXY header yet (--accept-proxy-protocol): serve the links over plain TCP behind the balancer, or terminate TLS there');
  }
  return {
    address: where,
    linkFile,
    ttlMs: ttl === undefined ? undefined : durationOption(ttl, '--allow-link-ttl'),
    redirect,
    trustedProxies: trusted,
  };
}

const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1 << 20, mb: 1 << 20, mib: 1 << 20, g: 1 << 30, gb: 1 << 30, gib: 1 << 30 };

/** A size in bytes: 4096, 64K, 1M, 1MiB (binary units), at least `min`; or undefined. */
export function bytesOption(value: unknown, flag: string, min = 1): number | undefined {
  if (value === undefined) return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(String(value));
  const unit = m ? BYTE_UNITS[m[2].toLowerCase()] : undefined;
  const n = m && unit !== undefined ? Math.floor(Number(m[1]) * unit) : NaN;
  if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`${flag} takes a size in bytes ≥ ${min} (e.g. 4096, 64K, 1M), not '${value}'`);
  return n;
}

/**
 * A mode's examples as its help epilog: each command on its own line with what it does below.
 * yargs' two-column .example() table cuts long commands mid-word, and a student copies these.
 * `$0` stands for sockcat, as in yargs; `notes` (already wrapped) come after the examples.
 */
export function examplesEpilog(examples: Array<[command: string, meaning: string]>, notes?: string): string {
  const lines = ['Examples:'];
  for (const [command, meaning] of examples) {
    lines.push(`${COMMAND_MARK}  ${command.replace(/\$0/g, 'sockcat')}`, `      ${meaning}`);
  }
  if (notes) lines.push('', notes);
  return lines.join('\n');
}

/** Whether the user typed `--NAME` (or `--NAME=…`, or its camelCase form) before any `--`: flags with a default are always in argv. */
export function flagGiven(args: readonly string[], name: string): boolean {
  const forms = [`--${name}`, `--${camel(name)}`];
  for (const a of args) {
    if (a === '--') return false;
    if (forms.some((f) => a === f || a.startsWith(`${f}=`))) return true;
  }
  return false;
}

/**
 * Refuses (exit 2) the flags of `names` the user typed when they mean nothing here: `why` says
 * what they apply to ("to TCP forwards, not to UDP: use --udp-idle"; the verb is added).
 */
export function refuseTyped(args: readonly string[], names: readonly string[], why: string): void {
  const typed = names.filter((n) => flagGiven(args, n));
  if (typed.length === 0) return;
  const list = typed.map((n) => `--${n}`).join(', ');
  throw new UsageError(`${list} ${typed.length > 1 ? 'apply' : 'applies'} ${why}`);
}
