/**
 * Raw SOCKS and HTTP proxy clients for tests, written from the RFCs byte by byte (not with
 * sockcat's own hop client), so the server is checked against the wire format itself.
 */
import net from 'node:net';
import { PassThrough } from 'node:stream';
import { connect, waitFor } from './net';
import { runProxy, type ProxyOptions } from '../../src/modes/proxy';
import { parseAddress } from '../../src/endpoints/index';

/** Reads exactly n bytes from a socket (rejects on EOF or after timeoutMs). */
export function readBytes(s: net.Socket, n: number, timeoutMs = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`timed out waiting for ${n} bytes`)), timeoutMs);
    const finish = (err?: Error, buf?: Buffer) => {
      clearTimeout(timer);
      s.off('readable', onReadable);
      s.off('end', onEnd);
      s.off('close', onEnd);
      if (err) reject(err);
      else resolve(buf!);
    };
    const onReadable = () => {
      const b = s.read(n) as Buffer | null;
      if (b) finish(undefined, b);
    };
    const onEnd = () => {
      const rest = s.read() as Buffer | null;
      finish(new Error(`connection ended after ${rest?.length ?? 0} of ${n} bytes`));
    };
    s.on('readable', onReadable);
    s.once('end', onEnd);
    s.once('close', onEnd);
    onReadable();
  });
}

/**
 * Resolves with what the socket sent until the proxy closed it, and how: 'end' (FIN) or
 * 'reset'; the socket is destroyed then.
 */
export function untilClosed(s: net.Socket, timeoutMs = 5000): Promise<{ data: Buffer; how: 'end' | 'reset' }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => reject(new Error('the proxy did not close the connection')), timeoutMs);
    const done = (how: 'end' | 'reset') => {
      clearTimeout(timer);
      s.destroy();
      resolve({ data: Buffer.concat(chunks), how });
    };
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('error', () => done('reset'));
    // A FIN: wait a moment in case a reset follows it, as when node:http cuts a response.
    s.once('end', () => setTimeout(() => done('end'), 50));
    s.once('close', () => done(s.errored ? 'reset' : 'end'));
    s.resume();
  });
}

/** SOCKS5 address bytes: ATYP, address, port. */
export function socksAddress(host: string, port: number): Buffer {
  const p = Buffer.from([port >> 8, port & 0xff]);
  if (net.isIPv4(host)) return Buffer.concat([Buffer.from([1, ...host.split('.').map(Number)]), p]);
  if (host === '::1') return Buffer.concat([Buffer.from([4]), Buffer.alloc(15), Buffer.from([1]), p]);
  const name = Buffer.from(host);
  return Buffer.concat([Buffer.from([3, name.length]), name, p]);
}

/**
 * Opens a SOCKS5 CONNECT through the proxy; resolves with the socket and the reply code
 * (0 = succeeded; the socket is then a tunnel).
 */
export async function socks5Connect(proxyPort: number, host: string, port: number, login?: [string, string]): Promise<{ socket: net.Socket; code: number; bound: Buffer }> {
  const s = await connect(proxyPort);
  s.pause();
  s.write(Buffer.from(login ? [5, 1, 2] : [5, 1, 0]));
  const choice = await readBytes(s, 2);
  if (choice[1] === 0xff) return { socket: s, code: 0xff, bound: Buffer.alloc(0) };
  if (login) {
    const u = Buffer.from(login[0]);
    const pw = Buffer.from(login[1]);
    s.write(Buffer.concat([Buffer.from([1, u.length]), u, Buffer.from([pw.length]), pw]));
    const status = await readBytes(s, 2);
    if (status[1] !== 0) return { socket: s, code: 0x100 | status[1], bound: Buffer.alloc(0) };
  }
  s.write(Buffer.concat([Buffer.from([5, 1, 0]), socksAddress(host, port)]));
  const head = await readBytes(s, 4);
  const rest = await readBytes(s, head[3] === 1 ? 6 : head[3] === 4 ? 18 : 1 + 2);
  return { socket: s, code: head[1], bound: rest };
}

export interface RunningProxy {
  port: number;
  log(): string;
  stop(): Promise<number>;
}

/** Starts `sockcat proxy` in this process on 127.0.0.1:0 with -v. */
export async function startProxy(extra: Partial<ProxyOptions> = {}, listen = '127.0.0.1:0'): Promise<RunningProxy> {
  const stderr = new PassThrough();
  let log = '';
  stderr.on('data', (c) => (log += c));
  const controller = new AbortController();
  let port = 0;
  const done = runProxy(
    {
      listen: parseAddress(listen, 'listen'),
      auth: {},
      map: {},
      onlyMapped: false,
      allowDest: [],
      denyDest: [],
      via: [],
      connectTimeoutMs: 5000,
      closeWaitMs: 2000,
      handshakeTimeoutMs: 5000,
      verbose: true,
      drainTimeoutMs: 0,
      pollMs: 50,
      onListening: (l) => (port = (l.address as { port: number }).port),
      ...extra,
    },
    { stdin: new PassThrough(), stdout: new PassThrough(), stderr, signal: controller.signal, endStdout: true },
  );
  done.catch(() => {});
  await Promise.race([waitFor(() => port !== 0, 5000, 'proxy to listen'), done.then(() => Promise.reject(new Error(`proxy stopped: ${log}`)))]);
  let stopped: Promise<number> | undefined;
  return {
    port,
    log: () => log,
    stop: () => {
      controller.abort();
      return (stopped ??= done);
    },
  };
}
