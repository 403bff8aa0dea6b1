import { describe, it, expect, afterEach } from 'vitest';
import net from 'node:net';
import { ProxyAcceptor, readProxyHeader } from '../src/accept-proxy';
import { encodeProxyV1, encodeProxyV2, PROXY_V2_SIGNATURE } from '../src/proxy-protocol';
import { socketPeer } from '../src/endpoints/tcp';
import type { Connection } from '../src/endpoints/types';
import { UsageError } from '../src/errors';
import { tcpServer, connect, readAll, randomBytes, sha256 } from './helpers/net';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

/** A server on port 0 that hands each accepted socket, as a Connection, to the test. */
async function acceptOne(): Promise<{ port: number; next: () => Promise<Connection> }> {
  const waiting: Array<(c: Connection) => void> = [];
  const queued: Connection[] = [];
  const srv = await tcpServer((s) => {
    const conn = { stream: s, remote: socketPeer(s, 'remote'), local: socketPeer(s, 'local') };
    const w = waiting.shift();
    if (w) w(conn);
    else queued.push(conn);
  });
  closers.push(srv.close);
  return { port: srv.port, next: () => (queued.length ? Promise.resolve(queued.shift()!) : new Promise((r) => waiting.push(r))) };
}

const client = { address: '203.0.113.5', port: 44321 };
const front = { address: '198.51.100.1', port: 443 };

describe('ProxyAcceptor', () => {
  it('refuses to start without a trusted proxy, and names --trusted-proxy for a bad range', () => {
    expect(() => new ProxyAcceptor({ trusted: [] })).toThrow(UsageError);
    expect(() => new ProxyAcceptor({ trusted: ['10.0.0.0/33'] })).toThrow(/--trusted-proxy: '10\.0\.0\.0\/33'/);
  });

  it.each([
    ['v1', encodeProxyV1],
    ['v2', encodeProxyV2],
  ])('replaces the client address with the %s header\'s, and the bytes after the header reach the mode intact', async (_v, encode) => {
    const srv = await acceptOne();
    const acceptor = new ProxyAcceptor({ trusted: ['127.0.0.0/8'] });
    const s = await connect(srv.port);
    const payload = randomBytes(256 << 10);
    // Header and first client bytes in one write, as HAProxy sends them.
    s.end(Buffer.concat([encode(client, front), payload]));
    const r = await acceptor.run(await srv.next());
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.conn.remote).toEqual({ ...client, label: '203.0.113.5:44321' });
    expect(r.conn.local).toEqual({ ...front, label: '198.51.100.1:443' });
    const got = await readAll(r.conn.stream as net.Socket);
    expect(sha256(got)).toBe(sha256(payload));
  });

  it('reads a header that arrives one byte at a time', async () => {
    const srv = await acceptOne();
    const acceptor = new ProxyAcceptor({ trusted: ['127.0.0.1'] });
    const s = await connect(srv.port);
    s.setNoDelay(true);
    const pending = srv.next().then((c) => acceptor.run(c));
    const bytes = Buffer.concat([encodeProxyV2({ address: '2001:db8::9', port: 7 }, { address: '2001:db8::1', port: 80 }), Buffer.from('hi')]);
    for (const b of bytes) {
      s.write(Buffer.from([b]));
      await new Promise((r) => setTimeout(r, 1));
    }
    s.end();
    const r = await pending;
    expect(r.ok && r.conn.remote.label).toBe('[2001:db8::9]:7');
    if (r.ok) expect((await readAll(r.conn.stream as net.Socket)).toString()).toBe('hi');
  });

  it('keeps the connection\'s own addresses for a v2 LOCAL health check and v1 UNKNOWN', async () => {
    const srv = await acceptOne();
    const acceptor = new ProxyAcceptor({ trusted: ['127.0.0.1'] });
    for (const header of [Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x20, 0, 0, 0])]), Buffer.from('PROXY UNKNOWN\r\n')]) {
      const s = await connect(srv.port);
      s.end(header);
      const conn = await srv.next();
      const r = await acceptor.run(conn);
      expect(r).toMatchObject({ ok: true, conn: { remote: { address: '127.0.0.1', port: s.localPort } } });
    }
  });

  it('closes (reports) an untrusted source without reading it, a malformed header, an early end and a silent proxy', async () => {
    const srv = await acceptOne();
    const strict = new ProxyAcceptor({ trusted: ['10.9.9.9'] });
    const acceptor = new ProxyAcceptor({ trusted: ['127.0.0.1'], timeoutMs: 300 });

    const a = await connect(srv.port);
    a.write(encodeProxyV1(client, front));
    expect(await strict.run(await srv.next())).toMatchObject({ ok: false, reason: 'untrusted-proxy', text: expect.stringContaining('not a --trusted-proxy') });

    // A client reset before it was looked at (HAProxy's TCP check): gone, not an untrusted proxy.
    const g = await connect(srv.port);
    const accepted = await srv.next();
    const gone = { ...accepted, remote: { address: '?', port: undefined, label: 'a client already gone (reset at once)' } };
    expect(await acceptor.run(gone)).toMatchObject({ ok: false, reason: 'gone' });
    g.destroy();

    const b = await connect(srv.port);
    b.write('GET / HTTP/1.1\r\n\r\n');
    expect(await acceptor.run(await srv.next())).toMatchObject({ ok: false, reason: 'proxy-header', text: expect.stringContaining('did not start with one') });

    const c = await connect(srv.port);
    c.end('PROXY TCP4 1.2.3.4');
    expect(await acceptor.run(await srv.next())).toMatchObject({ ok: false, reason: 'proxy-header', text: expect.stringContaining('ended in the middle') });

    const d = await connect(srv.port);
    d.write('PROXY TCP4 ');
    const started = Date.now();
    expect(await acceptor.run(await srv.next())).toMatchObject({ ok: false, reason: 'proxy-header', text: expect.stringContaining('within 0.3 s') });
    expect(Date.now() - started).toBeLessThan(3000);
    for (const s of [a, b, c, d]) s.destroy();
  });

  it('fuzz over real sockets: 300 connections of random, mutated or truncated headers each end in a verdict, none crashes', async () => {
    const srv = await acceptOne();
    const acceptor = new ProxyAcceptor({ trusted: ['127.0.0.1'], timeoutMs: 200 });
    const valid = [encodeProxyV1(client, front), encodeProxyV2(client, front)];
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
    const verdicts: string[] = [];
    for (let round = 0; round < 6; round++) {
      const batch = Array.from({ length: 50 }, async () => {
        const s = await connect(srv.port);
        s.on('error', () => {});
        let bytes: Buffer;
        const kind = Math.floor(rand() * 3);
        if (kind === 0) bytes = randomBytes(Math.floor(rand() * 4000));
        else {
          bytes = Buffer.from(valid[Math.floor(rand() * 2)]);
          if (kind === 1) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
          else bytes = bytes.subarray(0, Math.floor(rand() * bytes.length));
        }
        if (rand() < 0.5) s.end(bytes);
        else s.write(bytes);
        const r = await acceptor.run(await srv.next());
        verdicts.push(r.ok ? 'ok' : r.reason);
        s.destroy();
      });
      await Promise.all(batch);
    }
    expect(verdicts).toHaveLength(300);
    expect(new Set(verdicts).size).toBeGreaterThan(1);
  });
});

describe('readProxyHeader', () => {
  it('gives a stream that a later pipe() reads from the first byte after the header', async () => {
    const srv = await acceptOne();
    const s = await connect(srv.port);
    s.end(Buffer.concat([encodeProxyV1(client, front), Buffer.from('after')]));
    const conn = await srv.next();
    await readProxyHeader(conn.stream, 1000);
    const echo = await tcpServer((x) => x.pipe(x));
    closers.push(echo.close);
    const up = await connect(echo.port);
    const got = readAll(up);
    conn.stream.pipe(up);
    expect((await got).toString()).toBe('after');
  });
});
