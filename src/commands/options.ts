/**
 * Option groups shared by several commands, and the conversions from yargs' argv to the
 * modes' typed options. Every check that can fail here throws a UsageError (exit 2).
 */
import type { Argv } from 'yargs';
import { UsageError } from '../errors';
import fs from 'node:fs';
import tls from 'node:tls';
import { parseAddress, type Address, type PemFile, type Role, type TlsSettings, type TcpAddress, type TlsAddress } from '../endpoints/index';
import type { AccessOptions } from '../access';
import { parseMetricsAddress } from '../metrics';
import { durationOption, parseAllowLinkAddress } from '../allow-link';
import type { LogFormat } from '../log';
import { DEFAULT_CLOSE_WAIT_MS } from '../relay';

/** -v, -x, --log-format and the transport options: every command has them. */
export function withCommonOptions<T>(y: Argv<T>) {
  return withTransportOptions(y)
    .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: 'Log connection events on stderr (listening, connection from, closed with byte counts)' })
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
  return withIdleTimeout(y).option('close-wait', {
    type: 'number',
    default: DEFAULT_CLOSE_WAIT_MS / 1000,
    describe: 'After one side sends EOF, SECS the other direction may take to finish before both are closed',
  });
}

/**
 * Transport options shared by every command (TLS certificates, unix socket mode, -u…). Each
 * transport adds its flags here, so every mode gains them without per-mode code.
 */
export function withTransportOptions<T>(y: Argv<T>) {
  const group = 'Transport options:';
  return y
    .option('tls', { type: 'boolean', group, describe: 'Use TLS on the listening address (connect: on the server address); same as writing tls:HOST:PORT' })
    .option('cert', { type: 'string', group, describe: 'TLS server: certificate PEM FILE (without it: an ephemeral self-signed one, fingerprint logged)' })
    .option('key', { type: 'string', group, describe: 'TLS server: private key PEM FILE for --cert' })
    .option('ca', { type: 'string', group, describe: 'TLS client: trust this CA or self-signed certificate PEM FILE; server: CA for client certificates' })
    .option('insecure', { type: 'boolean', group, describe: 'TLS client: do not verify the certificate or host name (says so on stderr)' })
    .option('servername', { type: 'string', group, describe: 'TLS client: NAME for SNI and the certificate check (default: the host)' })
    .option('client-cert', { type: 'string', group, describe: 'TLS client: certificate PEM FILE for mutual TLS' })
    .option('client-key', { type: 'string', group, describe: 'TLS client: private key PEM FILE for --client-cert' })
    .option('require-client-cert', { type: 'boolean', group, describe: 'TLS server: refuse clients without a certificate signed by --ca (mutual TLS)' })
    .option('unix-mode', { type: 'string', group, describe: "Permissions of a listening unix: socket file, octal (e.g. 0660; default from the umask)" })
    .option('udp', { alias: 'u', type: 'boolean', group, describe: 'UDP instead of TCP: same as writing udp:HOST:PORT' });
}

/** TLS flags for the connecting side: refused (and hidden from --help) by modes that only listen. */
export const CLIENT_TLS_FLAGS = ['insecure', 'servername', 'client-cert', 'client-key'] as const;

/**
 * Hides from a mode's --help the shared flags it refuses (it still refuses them with a clear
 * line if typed), so the help lists exactly what the mode takes.
 */
export function hideRefused<T>(y: Argv<T>, names: readonly string[]): Argv<T> {
  return names.reduce((acc, name) => acc.hide(name), y);
}

/** Transport flags as yargs hands them over. */
interface TransportArgs {
  tls?: boolean;
  cert?: string;
  key?: string;
  ca?: string;
  insecure?: boolean;
  servername?: string;
  clientCert?: string;
  clientKey?: string;
  requireClientCert?: boolean;
  unixMode?: string;
  udp?: boolean;
  /** Set by the connect command: there --tls applies to the address connected to. */
  tlsOnConnect?: boolean;
  /** Set by the modes that only listen (listen, exec, broadcast): no address takes client TLS flags. */
  listenOnly?: boolean;
}

/**
 * Applies the transport options in argv to a parsed address: settings travel inside the
 * Address object, so modes pass addresses around without knowing about TLS or unix modes.
 * `role` says which address this is: --tls and the server-side TLS flags apply to the listening
 * address (forward's TARGET names tls: itself), the client-side ones to addresses connected to.
 */
export function applyTransportOptions(addr: Address, argv: Record<string, unknown>, role: Role): Address {
  const a = argv as TransportArgs;
  if (a.udp && a.tls) throw new UsageError('-u and --tls cannot be combined (DTLS is not supported)');
  if (a.listenOnly && (a.insecure || a.servername !== undefined || a.clientCert !== undefined || a.clientKey !== undefined)) {
    // Nothing here connects anywhere: silently ignoring them would leave the user believing they act.
    throw new UsageError('--insecure, --servername, --client-cert and --client-key are for TLS clients, and this mode only listens (to ask clients for certificates: --require-client-cert --ca FILE)');
  }
  const serverTlsFlags = a.cert !== undefined || a.key !== undefined || a.requireClientCert === true;
  const wantsTls = a.tls === true || (role === 'listen' && serverTlsFlags);
  if (wantsTls && (role === 'listen' || a.tlsOnConnect)) {
    if (addr.scheme === 'tcp') addr = { ...addr, scheme: 'tls' };
    else if (addr.scheme !== 'tls') throw new UsageError(`--tls works over TCP, not with ${addr.scheme}: addresses`);
  }
  if (a.udp) {
    if (addr.scheme === 'tcp') addr = { ...addr, scheme: 'udp' };
    else if (addr.scheme !== 'udp') throw new UsageError(`-u works on TCP addresses, not with ${addr.scheme}: ones`);
  }
  if (addr.scheme === 'tls') return { ...addr, tls: role === 'listen' ? serverTlsSettings(a) : clientTlsSettings(a) };
  const clientTlsFlags = a.ca !== undefined || a.insecure || a.servername !== undefined || a.clientCert !== undefined || a.clientKey !== undefined;
  if (a.tlsOnConnect && clientTlsFlags) {
    // A TLS flag on a plain connection would be silently ignored: the user believes it is protected.
    throw new UsageError(`--ca, --insecure, --servername and --client-cert apply to TLS: write tls:HOST:PORT or add --tls`);
  }
  if (addr.scheme === 'unix' && role === 'listen' && a.unixMode !== undefined) return { ...addr, mode: parseFileMode(a.unixMode) };
  return addr;
}

function serverTlsSettings(a: TransportArgs): TlsSettings {
  if ((a.cert === undefined) !== (a.key === undefined)) throw new UsageError('--cert and --key go together (the certificate and its private key)');
  if (a.requireClientCert && a.ca === undefined) throw new UsageError('--require-client-cert needs --ca FILE: the CA that signs the client certificates');
  const cert = a.cert === undefined ? undefined : readPem(a.cert, '--cert');
  const key = a.key === undefined ? undefined : readPem(a.key, '--key');
  if (cert && key) checkKeyPair(cert, key, '--cert', '--key');
  return { cert, key, ca: a.ca === undefined ? undefined : readPem(a.ca, '--ca'), requireClientCert: a.requireClientCert };
}

function clientTlsSettings(a: TransportArgs): TlsSettings {
  if ((a.clientCert === undefined) !== (a.clientKey === undefined)) throw new UsageError('--client-cert and --client-key go together (the certificate and its private key)');
  if (a.insecure && a.ca !== undefined) throw new UsageError('--insecure and --ca contradict each other: --ca verifies with that CA, --insecure verifies nothing');
  const clientCert = a.clientCert === undefined ? undefined : readPem(a.clientCert, '--client-cert');
  const clientKey = a.clientKey === undefined ? undefined : readPem(a.clientKey, '--client-key');
  if (clientCert && clientKey) checkKeyPair(clientCert, clientKey, '--client-cert', '--client-key');
  return {
    ca: a.ca === undefined ? undefined : readPem(a.ca, '--ca'),
    insecure: a.insecure,
    servername: a.servername,
    clientCert,
    clientKey,
  };
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

/** Reads a PEM file now, so a typo is a usage error before anything listens or connects. */
function readPem(path: string, flag: string): PemFile {
  let pem: Buffer;
  try {
    pem = fs.readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (err as Error).message;
    throw new UsageError(`${flag} ${path}: ${why}`);
  }
  if (!pem.includes('-----BEGIN ')) throw new UsageError(`${flag} ${path}: not a PEM file (expected a -----BEGIN …----- block)`);
  return { path, pem };
}

/** A certificate with someone else's key fails every handshake: say so at start instead. */
function checkKeyPair(cert: PemFile, key: PemFile, certFlag: string, keyFlag: string): void {
  // OpenSSL only says "PEM routines::no start line": name the usual cause, files given the wrong way round.
  if (!cert.pem.includes('-----BEGIN CERTIFICATE')) {
    const holds = /-----BEGIN [A-Z ]*PRIVATE KEY/.test(cert.pem.toString()) ? `holds a private key, not a certificate: swapped with ${keyFlag}?` : 'holds no certificate (-----BEGIN CERTIFICATE-----)';
    throw new UsageError(`${certFlag} ${cert.path} ${holds}`);
  }
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY/.test(key.pem.toString())) throw new UsageError(`${keyFlag} ${key.path} holds no private key (-----BEGIN PRIVATE KEY-----)`);
  try {
    tls.createSecureContext({ cert: cert.pem, key: key.pem });
  } catch (err) {
    const msg = (err as Error).message;
    const why = /mismatch/i.test(msg) ? 'the key does not belong to the certificate' : msg;
    throw new UsageError(`${certFlag} ${cert.path} with ${keyFlag} ${key.path}: ${why}`);
  }
}

/** "0660" or "660" → 0o660. */
function parseFileMode(text: string): number {
  if (!/^0?[0-7]{3}$/.test(text)) throw new UsageError(`--unix-mode takes octal permissions such as 0660 or 600, not '${text}'`);
  return parseInt(text, 8);
}

/** Seconds from the command line → milliseconds, refusing negative and non-numbers. */
export function secondsOption(value: unknown, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`${flag} takes a number of seconds ≥ 0 (e.g. 5 or 0.5), not ${shown(value)}`);
  return Math.round(n * 1000);
}

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
export function addressFromArgs(first: unknown, second: unknown, role: Role, argv: Record<string, unknown> = {}, what = 'address'): Address {
  let text: string;
  if ((first === undefined || first === '') && second !== undefined && second !== '') text = String(second);
  else if (first === undefined || first === '') throw new UsageError(`missing ${what} (e.g. 9090, 127.0.0.1:9090 or [::1]:9090)`);
  else {
    text = String(first);
    if (second !== undefined && second !== '') {
      const host = text.includes(':') && !text.startsWith('[') ? `[${text}]` : text;
      text = `${host}:${second}`;
    }
  }
  return applyTransportOptions(parseAddress(text, role), argv, role);
}

export interface CommonArgs {
  [key: string]: unknown;
  verbose?: boolean;
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
  return { verbose: argv.verbose, hex: argv.hex, logFormat: argv.logFormat };
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
    lines.push(`  ${command.replace(/\$0/g, 'sockcat')}`, `      ${meaning}`);
  }
  if (notes) lines.push('', notes);
  return lines.join('\n');
}
