import { describe, it, expect, afterEach } from 'vitest';
import net from 'node:net';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect, readAll, tcpServer, randomBytes, sha256, sleep, waitFor } from '../helpers/net';
import { parseViaUrl } from '../../src/commands/via';
import { readBytes, socks5Connect, socksAddress, startProxy, untilClosed, type RunningProxy } from '../helpers/socks';

const proxies: RunningProxy[] = [];
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const p of proxies.splice(0)) await p.stop();
  for (const c of closers.splice(0)) await c();
});

async function proxy(extra: Parameters<typeof startProxy>[0] = {}, listen?: string) {
  const p = await startProxy(extra, listen);
  proxies.push(p);
  return p;
}

/** An echo server that also says which port the client came to. */
async function echoServer(host = '127.0.0.1') {
  const srv = await tcpServer((s) => s.pipe(s), host);
  closers.push(srv.close);
  return srv;
}

async function closedPort(): Promise<number> {
  const srv = await tcpServer(() => {});
  await srv.close();
  return srv.port;
}

/** A tiny HTTP server answering "hello from PATH". */
async function httpServer() {
  const srv = await tcpServer((s) => {
    let got = '';
    s.on('data', (c) => {
      got += c;
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) return;
      const [line] = got.split('\r\n');
      const body = `hello from ${line.split(' ')[1]}\n${got.slice(0, end)}`;
      s.end(`HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    });
  });
  closers.push(srv.close);
  return srv;
}

describe('SOCKS5 CONNECT', () => {
  it('reaches an IPv4 destination, relays both ways, and passes half-close on', async () => {
    const echo = await echoServer();
    const p = await proxy();
    const { socket, code, bound } = await socks5Connect(p.port, '127.0.0.1', echo.port);
    expect(code).toBe(0);
    // BND.PORT is the proxy's own end of the upstream connection.
    expect(bound.readUInt16BE(4)).toBeGreaterThan(0);
    const payload = randomBytes(300_000);
    const back = readAll(socket);
    socket.resume();
    socket.end(payload);
    expect(sha256(await back)).toBe(sha256(payload));
    await waitFor(() => /closed 127\.0\.0\.1:\d+ \(socks5\) → 127\.0\.0\.1:\d+: 300000 bytes in, 300000 bytes out/.test(p.log()), 5000, 'the tunnel log line');
  });

  it('reaches an IPv6 destination', async () => {
    const echo = await echoServer('::1');
    const p = await proxy();
    const { socket, code } = await socks5Connect(p.port, '::1', echo.port);
    expect(code).toBe(0);
    const back = readAll(socket);
    socket.resume();
    socket.end('six');
    expect((await back).toString()).toBe('six');
  });

  it('resolves a domain name itself (what curl --socks5-hostname sends)', async () => {
    const echo = await echoServer();
    const p = await proxy();
    const { socket, code } = await socks5Connect(p.port, 'localhost', echo.port);
    expect(code).toBe(0);
    const back = readAll(socket);
    socket.resume();
    socket.end('name');
    expect((await back).toString()).toBe('name');
  });

  it('keeps bytes a client sends right after its request (before the reply)', async () => {
    const echo = await echoServer();
    const p = await proxy();
    const s = await connect(p.port);
    s.pause();
    // Greeting, request and payload in one write: nothing may be lost between handshake and relay.
    s.write(Buffer.concat([Buffer.from([5, 1, 0]), Buffer.from([5, 1, 0]), socksAddress('127.0.0.1', echo.port), Buffer.from('early bytes')]));
    const head = await readBytes(s, 2 + 10);
    expect(head[1]).toBe(0);
    expect(head[3]).toBe(0);
    expect((await readBytes(s, 11)).toString()).toBe('early bytes');
    s.destroy();
  });

  it.each([
    ['connection refused (5)', async () => ({ host: '127.0.0.1', port: await closedPort() }), {}, 5, 'refused upstream'],
    ['not allowed by ruleset (2) for --deny-dest', async () => ({ host: '127.0.0.1', port: 9 }), { denyDest: ['127.0.0.0/8'] }, 2, 'denied by rule'],
    ['host unreachable (4) for a name that does not resolve', async () => ({ host: 'no-such-host.invalid', port: 80 }), {}, 4, 'unreachable'],
    ['not allowed (2) for an unmapped name with --only-mapped', async () => ({ host: 'example.org', port: 80 }), { onlyMapped: true, map: { entries: ['app.test=127.0.0.1:1'] } }, 2, 'not mapped'],
  ])('answers %s', async (_name, dest, extra, expected, reason) => {
    const p = await proxy(extra as object);
    const { host, port } = await dest();
    const { socket, code } = await socks5Connect(p.port, host, port);
    expect(code).toBe(expected);
    // After a failure reply the proxy closes (RFC 1928: "MUST close … shortly after").
    expect((await untilClosed(socket)).data.length).toBe(0);
    await waitFor(() => p.log().includes(`(${reason})`), 3000, `log reason ${reason}`);
  });

  it('answers TTL expired (6) when the way to the destination does not answer in time', async () => {
    // A --via hop that accepts and then says nothing: the connect deadline passes.
    const silent = await tcpServer(() => {});
    closers.push(silent.close);
    const p = await proxy({ connectTimeoutMs: 300, via: [parseViaUrl(`socks5://127.0.0.1:${silent.port}`)] });
    const { socket, code } = await socks5Connect(p.port, '127.0.0.1', 9);
    expect(code).toBe(6);
    socket.destroy();
    await waitFor(() => p.log().includes('(upstream timeout)'), 3000, 'log');
  });

  it('answers "command not supported" (7) to BIND and unknown commands', async () => {
    const p = await proxy();
    for (const cmd of [2, 9]) {
      const s = await connect(p.port);
      s.write(Buffer.concat([Buffer.from([5, 1, 0, 5, cmd, 0]), socksAddress('127.0.0.1', 80)]));
      const { data } = await untilClosed(s);
      expect([...data.subarray(0, 4)]).toEqual([5, 0, 5, 7]);
    }
  });

  it('answers "address type not supported" (8) to an unknown ATYP', async () => {
    const p = await proxy();
    const s = await connect(p.port);
    s.write(Buffer.from([5, 1, 0, 5, 1, 0, 9, 1, 2, 3, 4, 0, 80]));
    const { data } = await untilClosed(s);
    expect([...data.subarray(0, 4)]).toEqual([5, 0, 5, 8]);
  });

  it('refuses a greeting without an acceptable method (0xFF) and closes', async () => {
    const p = await proxy();
    const s = await connect(p.port);
    s.write(Buffer.from([5, 1, 0x80]));
    const { data } = await untilClosed(s);
    expect([...data]).toEqual([5, 0xff]);
  });

  it('resets a client that speaks neither SOCKS nor HTTP', async () => {
    const p = await proxy();
    const s = await connect(p.port);
    s.write('\x16\x03\x01garbage');
    expect((await untilClosed(s)).data.length).toBe(0);
    await waitFor(() => p.log().includes('(not a proxy request)'), 3000, 'log');
  });
});

describe('SOCKS4 and SOCKS4a', () => {
  it('connects with SOCKS4 (IPv4) and SOCKS4a (a name)', async () => {
    const echo = await echoServer();
    const p = await proxy();
    for (const fourA of [false, true]) {
      const s = await connect(p.port);
      s.pause();
      const port = Buffer.from([echo.port >> 8, echo.port & 0xff]);
      const req = fourA
        ? Buffer.concat([Buffer.from([4, 1]), port, Buffer.from([0, 0, 0, 1]), Buffer.from('bob\0localhost\0')])
        : Buffer.concat([Buffer.from([4, 1]), port, Buffer.from([127, 0, 0, 1]), Buffer.from('bob\0')]);
      s.write(req);
      const reply = await readBytes(s, 8);
      expect(reply[1]).toBe(0x5a);
      s.write('four');
      expect((await readBytes(s, 4)).toString()).toBe('four');
      s.destroy();
    }
  });

  it('rejects (0x5B) SOCKS4 when a login is required, and a refused destination', async () => {
    const p = await proxy({ auth: { users: ['alice:pw'] } });
    const s = await connect(p.port);
    s.write(Buffer.from([4, 1, 0, 80, 127, 0, 0, 1, 0]));
    const { data } = await untilClosed(s);
    expect(data[1]).toBe(0x5b);
    const open = await proxy();
    const port = await closedPort();
    const s2 = await connect(open.port);
    s2.write(Buffer.from([4, 1, port >> 8, port & 0xff, 127, 0, 0, 1, 0]));
    expect((await untilClosed(s2)).data[1]).toBe(0x5b);
  });
});

describe('logins', () => {
  it('SOCKS5: lets the right login in, refuses a wrong one (status 1) and logs it without the password', async () => {
    const echo = await echoServer();
    const p = await proxy({ auth: { users: ['alice:s3cr:et'] } });
    const ok = await socks5Connect(p.port, '127.0.0.1', echo.port, ['alice', 's3cr:et']);
    expect(ok.code).toBe(0);
    ok.socket.destroy();
    const bad = await socks5Connect(p.port, '127.0.0.1', echo.port, ['alice', 'wrong-password']);
    expect(bad.code).toBe(0x101);
    bad.socket.destroy();
    // A client offering no login method is refused with 0xFF.
    const none = await socks5Connect(p.port, '127.0.0.1', echo.port);
    expect(none.code).toBe(0xff);
    await waitFor(() => /failed login from 127\.0\.0\.1:\d+ as user 'alice'/.test(p.log()), 3000, 'failed login line');
    expect(p.log()).not.toContain('wrong-password');
    expect(p.log()).toMatch(/\(socks5, user alice\) → 127\.0\.0\.1/);
  });

  it('--auth-file is re-read when it changes', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockcat-auth-'));
    const file = path.join(dir, 'users');
    fs.writeFileSync(file, '# users\nalice:one\n');
    const echo = await echoServer();
    const p = await proxy({ auth: { file } });
    expect((await socks5Connect(p.port, '127.0.0.1', echo.port, ['bob', 'two'])).code).toBe(0x101);
    fs.writeFileSync(file, 'alice:one\nbob:two\n');
    await waitFor(() => p.log().includes('auth-file reloaded: 2 entries'), 3000, 'reload');
    const r = await socks5Connect(p.port, '127.0.0.1', echo.port, ['bob', 'two']);
    expect(r.code).toBe(0);
    r.socket.destroy();
    fs.rmSync(dir, { recursive: true });
  });

  it('HTTP: 407 with Proxy-Authenticate without a login, through with Proxy-Authorization', async () => {
    const web = await httpServer();
    const p = await proxy({ auth: { users: ['alice:pw'] } });
    const ask = async (headers: string) => {
      const s = await connect(p.port);
      const reply = readAll(s);
      s.write(`GET http://127.0.0.1:${web.port}/x HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}Connection: close\r\n\r\n`);
      return (await reply).toString();
    };
    const denied = await ask('');
    expect(denied).toMatch(/^HTTP\/1\.1 407 /);
    expect(denied).toMatch(/Proxy-Authenticate: Basic realm="sockcat"/i);
    const ok = await ask(`Proxy-Authorization: Basic ${Buffer.from('alice:pw').toString('base64')}\r\n`);
    expect(ok).toMatch(/^HTTP\/1\.1 200 /);
    expect(ok).toContain('hello from /x');
    // The login is for the proxy only: it is not passed to the server.
    expect(ok).not.toMatch(/proxy-authorization/i);
  });
});

describe('HTTP proxy on the same port', () => {
  it('forwards absolute-URI requests with the request line rewritten, keep-alive included', async () => {
    const web = await httpServer();
    const p = await proxy();
    const s = await connect(p.port);
    let got = '';
    s.on('data', (c) => (got += c));
    s.write(`GET http://127.0.0.1:${web.port}/one?q=1 HTTP/1.1\r\nHost: 127.0.0.1:${web.port}\r\nProxy-Connection: keep-alive\r\n\r\n`);
    await waitFor(() => got.includes('hello from /one?q=1'), 3000, 'first response');
    s.write(`GET http://127.0.0.1:${web.port}/two HTTP/1.1\r\nHost: 127.0.0.1:${web.port}\r\n\r\n`);
    await waitFor(() => got.includes('hello from /two'), 3000, 'second response on the same connection');
    expect(got).not.toMatch(/proxy-connection/i);
    s.destroy();
    await waitFor(() => /\(http, 2 requests\)/.test(p.log()), 3000, 'connection log line');
  });

  it('CONNECT opens a tunnel; a CONNECT without a port is a 400', async () => {
    const echo = await echoServer();
    const p = await proxy();
    const s = await connect(p.port);
    s.pause();
    s.write(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: x\r\n\r\ntunnel-bytes`);
    const head = 'HTTP/1.1 200 Connection established\r\n\r\n';
    expect((await readBytes(s, head.length)).toString()).toBe(head);
    expect((await readBytes(s, 12)).toString()).toBe('tunnel-bytes');
    s.destroy();
    const s2 = await connect(p.port);
    const reply = readAll(s2);
    s2.write('CONNECT example.org HTTP/1.1\r\n\r\n');
    expect((await reply).toString()).toMatch(/^HTTP\/1\.1 400 /);
  });

  it('answers 502 for a refused destination, 403 for a denied one, 431 for a huge header', async () => {
    const p = await proxy({ denyDest: ['*.blocked.test', '10.0.0.0/8'] });
    const port = await closedPort();
    const ask = async (text: string) => {
      const s = await connect(p.port);
      const reply = readAll(s);
      s.write(text);
      return (await reply).toString();
    };
    expect(await ask(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\n\r\n`)).toMatch(/^HTTP\/1\.1 502 /);
    expect(await ask('CONNECT www.blocked.test:443 HTTP/1.1\r\n\r\n')).toMatch(/^HTTP\/1\.1 403 /);
    expect(await ask('GET http://10.1.2.3/ HTTP/1.1\r\nConnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 403 /);
    expect(await ask(`GET http://127.0.0.1:${port}/ HTTP/1.1\r\nX: ${'a'.repeat(20_000)}\r\n\r\n`)).toMatch(/^HTTP\/1\.1 431 /);
  });

  it('never lets a cut response look complete: the client connection is reset', async () => {
    // A server that promises 1000 bytes and sends 10.
    const srv = await tcpServer((s) => s.once('data', () => s.end('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789')));
    closers.push(srv.close);
    const p = await proxy();
    const s = await connect(p.port);
    const result = untilClosed(s);
    s.write(`GET http://127.0.0.1:${srv.port}/ HTTP/1.1\r\nHost: x\r\n\r\n`);
    const { data, how } = await result;
    expect(data.toString()).toMatch(/^HTTP\/1\.1 200/);
    expect(how).toBe('reset');
  });
});

describe('internal names and destination rules', () => {
  it('--map sends a name (any port or a fixed one, wildcards too) elsewhere without DNS', async () => {
    const echo = await echoServer();
    const p = await proxy({ map: { entries: [`app.test=127.0.0.1:${echo.port}`, '*.dev.test=127.0.0.1'] } });
    const a = await socks5Connect(p.port, 'app.test', 80);
    expect(a.code).toBe(0);
    a.socket.destroy();
    const b = await socks5Connect(p.port, 'api.dev.test', echo.port);
    expect(b.code).toBe(0);
    b.socket.destroy();
    await waitFor(() => p.log().includes(`→ app.test:80 (mapped to 127.0.0.1:${echo.port})`), 3000, 'mapped log');
  });

  it('--map-file is re-read live', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockcat-map-'));
    const file = path.join(dir, 'names');
    fs.writeFileSync(file, '# names\n');
    const echo = await echoServer();
    const p = await proxy({ map: { file }, onlyMapped: true });
    expect((await socks5Connect(p.port, 'kibana', 5601)).code).toBe(2);
    fs.writeFileSync(file, `kibana=127.0.0.1:${echo.port}  # the dashboard\n`);
    await waitFor(() => p.log().includes('map-file reloaded: 1 entry'), 3000, 'reload');
    const r = await socks5Connect(p.port, 'kibana', 5601);
    expect(r.code).toBe(0);
    r.socket.destroy();
    fs.rmSync(dir, { recursive: true });
  });

  it('checks rules after resolution: a name that resolves to a denied address is refused', async () => {
    const echo = await echoServer();
    const p = await proxy({ denyDest: ['127.0.0.0/8'] });
    expect((await socks5Connect(p.port, 'localhost', echo.port)).code).toBe(2);
    await waitFor(() => /→ localhost:\d+ \[(127\.0\.0\.1|::1) \(localhost\) denied by --deny-dest 127\.0\.0\.0\/8\]: 0 bytes in/.test(p.log()), 3000, 'reason');
    // Mapped targets are checked too.
    const q = await proxy({ denyDest: ['127.0.0.0/8'], map: { entries: [`app.test=127.0.0.1:${echo.port}`] } });
    expect((await socks5Connect(q.port, 'app.test', 80)).code).toBe(2);
  });

  it('--allow-dest lets only what it names through (by name or by address)', async () => {
    const echo = await echoServer();
    const p = await proxy({ allowDest: ['localhost'] });
    const ok = await socks5Connect(p.port, 'localhost', echo.port);
    expect(ok.code).toBe(0);
    ok.socket.destroy();
    expect((await socks5Connect(p.port, '127.0.0.1', echo.port)).code).toBe(2);
  });
});

describe('UDP ASSOCIATE', () => {
  it('relays datagrams with the RFC 1928 header both ways, and ends with the TCP connection', async () => {
    const echo = dgram.createSocket('udp4');
    echo.on('message', (m, r) => echo.send(Buffer.concat([Buffer.from('echo:'), m]), r.port, r.address));
    await new Promise<void>((r) => echo.bind(0, '127.0.0.1', () => r()));
    closers.push(() => new Promise<void>((r) => echo.close(() => r())));
    const echoPort = echo.address().port;
    const p = await proxy({ map: { entries: [`udp.test=127.0.0.1:${echoPort}`] } });
    const control = await connect(p.port);
    control.pause();
    control.write(Buffer.concat([Buffer.from([5, 1, 0, 5, 3, 0]), socksAddress('0.0.0.0', 0)]));
    const reply = await readBytes(control, 2 + 10);
    expect(reply[3]).toBe(0);
    const relayPort = reply.readUInt16BE(10);
    const client = dgram.createSocket('udp4');
    await new Promise<void>((r) => client.bind(0, '127.0.0.1', () => r()));
    const got: Buffer[] = [];
    client.on('message', (m) => got.push(m));
    // By address, then by a mapped name.
    client.send(Buffer.concat([Buffer.from([0, 0, 0]), socksAddress('127.0.0.1', echoPort), Buffer.from('one')]), relayPort, '127.0.0.1');
    client.send(Buffer.concat([Buffer.from([0, 0, 0]), socksAddress('udp.test', 1), Buffer.from('two')]), relayPort, '127.0.0.1');
    // A fragment is dropped.
    client.send(Buffer.concat([Buffer.from([0, 0, 1]), socksAddress('127.0.0.1', echoPort), Buffer.from('frag')]), relayPort, '127.0.0.1');
    await waitFor(() => got.length >= 2, 3000, 'two replies');
    const texts = got.map((m) => {
      expect([...m.subarray(0, 4)]).toEqual([0, 0, 0, 1]);
      expect(m.readUInt16BE(8)).toBe(echoPort);
      return m.subarray(10).toString();
    });
    expect(texts.sort()).toEqual(['echo:one', 'echo:two']);
    control.destroy();
    await waitFor(() => /\(socks5-udp\).*\(eof\)/.test(p.log()), 3000, 'association closed');
    // The relay port is closed with the association: a datagram now gets nothing back.
    client.send(Buffer.concat([Buffer.from([0, 0, 0]), socksAddress('127.0.0.1', echoPort), Buffer.from('late')]), relayPort, '127.0.0.1');
    await sleep(200);
    expect(got.length).toBe(2);
    client.close();
  });
});

describe('safe defaults and limits', () => {
  it('a client that sends half a greeting and waits is closed at the handshake timeout', async () => {
    const p = await proxy({ handshakeTimeoutMs: 300 });
    const s = await connect(p.port);
    s.write(Buffer.from([5, 2]));
    const t0 = Date.now();
    await untilClosed(s, 3000);
    expect(Date.now() - t0).toBeLessThan(2500);
    const h = await connect(p.port);
    h.write('GET http://x/ HTTP/1.1\r\n');
    await untilClosed(h, 3000);
    await waitFor(() => (p.log().match(/handshake timeout/g) ?? []).length >= 2, 3000, 'both logged');
  });

  it('a keep-alive client that trickles its second request head is cut off too', async () => {
    const web = await httpServer();
    const p = await proxy({ handshakeTimeoutMs: 400 });
    const s = await connect(p.port);
    let got = '';
    s.on('data', (c) => (got += c));
    s.write(`GET http://127.0.0.1:${web.port}/a HTTP/1.1\r\nHost: x\r\n\r\n`);
    await waitFor(() => got.includes('hello from /a'), 3000, 'first response');
    const closed = untilClosed(s, 3000);
    // One header byte every 100 ms: node:http's own idle timeout never fires.
    for (const ch of 'GET http://127.0.0.1/b HTTP/1.1\r\nX: 1') {
      if (s.destroyed) break;
      s.write(ch);
      await sleep(100);
    }
    await closed;
  });

  it('--max-conns and --allow (the shared source rules) apply', async () => {
    const p = await proxy({ access: { allow: ['10.0.0.0/8'] } });
    const s = await connect(p.port);
    expect((await untilClosed(s)).data.length).toBe(0);
    await waitFor(() => p.log().includes('not in the allow list'), 3000, 'denied');
  });

  it('stops cleanly with live tunnels (drain)', async () => {
    const echo = await echoServer();
    const p = await proxy();
    const { socket, code } = await socks5Connect(p.port, '127.0.0.1', echo.port);
    expect(code).toBe(0);
    const closed = untilClosed(socket);
    expect(await p.stop()).toBe(0);
    await closed;
    proxies.splice(proxies.indexOf(p), 1);
  });
});

describe('net sanity', () => {
  it('IPv6 listener', async () => {
    const echo = await echoServer();
    const p = await proxy({}, '[::1]:0');
    const s = net.connect({ host: '::1', port: p.port });
    await new Promise((r) => s.once('connect', r));
    s.write(Buffer.concat([Buffer.from([5, 1, 0, 5, 1, 0]), socksAddress('127.0.0.1', echo.port), Buffer.from('v6')]));
    s.pause();
    const r = await readBytes(s, 12 + 2);
    expect(r.subarray(12).toString()).toBe('v6');
    s.destroy();
  });
});
