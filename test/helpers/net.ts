/** Small real-socket helpers for tests: servers on port 0, clients that collect everything. */
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';

export { randomBytes };

export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A TCP server on 127.0.0.1 (or `host`) port 0 with allowHalfOpen; resolves once bound. */
export async function tcpServer(onSocket: (s: net.Socket) => void, host = '127.0.0.1'): Promise<{ server: net.Server; port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    // A server stopped at the end of a test resets what it abandons (by design): that reset must
    // not surface as an uncaught error in the test process. Tests that care listen for it themselves.
    s.on('error', () => {});
    onSocket(s);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    server,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

/** Connects with allowHalfOpen; resolves once connected. */
export function connect(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host, allowHalfOpen: true }, () => {
      s.off('error', reject);
      // As above: a reset from a server the test stops is not an uncaught error.
      s.on('error', () => {});
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** Collects everything a socket sends until its EOF (or close). */
export function readAll(s: net.Socket, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => reject(new Error(`readAll timed out after ${timeoutMs} ms with ${Buffer.concat(chunks).length} bytes`)), timeoutMs);
    s.on('data', (c: Buffer) => chunks.push(c));
    const done = () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    };
    s.once('end', done);
    s.once('close', done);
  });
}

/** Connects, sends `payload`, half-closes, and returns everything received until EOF. */
export async function exchange(port: number, payload: string | Buffer, host = '127.0.0.1'): Promise<Buffer> {
  const s = await connect(port, host);
  const reply = readAll(s);
  s.end(payload);
  const out = await reply;
  s.destroy();
  return out;
}

/** Resolves once `cond()` is true, checking every 20 ms; rejects after timeoutMs. */
export async function waitFor(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Connects to `port` and says how the connection ended first: an error code (ECONNRESET for a
 * reset) or 'eof'. Listens from the start, since a reset can come before Node reports the connect.
 */
export function connectionOutcome(port: number, host = '127.0.0.1'): Promise<string | undefined> {
  const c = net.connect({ port, host });
  return new Promise<string | undefined>((resolve) => {
    c.once('error', (e: NodeJS.ErrnoException) => resolve(e.code));
    c.once('end', () => resolve('eof'));
  }).finally(() => c.destroy());
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * How the peer closed `s`: 'reset' or 'eof'. Node (libuv) reports a reset that arrives after
 * data it already read as a plain EOF, so on 'end' a zero-length write probes the socket: the
 * kernel answers ECONNRESET for a reset connection and accepts it for a FIN'd one. `s` must
 * have been opened with allowHalfOpen (connect() above does).
 */
export function closedHow(s: net.Socket, timeoutMs = 10_000): Promise<{ how: 'reset' | 'eof'; code?: string }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`closedHow timed out after ${timeoutMs} ms`)), timeoutMs);
    const done = (r: { how: 'reset' | 'eof'; code?: string }) => {
      clearTimeout(timer);
      resolve(r);
    };
    const isReset = (e: NodeJS.ErrnoException) => e.code === 'ECONNRESET' || e.code === 'EPIPE';
    s.on('error', (e: NodeJS.ErrnoException) => (isReset(e) ? done({ how: 'reset', code: e.code }) : reject(e)));
    s.once('end', () => {
      if (s.writableEnded || s.destroyed) return done({ how: 'eof' });
      s.write(Buffer.alloc(0), (err) => {
        if (err && isReset(err as NodeJS.ErrnoException)) done({ how: 'reset', code: (err as NodeJS.ErrnoException).code });
        else done({ how: 'eof' });
      });
    });
    s.resume();
  });
}
