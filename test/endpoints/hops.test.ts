/**
 * Proxy hops as overlays (address.via): through microsocks (SOCKS5) and ncat's HTTP proxy
 * (CONNECT), one hop and two, to a local echo server; a refusing hop is named in the error;
 * the connect timeout bounds the whole chain, not each hop.
 */
import { describe, it, expect, afterEach } from 'vitest';
import net from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import { connectAddress, parseAddress, parseHop } from '../../src/endpoints/index';
import { tcpServer, waitFor } from '../helpers/net';

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

/** Starts `cmd` (a proxy listening on `port`) and waits until it accepts connections. */
async function proxy(cmd: string, args: string[], port: number): Promise<void> {
  const child = spawn(cmd, args, { stdio: 'ignore' });
  children.push(child);
  let up = false;
  await waitFor(() => {
    const probe = net.connect({ port, host: '127.0.0.1' }, () => ((up = true), probe.destroy()));
    probe.on('error', () => {});
    return up;
  }, 5000, `${cmd} listening`);
}

const microsocks = async (extra: string[] = []) => {
  const port = await freePort();
  await proxy('microsocks', ['-i', '127.0.0.1', '-p', String(port), ...extra], port);
  return port;
};

async function echoThrough(via: string[], target: number): Promise<string> {
  const addr = { ...parseAddress(`127.0.0.1:${target}`, 'connect'), via: via.map(parseHop) };
  const conn = await connectAddress(addr, { timeoutMs: 5000 });
  let got = '';
  conn.stream.on('data', (c: Buffer) => (got += c));
  // A hop leaves the stream paused after reading its reply (nothing lost before a reader is there).
  conn.stream.resume();
  // Not end(): these proxies close both ways at the first EOF (no half-close through them).
  conn.stream.write('through the hops\n');
  await waitFor(() => got.length >= 17, 5000, 'the echo through the hops');
  conn.stream.destroy();
  return got;
}

describe('proxy hops (--via)', () => {
  it('socks5: one hop, then two chained, reach the target; bytes after the handshake are untouched', async () => {
    const echo = await tcpServer((s) => s.pipe(s));
    const a = await microsocks();
    const b = await microsocks();
    expect(await echoThrough([`socks5:127.0.0.1:${a}`], echo.port)).toBe('through the hops\n');
    expect(await echoThrough([`socks5:127.0.0.1:${a}`, `socks5:127.0.0.1:${b}`], echo.port)).toBe('through the hops\n');
    await echo.close();
  });

  it('socks5 with a login; a wrong password names the hop', async () => {
    const echo = await tcpServer((s) => s.pipe(s));
    const a = await microsocks(['-u', 'alice', '-P', 'secret']);
    expect(await echoThrough([`socks5:alice:secret@127.0.0.1:${a}`], echo.port)).toBe('through the hops\n');
    await expect(echoThrough([`socks5:alice:wrong@127.0.0.1:${a}`], echo.port)).rejects.toThrow(`hop 1 (127.0.0.1:${a}): login refused for user 'alice'`);
    await echo.close();
  });

  it('http-connect through ncat --proxy-type http, and a refused destination names the hop', async () => {
    const echo = await tcpServer((s) => s.pipe(s));
    const port = await freePort();
    await proxy('ncat', ['-l', '-k', '--proxy-type', 'http', '127.0.0.1', String(port)], port);
    expect(await echoThrough([`http-connect:127.0.0.1:${port}`], echo.port)).toBe('through the hops\n');
    const closed = await freePort();
    await expect(echoThrough([`http-connect:127.0.0.1:${port}`], closed)).rejects.toThrow(new RegExp(`hop 1 \\(127\\.0\\.0\\.1:${port}\\): connection to 127\\.0\\.0\\.1:${closed} (refused|failed|timed out) \\(5\\d\\d`));
    await echo.close();
  });

  it('the connect timeout bounds the whole chain: a slow first hop leaves less time for a silent second one', async () => {
    // Hop 1 answers its greeting only after 800 ms, then connects on at once; hop 2 accepts and
    // never answers. With a 1.2 s budget the chain must fail at ~1.2 s naming hop 2; with the
    // timeout per hop it took 0.8 + 1.2 = 2 s.
    const silent = await tcpServer(() => {});
    const slow = await tcpServer((s) => {
      let buf = Buffer.alloc(0);
      let state: 'greeting' | 'waiting' | 'request' | 'done' = 'greeting';
      s.on('error', () => {});
      s.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        if (state === 'greeting' && buf.length >= 3) {
          buf = buf.subarray(2 + buf[1]);
          state = 'waiting';
          setTimeout(() => {
            state = 'request';
            s.write(Buffer.from([5, 0]));
            s.emit('data', Buffer.alloc(0));
          }, 800);
        } else if (state === 'request' && buf.length >= 10 && buf[3] === 1) {
          state = 'done';
          const up = net.connect({ host: [...buf.subarray(4, 8)].join('.'), port: buf.readUInt16BE(8) }, () => {
            s.write(Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
            s.pipe(up).pipe(s);
          });
          up.on('error', () => s.destroy());
          s.on('close', () => up.destroy());
        }
      });
    });
    const addr = { ...parseAddress(`127.0.0.1:9`, 'connect'), via: [`socks5:127.0.0.1:${slow.port}`, `socks5:127.0.0.1:${silent.port}`].map(parseHop) };
    const started = Date.now();
    const err = await connectAddress(addr, { timeoutMs: 1200 }).then(
      () => undefined,
      (e: Error & { code?: string }) => e,
    );
    const took = Date.now() - started;
    expect(err?.message).toBe(`hop 2 (127.0.0.1:${silent.port}): no answer within 1.2 s (the connect timeout covers the whole chain)`);
    expect(err?.code).toBe('ETIMEDOUT');
    expect(took).toBeGreaterThanOrEqual(1150);
    // Well under the 2 s the per-hop timeout took (the margin is for a loaded machine).
    expect(took).toBeLessThan(1850);
    await silent.close();
    await slow.close();
  });

  it('a single hop that accepts and never answers is named, with the same wording', async () => {
    const silent = await tcpServer(() => {});
    const addr = { ...parseAddress(`127.0.0.1:9`, 'connect'), via: [parseHop(`socks5:127.0.0.1:${silent.port}`)] };
    await expect(connectAddress(addr, { timeoutMs: 300 })).rejects.toThrow(`hop 1 (127.0.0.1:${silent.port}): no answer within 0.3 s (the connect timeout covers the whole chain)`);
    await silent.close();
  });

  it('a hop is not an address of its own', () => {
    expect(() => parseAddress('socks5:127.0.0.1:1080', 'connect')).toThrow(/is a proxy hop, not an address: give it with --via/);
  });
});
