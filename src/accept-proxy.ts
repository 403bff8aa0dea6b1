/**
 * `--accept-proxy-protocol --trusted-proxy CIDR`: the pre-step that runs on every accepted
 * connection of a listening mode before access control, when sockcat sits behind HAProxy (or a
 * Kubernetes Service / cloud load balancer speaking the PROXY protocol).
 *
 * Only a connection from a trusted proxy may carry a header, and it must carry one: anything
 * else (a stranger, a missing or malformed header, a header that does not arrive in time) closes
 * that connection and is logged, and nothing it said is believed. The header's source address
 * then becomes the connection's remote peer, so --allow/--deny, logs, exec's SOCKCAT_PEER_*,
 * broadcast's chat names and forward's own --proxy-protocol all see the real client.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { AccessControl, parseRule } from './access';
import { formatHostPort } from './endpoints/address';
import type { Connection, Peer } from './endpoints/types';
import { decodeProxyHeader, type ProxyEndpoint, type ProxyHeader } from './proxy-protocol';
import { UsageError } from './errors';

/** How long a trusted proxy has to send its header; HAProxy sends it with the connection. */
export const DEFAULT_PROXY_HEADER_TIMEOUT_MS = 3_000;

export interface AcceptProxyOptions {
  /** --trusted-proxy: addresses or CIDR ranges allowed to send a header (at least one). */
  trusted: string[];
  /** How long the header may take (ms, default 3 s). */
  timeoutMs?: number;
}

/** What the pre-step decided: the connection to serve (addresses replaced), or why it was closed. */
export type PreStepResult = { ok: true; conn: Connection; header: ProxyHeader } | { ok: false; reason: 'untrusted-proxy' | 'proxy-header' | 'gone'; text: string };

/** Reads and checks the PROXY header of each connection from a trusted proxy. */
export class ProxyAcceptor {
  private readonly trusted: AccessControl;
  readonly timeoutMs: number;

  constructor(opts: AcceptProxyOptions) {
    if (opts.trusted.length === 0) {
      // Trusting every source would let anyone claim any address and walk through --allow.
      throw new UsageError('--accept-proxy-protocol needs --trusted-proxy CIDR: the addresses of the proxies allowed to name the client (e.g. --trusted-proxy 10.0.0.5)');
    }
    this.trusted = new AccessControl({ allow: opts.trusted.map((t) => trustedRule(t)) });
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_PROXY_HEADER_TIMEOUT_MS;
  }

  /** Reads the header of `conn`; on failure the caller closes the connection and logs `text`. */
  async run(conn: Connection): Promise<PreStepResult> {
    const from = conn.remote;
    // Reset before we could even ask who it was: HAProxy's TCP checks close with a RST at once.
    // Not an untrusted proxy (an alert on that must not fire 5 times a second).
    if (from.port === undefined && from.address === '?') return { ok: false, reason: 'gone', text: 'gone before its PROXY header (a health check that resets at once?)' };
    if (from.port === undefined || !this.trusted.check(from.address).ok) {
      return { ok: false, reason: 'untrusted-proxy', text: `${from.label} is not a --trusted-proxy; a PROXY header from it would not be believed` };
    }
    let header: ProxyHeader;
    try {
      header = await readProxyHeader(conn.stream, this.timeoutMs);
    } catch (err) {
      return { ok: false, reason: 'proxy-header', text: `bad PROXY header from ${from.label}: ${(err as Error).message}` };
    }
    if (header.command !== 'proxy') return { ok: true, conn, header };
    return { ok: true, header, conn: { stream: conn.stream, remote: peerOf(header.source), local: peerOf(header.destination) } };
  }
}

/** --trusted-proxy accepts what --allow accepts; a typo is a usage error naming --trusted-proxy. */
function trustedRule(text: string): string {
  return parseRule(text, '--trusted-proxy').text;
}

/** A header endpoint as a Peer, IPv4-mapped IPv6 shown as IPv4 (as the TCP transport does). */
function peerOf(e: Required<ProxyEndpoint>): Peer {
  const address = e.address.startsWith('::ffff:') && net.isIPv4(e.address.slice(7)) ? e.address.slice(7) : e.address;
  return { address, port: e.port, label: formatHostPort(address, e.port) };
}

/**
 * Reads one PROXY header (v1 or v2) from the start of `stream` and hands the bytes after it back
 * to the stream (unshift), so whoever reads next sees exactly what the client sent. Rejects with
 * a reason on a malformed header, an early end, or after `timeoutMs`. Buffers at most one header.
 */
export function readProxyHeader(stream: Duplex, timeoutMs: number): Promise<ProxyHeader> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    let settled = false;
    const finish = (err: Error | undefined, header?: ProxyHeader, rest?: Buffer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('close', onEnd);
      if (err) return reject(err);
      if (rest && rest.length > 0) stream.unshift(rest);
      resolve(header!);
    };
    const onReadable = () => {
      let chunk: Buffer | null;
      while (!settled && (chunk = stream.read() as Buffer | null) !== null) {
        buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
        const r = decodeProxyHeader(buf);
        if (r.status === 'invalid') return finish(new Error(r.reason));
        if (r.status === 'done') return finish(undefined, r.header, buf.subarray(r.length));
      }
    };
    const onEnd = () => finish(new Error(buf.length ? 'the connection ended in the middle of its PROXY header' : 'the connection ended before sending a PROXY header'));
    const onError = (err: Error) => finish(err);
    const timer = setTimeout(() => finish(new Error(`no complete PROXY header within ${timeoutMs / 1000} s`)), timeoutMs);
    timer.unref();
    stream.on('readable', onReadable);
    stream.on('end', onEnd);
    stream.on('close', onEnd);
    stream.on('error', onError);
  });
}
