/**
 * What the proxy hops (socks5:, http-connect:) share: their address syntax
 * ([USER:PASS@]HOST:PORT), reading the proxy's reply off the stream without taking a byte of
 * what follows it, and naming the hop in errors ("hop 2 (sas1:1080): …").
 */
import type { Duplex } from 'node:stream';
import { NetError, UsageError } from '../errors';
import { formatHostPort, parseHostPort, type HostPortAddress } from './address';
import type { AddressBase, Role } from './types';

/** How long a proxy may take to answer one step of its handshake. */
export const HOP_REPLY_TIMEOUT_MS = 10_000;

export interface HopAddress extends HostPortAddress {
  user?: string;
  password?: string;
}

/** "[USER:PASS@]HOST:PORT" after the scheme. */
export function parseHopAddress(scheme: string, rest: string, role: Role, original: string): HopAddress {
  const at = rest.lastIndexOf('@');
  const hp = parseHostPort(at >= 0 ? rest.slice(at + 1) : rest, role, original);
  if (at < 0) return { scheme, ...hp };
  const cred = rest.slice(0, at);
  const colon = cred.indexOf(':');
  if (colon < 0) throw new UsageError(`malformed proxy hop '${original}': write the credentials as USER:PASSWORD@`);
  return { scheme, ...hp, user: decodeURIComponent(cred.slice(0, colon)), password: decodeURIComponent(cred.slice(colon + 1)) };
}

/** "socks5:proxy:1080", credentials left out (they never appear in logs). */
export function formatHop(a: HopAddress): string {
  return `${a.scheme}:${formatHostPort(a.host, a.port)}`;
}

/** The carrier of a hop: a TCP connection to the proxy. */
export function hopCarrier(a: HopAddress): AddressBase {
  return { scheme: 'tcp', host: a.host, port: a.port, hostGiven: a.hostGiven } as AddressBase;
}

/** A failure of hop `n`, named so the user knows which proxy of the chain said no. */
export function hopError(a: HopAddress, n: number | undefined, why: string, code?: string): NetError {
  return new NetError(`${n ? `hop ${n} ` : 'proxy '}(${formatHostPort(a.host, a.port)}): ${why}`, code);
}

/**
 * Reads until `complete(buffered)` returns how many bytes the reply takes (or undefined: not
 * yet); whatever came after the reply is put back for the relay. Rejects when the stream
 * ends first, past `max` bytes, or after the timeout.
 */
export function readReply(stream: Duplex, complete: (buf: Buffer) => number | undefined, max: number, signal?: AbortSignal): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => fail(new Error('no reply in time')), HOP_REPLY_TIMEOUT_MS);
    const cleanup = () => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      stream.off('error', fail);
      signal?.removeEventListener('abort', onAbort);
      stream.pause();
    };
    const fail = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onEnd = () => fail(new Error('the proxy closed the connection'));
    const onAbort = () => fail(new Error('aborted'));
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const n = complete(buf);
      if (n === undefined) {
        if (buf.length > max) fail(new Error(`reply longer than ${max} bytes`));
        return;
      }
      cleanup();
      if (buf.length > n) stream.unshift(buf.subarray(n));
      resolve(buf.subarray(0, n));
    };
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('close', onEnd);
    stream.once('error', fail);
    signal?.addEventListener('abort', onAbort, { once: true });
    stream.resume();
  });
}
