/**
 * The proxy's parsers against whatever a stranger sends: 10,000+ random, truncated, mutated
 * and oversized SOCKS5, SOCKS4/4a and HTTP proxy requests against a running `sockcat proxy`.
 * Every one must be answered or closed (none left hanging), the process must not crash nor
 * print a stack trace, its memory must stay bounded, and a normal client must still be served
 * afterwards.
 *
 * The proxy runs with --only-mapped and one mapped name (an echo server on loopback), so no
 * fuzz case can reach DNS or any address off this machine.
 */
import { describe, it, expect } from 'vitest';
import net from 'node:net';
import fs from 'node:fs';
import { cliStartedPerTest } from '../helpers/cli';
import { tcpServer } from '../helpers/net';
import { readBytes, socks5Connect } from '../helpers/socks';

const start = cliStartedPerTest();

/** Deterministic pseudo-random numbers (mulberry32), so a failure can be replayed. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
  const pick = <T,>(xs: readonly T[]): T => xs[int(xs.length)];
  return { next, int, bytes, pick };
}

type Rng = ReturnType<typeof prng>;
const port2 = (p: number) => Buffer.from([p >> 8, p & 0xff]);
const domain = (name: Buffer) => Buffer.concat([Buffer.from([3, name.length]), name]);

/** One fuzz case: the bytes, and whether the client half-closes after sending them. */
interface Case {
  kind: string;
  bytes: Buffer;
  /** Send FIN after the bytes (otherwise the proxy must close by itself, at its handshake timeout). */
  fin: boolean;
  /** What the proxy must answer with, when the case is one of the named malformed requests. */
  expectPrefix?: Buffer;
}

function makeCase(r: Rng, mappedPort: number, i: number): Case {
  const valid5 = () =>
    Buffer.concat([Buffer.from([5, 1, 0]), Buffer.from([5, 1, 0]), r.pick([Buffer.from([1, 127, 0, 0, 1]), domain(Buffer.from('echo.test')), Buffer.concat([Buffer.from([4]), Buffer.alloc(15), Buffer.from([1])])]), port2(mappedPort)]);
  const valid4 = () => (r.next() < 0.5 ? Buffer.concat([Buffer.from([4, 1]), port2(mappedPort), Buffer.from([0, 0, 0, 1]), Buffer.from('u\0echo.test\0')]) : Buffer.concat([Buffer.from([4, 1]), port2(mappedPort), Buffer.from([127, 0, 0, 1, 0])]));
  const validHttp = () => Buffer.from(r.pick([`CONNECT echo.test:${mappedPort} HTTP/1.1\r\nHost: x\r\n\r\n`, `GET http://echo.test:${mappedPort}/ HTTP/1.1\r\nHost: echo.test\r\n\r\n`]));
  const fin = r.next() < 0.99;
  // The named malformed requests of the issue, each a few times.
  switch (i % 50) {
    case 0:
      return { kind: 'socks5 domain of length 0', bytes: Buffer.concat([Buffer.from([5, 1, 0, 5, 1, 0, 3, 0]), port2(80)]), fin: true, expectPrefix: Buffer.from([5, 0, 5, 4]) };
    case 1:
      return { kind: 'socks5 domain of length 255', bytes: Buffer.concat([Buffer.from([5, 1, 0, 5, 1, 0]), domain(Buffer.alloc(255, 'a')), port2(80)]), fin: true, expectPrefix: Buffer.from([5, 0, 5, 4]) };
    case 2:
      return { kind: 'socks5 bad version in the request', bytes: Buffer.from([5, 1, 0, 4, 1, 0, 1, 127, 0, 0, 1, 0, 80]), fin: true, expectPrefix: Buffer.from([5, 0, 5, 1]) };
    case 3:
      return { kind: 'socks5 unknown command', bytes: Buffer.from([5, 1, 0, 5, 0x7f, 0, 1, 127, 0, 0, 1, 0, 80]), fin: true, expectPrefix: Buffer.from([5, 0, 5, 7]) };
    case 4:
      return { kind: 'socks5 unknown address type', bytes: Buffer.from([5, 1, 0, 5, 1, 0, 0x2a, 1, 2, 3, 4]), fin: true, expectPrefix: Buffer.from([5, 0, 5, 8]) };
    case 5:
      return { kind: 'http CONNECT with no port', bytes: Buffer.from('CONNECT echo.test HTTP/1.1\r\n\r\n'), fin: true, expectPrefix: Buffer.from('HTTP/1.1 400') };
    case 6:
      if (i % 500 === 6) return { kind: 'http header block of 1 MiB', bytes: Buffer.concat([Buffer.from('GET http://echo.test/ HTTP/1.1\r\n'), Buffer.alloc(1 << 20, 'X-Fill: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n')]), fin: true, expectPrefix: Buffer.from('HTTP/1.1 431') };
      break;
    case 7:
      if (i % 500 === 7) return { kind: 'socks5 greeting then 1 MiB of garbage', bytes: Buffer.concat([Buffer.from([5, 1, 0]), r.bytes(1 << 20)]), fin: true };
      break;
    case 8:
      return { kind: 'socks4 user id without its NUL', bytes: Buffer.concat([Buffer.from([4, 1, 0, 80, 127, 0, 0, 1]), Buffer.alloc(300, 'u')]), fin: true, expectPrefix: Buffer.from([0, 0x5b]) };
    case 9:
      return { kind: 'socks5 bad login version', bytes: Buffer.from([5, 1, 2, 9, 9, 9]), fin: true };
  }
  const base = r.pick([valid5, valid4, validHttp])();
  switch (r.int(5)) {
    case 0:
      return { kind: 'random bytes', bytes: r.bytes(r.int(600)), fin };
    case 1:
      return { kind: 'truncated', bytes: base.subarray(0, r.int(base.length)), fin };
    case 2: {
      const b = Buffer.from(base);
      for (let k = 0, n = 1 + r.int(4); k < n; k++) b[r.int(b.length)] = r.int(256);
      return { kind: 'mutated', bytes: b, fin };
    }
    case 3:
      return { kind: 'valid then garbage', bytes: Buffer.concat([base, r.bytes(r.int(3000))]), fin };
    default:
      return { kind: 'first byte then random', bytes: Buffer.concat([Buffer.from([r.pick([4, 5, 0x43, 0x47, 0x50])]), r.bytes(r.int(300))]), fin };
  }
}

/** Replies that open a tunnel: after one, a client that has not sent FIN keeps a live connection. */
const SUCCESS = [Buffer.from([5, 0, 5, 0]), Buffer.from([0, 0x5a]), Buffer.from('HTTP/1.1 200')];

/**
 * Sends one case; resolves with what came back once the proxy closed, or once it opened a tunnel
 * for a client that keeps its side open; 'hang' when neither happened in time.
 */
function runCase(port: number, c: Case, timeoutMs: number): Promise<{ data: Buffer; hang: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => done(true), timeoutMs);
    const done = (hang: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve({ data: Buffer.concat(chunks), hang });
    };
    s.on('data', (d: Buffer) => {
      // Keep only the start: a tunnel to the echo server may send the garbage back.
      if (size < 64) chunks.push(d);
      size += d.length;
      const got = Buffer.concat(chunks);
      if (!c.fin && SUCCESS.some((p) => got.length >= p.length && got.subarray(0, p.length).equals(p))) done(false);
    });
    s.on('error', () => done(false));
    s.on('end', () => done(false));
    s.on('connect', () => {
      if (c.fin) s.end(c.bytes);
      else s.write(c.bytes);
    });
  });
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

describe('proxy parser fuzz', () => {
  it('survives 10,000 random, truncated, mutated and oversized requests; memory bounded; a normal client served after', async () => {
    const echo = await tcpServer((s) => {
      s.on('error', () => {});
      s.pipe(s);
    });
    const proxy = start(['proxy', '127.0.0.1:0', '-v', '--only-mapped', '--map', `echo.test=127.0.0.1:${echo.port}`, '--handshake-timeout', '1', '--close-wait', '0.2']);
    const port = await proxy.listeningPort();
    const pid = proxy.child.pid!;
    const r = prng(0x50c5);
    const total = 10_000;
    const concurrency = 48;
    let next = 0;
    const hangs: string[] = [];
    const wrong: string[] = [];
    let baseline = 0;
    let peak = 0;
    const worker = async () => {
      while (next < total) {
        const i = next++;
        const c = makeCase(r, echo.port, i);
        const { data, hang } = await runCase(port, c, c.fin ? 5000 : 3000);
        if (hang) hangs.push(`${i} ${c.kind} ${c.fin ? '' : '(no FIN) '}${c.bytes.subarray(0, 40).toString('hex')}`);
        if (c.expectPrefix && !data.subarray(0, c.expectPrefix.length).equals(c.expectPrefix)) wrong.push(`${i} ${c.kind}: got ${data.subarray(0, 12).toString('hex')}`);
        if (i === 500) baseline = rssKiB(pid);
        if (i % 500 === 0) peak = Math.max(peak, rssKiB(pid));
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    peak = Math.max(peak, rssKiB(pid));

    expect(hangs).toEqual([]);
    expect(wrong).toEqual([]);
    expect(proxy.child.exitCode).toBeNull();
    // Bounded: no per-request growth that survives the request (10,000 leaked sockets or
    // buffers would show as far more than this).
    expect(peak - baseline).toBeLessThan(80 * 1024);
    expect(proxy.stderr()).not.toMatch(/\n\s+at |TypeError|RangeError|Uncaught/);

    // A normal client is still served.
    const { socket, code } = await socks5Connect(port, 'echo.test', 7);
    expect(code).toBe(0);
    socket.write('still here');
    expect((await readBytes(socket, 10)).toString()).toBe('still here');
    socket.destroy();
    await echo.close();
  }, 120_000);
});
