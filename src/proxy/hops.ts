/**
 * --via URL: proxy hops, taken in the order given (gost's -F), for connect, forward and proxy.
 *
 *   socks5://[USER:PASS@]HOST[:PORT]     a SOCKS5 proxy (port 1080 by default)
 *   socks5h://…                          the same; the name curl users write when the hop resolves
 *   http://[USER:PASS@]HOST:PORT         an HTTP proxy, asked with CONNECT
 *   socks5+tls://…, https://…            the same, with the hop itself reached over TLS
 *
 * Names are never resolved here: each hop is handed the next hop's (or the destination's) name
 * and resolves it on its side, which is what a chain into a private network needs (the course's
 * `--via socks5://ovh:1080 --via socks5://sas1:1080` to roucas101.etu:22, where only ovh knows
 * sas1 and only sas1 knows roucas101.etu). TLS hops verify the certificate against the hop's
 * name unless the URL says otherwise (?ca=FILE, ?servername=NAME, ?insecure).
 *
 * A failure names the hop that failed and why: "hop 2 (sas1:1080): connection to
 * roucas101.etu:22 refused".
 */
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { NetError, UsageError, describeError } from '../errors';
import { describeTlsError } from '../endpoints/tls';
import { formatHostPort } from '../endpoints/address';
import { connectTcpSocket, socketPeer } from '../endpoints/tcp';
import type { Connection, DialOptions as ConnectOptions, Peer } from '../endpoints/types';
import { connectAddress, type Address, type TcpAddress } from '../endpoints/index';
import { HandshakeEnded, HandshakeReader } from './reader';
import { ATYP_DOMAIN, ATYP_IPV4, ATYP_IPV6, METHOD_NONE, METHOD_USERPASS, Reply, SOCKS5, CMD_CONNECT, encodeAddress, isSafeHostName, replyText, type ReplyCode } from './socks-wire';

export interface Hop {
  protocol: 'socks5' | 'http';
  /** The hop is reached over TLS (socks5+tls://, https://). */
  tls: boolean;
  host: string;
  port: number;
  user?: string;
  password?: string;
  /** TLS: a CA or self-signed certificate to trust instead of the system's list. */
  ca?: Buffer;
  /** TLS: do not verify the certificate. */
  insecure?: boolean;
  /** TLS: the name to send and check (default: host). */
  servername?: string;
  /** "HOST:PORT", how errors and logs name the hop (never with its password). */
  label: string;
}

const SCHEMES: Record<string, { protocol: Hop['protocol']; tls: boolean; defaultPort?: number }> = {
  'socks5:': { protocol: 'socks5', tls: false, defaultPort: 1080 },
  'socks5h:': { protocol: 'socks5', tls: false, defaultPort: 1080 },
  'socks5+tls:': { protocol: 'socks5', tls: true, defaultPort: 1080 },
  'socks5h+tls:': { protocol: 'socks5', tls: true, defaultPort: 1080 },
  'http:': { protocol: 'http', tls: false },
  'https:': { protocol: 'http', tls: true },
};

/** Parses one --via URL; throws a UsageError saying what is wrong. */
export function parseViaUrl(text: string): Hop {
  const example = 'e.g. socks5://127.0.0.1:1080, socks5h://user:pass@bastion:1080, http://proxy:3128, https://proxy:443';
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--via '${text}' is not a proxy URL (${example})`);
  }
  const scheme = SCHEMES[url.protocol.toLowerCase()];
  if (!scheme) throw new UsageError(`--via '${text}': unknown proxy scheme '${url.protocol}' (socks5://, socks5h://, socks5+tls://, http://, https://)`);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw new UsageError(`--via '${text}' names no host (${example})`);
  if (!net.isIP(host) && !isSafeHostName(host)) throw new UsageError(`--via '${text}': '${host}' is not a host name or IP address`);
  // WHATWG URL drops a port equal to the scheme's default (http:80, https:443).
  const port = url.port ? Number(url.port) : (scheme.defaultPort ?? (url.protocol === 'https:' ? 443 : url.protocol === 'http:' && /:80(\/|$)/.test(text) ? 80 : undefined));
  if (port === undefined) throw new UsageError(`--via '${text}' needs a port (e.g. ${url.protocol}//${url.host}:3128)`);
  if (url.pathname && url.pathname !== '/' && url.pathname !== '') throw new UsageError(`--via '${text}': a proxy URL has no path ('${url.pathname}')`);
  const hop: Hop = {
    protocol: scheme.protocol,
    tls: scheme.tls,
    host,
    port,
    label: formatHostPort(host, port),
  };
  if (url.username) hop.user = decodeURIComponent(url.username);
  if (url.password) hop.password = decodeURIComponent(url.password);
  for (const [key, value] of url.searchParams) {
    if (!scheme.tls) throw new UsageError(`--via '${text}': '?${key}' applies to TLS hops (socks5+tls://, https://)`);
    if (key === 'insecure') hop.insecure = value === '' || value === '1' || value === 'true';
    else if (key === 'servername') hop.servername = value;
    else if (key === 'ca') {
      try {
        hop.ca = fs.readFileSync(value);
      } catch {
        throw new UsageError(`--via '${text}': cannot read the CA file ${value}`);
      }
    } else throw new UsageError(`--via '${text}': unknown option '?${key}' (ca=FILE, servername=NAME, insecure)`);
  }
  return hop;
}

/** A hop failed: the message names it ("hop 2 (sas1:1080): …"). */
export class HopError extends NetError {
  constructor(
    message: string,
    code: string | undefined,
    /** 1-based position of the hop in the chain. */
    readonly hop: number,
    /** What a SOCKS server in front of this chain should answer for it. */
    readonly reply: ReplyCode,
  ) {
    super(message, code);
    this.name = 'HopError';
  }
}

export interface ViaOptions {
  /** Give up on the whole chain after this many ms. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** How long a hop may take to answer its handshake when no timeout is given. */
const DEFAULT_HOP_TIMEOUT_MS = 30_000;

/**
 * Connects to `host:port` through every hop in order and resolves with the stream that reaches
 * it (the hops' handshakes done, nothing of the destination's read yet).
 */
export async function connectVia(hops: readonly Hop[], host: string, port: number, opts: ViaOptions = {}): Promise<Connection> {
  if (hops.length === 0) throw new Error('connectVia needs at least one hop');
  const first = hops[0];
  const timeoutMs = opts.timeoutMs && opts.timeoutMs > 0 ? opts.timeoutMs : DEFAULT_HOP_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  const left = () => Math.max(1, deadline - Date.now());
  let raw: net.Socket;
  try {
    raw = await connectTcpSocket({ host: first.host, port: first.port, hostGiven: true }, { timeoutMs, signal: opts.signal });
  } catch (err) {
    throw new HopError(`hop 1 (${first.label}): ${(err as Error).message}`, (err as NetError).code, 1, Reply.generalFailure);
  }
  let stream: Duplex = raw;
  // One deadline for the whole chain: when it passes, the socket is destroyed and the step under way fails.
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    raw.destroy();
  }, left());
  const onAbort = () => raw.destroy();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for (let i = 0; i < hops.length; i++) {
      const hop = hops[i];
      const n = i + 1;
      const next = i + 1 < hops.length ? { host: hops[i + 1].host, port: hops[i + 1].port } : { host, port };
      try {
        if (hop.tls) stream = await tlsOver(stream, hop);
        if (hop.protocol === 'socks5') await socks5Handshake(stream, hop, next.host, next.port, left(), n);
        else await httpConnectHandshake(stream, hop, next.host, next.port, left(), n);
      } catch (err) {
        if (err instanceof HopError) throw err;
        if (timedOut) throw new HopError(`hop ${n} (${hop.label}): no answer within ${timeoutMs / 1000} s`, 'ETIMEDOUT', n, Reply.ttlExpired);
        if (opts.signal?.aborted) throw new HopError(`hop ${n} (${hop.label}): aborted`, undefined, n, Reply.generalFailure);
        const e = err as Error & { code?: string };
        const words = err instanceof HandshakeEnded ? `closed the connection during the ${hop.protocol === 'socks5' ? 'SOCKS5' : 'HTTP CONNECT'} handshake (${err.why === 'reset' ? 'reset' : 'not a proxy, or it refused us'})` : (describeTlsError(err, hop.label) ?? describeError(err, { action: 'connect', address: hop.label }));
        throw new HopError(`hop ${n} (${hop.label}): ${words}`, e.code, n, Reply.generalFailure);
      }
    }
  } catch (err) {
    stream.destroy();
    raw.destroy();
    throw err;
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onAbort);
  }
  const remote: Peer = { address: host, port, label: formatHostPort(host, port) };
  return { stream, remote, local: socketPeer(raw, 'local') };
}

/** Starts TLS with a hop over the stream that reaches it. */
function tlsOver(stream: Duplex, hop: Hop): Promise<tls.TLSSocket> {
  const servername = hop.servername ?? hop.host;
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      socket: stream,
      servername: net.isIP(servername) ? undefined : servername,
      ca: hop.ca,
      rejectUnauthorized: !hop.insecure,
      checkServerIdentity: (_h, cert) => tls.checkServerIdentity(servername, cert),
    });
    const fail = (err: Error) => {
      socket.destroy();
      reject(err);
    };
    socket.once('error', fail);
    socket.once('secureConnect', () => {
      socket.off('error', fail);
      resolve(socket);
    });
  });
}

/** The SOCKS5 client handshake (RFC 1928, login by RFC 1929) asking `hop` to connect to host:port. */
export async function socks5Handshake(stream: Duplex, hop: Hop, host: string, port: number, timeoutMs: number, index = 1): Promise<void> {
  const reader = new HandshakeReader(stream, { timeoutMs });
  const n = index;
  const fail = (words: string, reply: ReplyCode, code?: string) => new HopError(`hop ${n} (${hop.label}): ${words}`, code, n, reply);
  try {
    const withLogin = hop.user !== undefined;
    stream.write(Buffer.from(withLogin ? [SOCKS5, 2, METHOD_NONE, METHOD_USERPASS] : [SOCKS5, 1, METHOD_NONE]));
    const choice = await reader.read(2);
    if (choice[0] !== SOCKS5) throw fail(`not a SOCKS5 proxy (answered 0x${choice[0].toString(16)})`, Reply.generalFailure, 'EPROTO');
    if (choice[1] === METHOD_USERPASS && withLogin) {
      const user = Buffer.from(hop.user ?? '', 'utf8');
      const pass = Buffer.from(hop.password ?? '', 'utf8');
      if (user.length > 255 || pass.length > 255) throw fail('user name or password longer than 255 bytes', Reply.generalFailure);
      stream.write(Buffer.concat([Buffer.from([0x01, user.length]), user, Buffer.from([pass.length]), pass]));
      const status = await reader.read(2);
      if (status[1] !== 0x00) throw fail(`login refused for user '${hop.user}'`, Reply.notAllowed, 'EACCES');
    } else if (choice[1] === METHOD_USERPASS) {
      throw fail('asks for a login: put it in the URL (socks5://USER:PASS@HOST:PORT)', Reply.notAllowed, 'EACCES');
    } else if (choice[1] !== METHOD_NONE) {
      throw fail(withLogin ? 'accepts none of our login methods' : 'asks for a login method we do not have (add USER:PASS@ to the URL)', Reply.notAllowed, 'EACCES');
    }
    stream.write(Buffer.concat([Buffer.from([SOCKS5, CMD_CONNECT, 0x00]), encodeAddress(host, port)]));
    const head = await reader.read(4);
    if (head[0] !== SOCKS5) throw fail(`answered the request with version ${head[0]}`, Reply.generalFailure, 'EPROTO');
    // Read the bound address whole, so the bytes after it belong to the destination.
    const atyp = head[3];
    if (atyp === ATYP_IPV4) await reader.read(4 + 2);
    else if (atyp === ATYP_IPV6) await reader.read(16 + 2);
    else if (atyp === ATYP_DOMAIN) await reader.read((await reader.byte()) + 2);
    else if (head[1] === Reply.succeeded) throw fail(`answered with an unknown address type ${atyp}`, Reply.generalFailure, 'EPROTO');
    if (head[1] !== Reply.succeeded) {
      const code = head[1] as ReplyCode;
      const words = code === Reply.notAllowed ? `connection to ${formatHostPort(host, port)} not allowed by its rules` : `connection to ${formatHostPort(host, port)} ${replyText(code)}`;
      throw fail(words, code <= Reply.addressTypeNotSupported ? code : Reply.generalFailure, socksCodeToErrno(code));
    }
  } finally {
    reader.release();
  }
}

/** An errno-like code for a SOCKS5 reply, so callers can tell refused from unreachable. */
function socksCodeToErrno(code: number): string | undefined {
  switch (code) {
    case Reply.connectionRefused:
      return 'ECONNREFUSED';
    case Reply.hostUnreachable:
      return 'EHOSTUNREACH';
    case Reply.networkUnreachable:
      return 'ENETUNREACH';
    case Reply.ttlExpired:
      return 'ETIMEDOUT';
    case Reply.notAllowed:
      return 'EACCES';
    default:
      return undefined;
  }
}

/** The longest HTTP response head we read from a hop. */
const MAX_RESPONSE_HEAD = 16 * 1024;

/** Asks an HTTP proxy for a tunnel with CONNECT host:port. */
export async function httpConnectHandshake(stream: Duplex, hop: Hop, host: string, port: number, timeoutMs: number, index = 1): Promise<void> {
  const n = index;
  const target = formatHostPort(host, port);
  const fail = (words: string, reply: ReplyCode, code?: string) => new HopError(`hop ${n} (${hop.label}): ${words}`, code, n, reply);
  const lines = [`CONNECT ${target} HTTP/1.1`, `Host: ${target}`];
  if (hop.user !== undefined) lines.push(`Proxy-Authorization: Basic ${Buffer.from(`${hop.user}:${hop.password ?? ''}`).toString('base64')}`);
  stream.write(lines.join('\r\n') + '\r\n\r\n');
  const reader = new HandshakeReader(stream, { timeoutMs });
  try {
    let head: Buffer;
    try {
      head = await reader.readUntil(Buffer.from('\r\n\r\n'), MAX_RESPONSE_HEAD);
    } catch (err) {
      if (err instanceof HandshakeEnded && err.why === 'too-long') throw fail(`answered CONNECT with a header over ${MAX_RESPONSE_HEAD} bytes`, Reply.generalFailure, 'EPROTO');
      throw err;
    }
    const status = /^HTTP\/1\.[01] (\d{3})([^\r\n]*)/.exec(head.toString('latin1'));
    if (!status) throw fail('not an HTTP proxy (no HTTP status line in its answer)', Reply.generalFailure, 'EPROTO');
    const code = Number(status[1]);
    const text = `${code}${status[2]}`.trim();
    if (code >= 200 && code < 300) return;
    if (code === 407) throw fail(hop.user === undefined ? `asks for a login (${text}): put it in the URL (http://USER:PASS@HOST:PORT)` : `login refused for user '${hop.user}' (${text})`, Reply.notAllowed, 'EACCES');
    if (code === 403) throw fail(`connection to ${target} not allowed (${text})`, Reply.notAllowed, 'EACCES');
    if (code === 504) throw fail(`connection to ${target} timed out (${text})`, Reply.ttlExpired, 'ETIMEDOUT');
    throw fail(`connection to ${target} failed (${text})`, Reply.generalFailure);
  } finally {
    reader.release();
  }
}

/**
 * Connects to `addr` directly, or through `via` when hops are given (the modes' one call, so
 * connect and forward gain --via without knowing about proxies). Hops reach TCP addresses only;
 * the command refuses other targets with --via.
 */
export function connectThrough(addr: Address, via: readonly Hop[] | undefined, opts: ConnectOptions = {}): Promise<Connection> {
  if (!via || via.length === 0) return connectAddress(addr, opts);
  const { host, port } = addr as TcpAddress;
  return connectVia(via, host, port, { timeoutMs: opts.timeoutMs, signal: opts.signal });
}
