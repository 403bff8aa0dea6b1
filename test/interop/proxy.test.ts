/**
 * `sockcat proxy` and `--via` against the real clients and proxies people use: curl (SOCKS5,
 * SOCKS5 with a login, HTTP absolute URI, HTTP CONNECT), Python's standard library speaking raw
 * SOCKS5 for UDP ASSOCIATE, headless Chromium browsing a mapped name (ShimmerCat's use), and
 * microsocks as a foreign hop. Outside CI a missing tool skips its tests (visibly); in CI it fails.
 */
import { describe, it, expect, afterEach } from 'vitest';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cliStartedPerTest, runCli, untimed } from '../helpers/cli';
import { tcpServer, randomBytes, sha256, waitFor } from '../helpers/net';

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
/** Skip when a peer is missing, except in CI, where .ci/run installs it: there it must run. */
const peer = (cmd: string) => !has(cmd) && !process.env.CI;

const start = cliStartedPerTest();
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

/** Runs a command; resolves with its exit code and output (killed after timeoutMs). */
function run(cmd: string, args: string[], opts: { stdin?: string | Buffer; timeoutMs?: number; cwd?: string } = {}): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], cwd: opts.cwd });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c) => out.push(c));
    child.stderr.on('data', (c) => (err += c));
    child.stdin.on('error', () => {});
    child.stdin.end(opts.stdin ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 15_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr: err });
    });
  });
}

/** A web server on 127.0.0.1:0 that answers with a page naming the Host it was asked for. */
async function webServer(): Promise<number> {
  const server = http.createServer((req, res) => {
    let body = 0;
    req.on('data', (c) => (body += c.length));
    req.on('end', () => {
      res.setHeader('Content-Type', 'text/html');
      res.end(`<html><body><h1 id="t">hello ${req.headers.host} ${req.method} ${req.url} body=${body}</h1></body></html>\n`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  server.closeIdleConnections?.();
  return (server.address() as net.AddressInfo).port;
}

async function startProxy(args: string[]) {
  const p = start(['proxy', '127.0.0.1:0', '-v', ...args]);
  return { proc: p, port: await p.listeningPort() };
}

describe.skipIf(peer('curl'))('curl through sockcat proxy', () => {
  it('--socks5-hostname reaches a mapped name; -x (absolute URI) and -p -x (CONNECT) on the same port', async () => {
    const web = await webServer();
    const { proc, port } = await startProxy(['--map', `app.test=127.0.0.1:${web}`]);
    const socks = await run('curl', ['-sS', '--max-time', '10', '--socks5-hostname', `127.0.0.1:${port}`, 'http://app.test/s5']);
    expect(socks.stdout.toString()).toContain('hello app.test GET /s5');
    const abs = await run('curl', ['-sS', '--max-time', '10', '-x', `http://127.0.0.1:${port}`, '-d', 'abc=1', 'http://app.test/abs?x=1']);
    // The request line reached the server in origin form, with the body.
    expect(abs.stdout.toString()).toContain('hello app.test POST /abs?x=1 body=5');
    const tunnel = await run('curl', ['-sS', '--max-time', '10', '-p', '-x', `http://127.0.0.1:${port}`, 'http://app.test/tunnel']);
    expect(tunnel.stdout.toString()).toContain('hello app.test GET /tunnel');
    await waitFor(() => /\(http-connect\) → app\.test:80 \(mapped to 127\.0\.0\.1:\d+\)/.test(proc.stderr()), 3000, 'CONNECT log line');
    expect(proc.stderr()).toMatch(/\(socks5\) → app\.test:80 \(mapped to 127\.0\.0\.1:\d+\): \d+ bytes in, \d+ bytes out, .* \(eof\)/);
  });

  it('--socks5 with -U user:pass against --auth; a wrong password fails and is logged without it', async () => {
    const web = await webServer();
    const { proc, port } = await startProxy(['--auth', 'alice:s3cret']);
    const ok = await run('curl', ['-sS', '--max-time', '10', '--socks5', `127.0.0.1:${port}`, '-U', 'alice:s3cret', `http://127.0.0.1:${web}/u`]);
    expect(ok.stdout.toString()).toContain('GET /u');
    const bad = await run('curl', ['-sS', '--max-time', '10', '--socks5', `127.0.0.1:${port}`, '-U', 'alice:guess', `http://127.0.0.1:${web}/u`]);
    expect(bad.code).not.toBe(0);
    const http407 = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', '-x', `http://127.0.0.1:${port}`, `http://127.0.0.1:${web}/`]);
    expect(http407.stdout.toString()).toBe('407');
    const httpOk = await run('curl', ['-sS', '--max-time', '10', '-x', `http://alice:s3cret@127.0.0.1:${port}`, `http://127.0.0.1:${web}/h`]);
    expect(httpOk.stdout.toString()).toContain('GET /h');
    await waitFor(() => proc.stderr().includes("failed login from 127.0.0.1"), 3000, 'failed login line');
    expect(proc.stderr()).not.toContain('guess');
  });

  it('--log-format json: one object per tunnel with the destination, mapping, user, bytes and reason', async () => {
    const web = await webServer();
    const p = start(['proxy', '127.0.0.1:0', '--log-format', 'json', '--map', `app.test=127.0.0.1:${web}`, '--auth', 'bob:pw']);
    const port = Number((await p.waitForStderr(/"address":"127\.0\.0\.1:(\d+)"/))[1]);
    const r = await run('curl', ['-sS', '--max-time', '10', '--socks5-hostname', `127.0.0.1:${port}`, '-U', 'bob:pw', 'http://app.test/j']);
    expect(r.stdout.toString()).toContain('GET /j');
    await waitFor(() => p.stderr().includes('"event":"close"'), 3000, 'close event');
    const close = JSON.parse(p.stderr().split('\n').find((l) => l.includes('"event":"close"'))!);
    expect(close).toMatchObject({ protocol: 'socks5', user: 'bob', destination: 'app.test:80', mapped_to: `127.0.0.1:${web}`, reason: 'eof' });
    expect(close.bytes_in).toBeGreaterThan(0);
    expect(close.bytes_out).toBeGreaterThan(0);
    expect(typeof close.duration_ms).toBe('number');
  });
});

describe.skipIf(peer('python3'))('UDP ASSOCIATE from the Python standard library', () => {
  it('a raw SOCKS5 client gets its datagram echoed through the relay', async () => {
    const { port } = await startProxy([]);
    const script = `
import socket, struct, sys
proxy = int(sys.argv[1])
echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); echo.bind(("127.0.0.1", 0))
echo_port = echo.getsockname()[1]
tcp = socket.create_connection(("127.0.0.1", proxy), timeout=5)
tcp.sendall(b"\\x05\\x01\\x00"); assert tcp.recv(2) == b"\\x05\\x00"
tcp.sendall(b"\\x05\\x03\\x00\\x01" + socket.inet_aton("0.0.0.0") + struct.pack(">H", 0))
rep = b""
while len(rep) < 10: rep += tcp.recv(10 - len(rep))
assert rep[1] == 0, rep
relay = (socket.inet_ntoa(rep[4:8]), struct.unpack(">H", rep[8:10])[0])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(5); u.bind(("127.0.0.1", 0))
u.sendto(b"\\x00\\x00\\x00\\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", echo_port) + b"ping", relay)
echo.settimeout(5)
data, peer = echo.recvfrom(100)
echo.sendto(b"pong:" + data, peer)
back, _ = u.recvfrom(100)
assert back[:4] == b"\\x00\\x00\\x00\\x01", back
assert struct.unpack(">H", back[8:10])[0] == echo_port
print(back[10:].decode())
tcp.close()
`;
    const r = await run('python3', ['-c', script, String(port)]);
    expect(r.stderr).toBe('');
    expect(r.stdout.toString().trim()).toBe('pong:ping');
  });
});

/** Chromium's binary name on Debian (chromium) or elsewhere. */
const chromium = ['chromium', 'chromium-browser', 'google-chrome'].find(has);

describe.skipIf(!chromium && !process.env.CI)('headless Chromium through a mapped name (the ShimmerCat use)', () => {
  it('loads http://app.test/ from a local server through sockcat proxy --map', async () => {
    const web = await webServer();
    const { proc, port } = await startProxy(['--map', `app.test=127.0.0.1:${web}`, '--only-mapped']);
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sockcat-chromium-'));
    cleanups.push(() => fs.rmSync(profile, { recursive: true, force: true }));
    const args = [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
      `--user-data-dir=${profile}`,
      `--proxy-server=socks5://127.0.0.1:${port}`,
      '--dump-dom',
      'http://app.test/',
    ];
    const r = await run(chromium ?? 'chromium', args, { timeoutMs: 45_000 });
    expect(r.stdout.toString()).toContain('hello app.test GET /');
    // The browser sent the name, not an address: the proxy mapped it (no DNS, no /etc/hosts).
    expect(proc.stderr()).toMatch(/\(socks5\) → app\.test:80 \(mapped to 127\.0\.0\.1:\d+\)/);
  }, 60_000);
});

describe('--via chains', () => {
  it('connect reaches a service two sockcat proxies away; each hop resolves the next name', async () => {
    const echo = await tcpServer((s) => s.pipe(s));
    cleanups.push(echo.close);
    // The far hop knows the internal name; the near hop knows nothing about it.
    const far = await startProxy(['--map', `db.internal=127.0.0.1:${echo.port}`]);
    const near = await startProxy(['--only-mapped', '--map', `far.hop=127.0.0.1:${far.port}`]);
    const payload = randomBytes(100_000);
    const r = await runCli(['connect', 'db.internal:5432', '--via', `socks5://127.0.0.1:${near.port}`, '--via', 'socks5h://far.hop:1080'], { stdin: payload });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(sha256(r.stdout)).toBe(sha256(payload));
  });

  it('names the hop that failed and why, exit 1', async () => {
    const a = await startProxy([]);
    const closed = await tcpServer(() => {});
    await closed.close();
    const r = await runCli(['connect', `127.0.0.1:${closed.port}`, '--via', `socks5://127.0.0.1:${a.port}`, '--via', `http://127.0.0.1:${a.port}`], { stdin: '' });
    expect(r.code).toBe(1);
    expect(untimed(r.stderr)).toBe(`sockcat: hop 2 (127.0.0.1:${a.port}): connection to 127.0.0.1:${closed.port} failed (502 Bad Gateway)\n`);
    const auth = await startProxy(['--auth', 'u:p']);
    const r2 = await runCli(['connect', `127.0.0.1:${closed.port}`, '--via', `socks5://u:wrong@127.0.0.1:${auth.port}`], { stdin: '' });
    expect(r2.code).toBe(1);
    expect(untimed(r2.stderr)).toBe(`sockcat: hop 1 (127.0.0.1:${auth.port}): login refused for user 'u'\n`);
    const r3 = await runCli(['connect', `127.0.0.1:${closed.port}`, '--via', `socks5://127.0.0.1:${auth.port}`, '--via', `socks5://127.0.0.1:${a.port}`], { stdin: '' });
    expect(r3.code).toBe(1);
    expect(r3.stderr).toMatch(/^sockcat: \d\d:\d\d:\d\d\.\d{3} hop 1 \(127\.0\.0\.1:\d+\): asks for a login/);
  });

  it('the connect timeout covers the whole chain: a hop that accepts and never answers', async () => {
    const a = await startProxy([]);
    const silent = await tcpServer(() => {});
    cleanups.push(silent.close);
    const r = await runCli(['connect', '-w', '1', '127.0.0.1:9', '--via', `socks5://127.0.0.1:${a.port}`, '--via', `socks5://127.0.0.1:${silent.port}`], { stdin: '' });
    expect(r.code).toBe(1);
    expect(untimed(r.stderr)).toBe(`sockcat: hop 2 (127.0.0.1:${silent.port}): no answer within 1 s (the connect timeout covers the whole chain)\n`);
    // proxy --via: the client gets "TTL expired" (6) and the log says why.
    const p = await startProxy(['--connect-timeout', '1', '--via', `socks5://127.0.0.1:${a.port}`, '--via', `http://127.0.0.1:${silent.port}`]);
    const s = net.connect(p.port, '127.0.0.1');
    s.on('error', () => {});
    s.write(Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 9]));
    const reply = await new Promise<Buffer>((resolve) => {
      let got = Buffer.alloc(0);
      s.on('data', (c: Buffer) => (got = Buffer.concat([got, c])));
      s.on('close', () => resolve(got));
    });
    expect([...reply.subarray(0, 4)]).toEqual([5, 0, 5, 6]);
    await p.proc.waitForStderr(new RegExp(`hop 2 \\(127\\.0\\.0\\.1:${silent.port}\\): no answer within 1 s .*\\(upstream timeout\\)`));
  });

  it('hops over TLS: socks5+tls:// and https:// to a sockcat proxy listening with --tls', async () => {
    const echo = await tcpServer((s) => s.pipe(s));
    cleanups.push(echo.close);
    const tlsHop = start(['proxy', 'tls:127.0.0.1:0', '-v']);
    const port = await tlsHop.listeningPort();
    for (const scheme of ['socks5+tls', 'https']) {
      const r = await runCli(['connect', `127.0.0.1:${echo.port}`, '--via', `${scheme}://localhost:${port}?insecure`], { stdin: `over ${scheme}` });
      // Not verifying is said, once, and nothing else.
      expect(r.stderr).toMatch(/^sockcat: \d\d:\d\d:\d\d\.\d{3} --insecure: not verifying the certificate of tls:localhost:\d+[^\n]*\n$/);
      expect(r.stdout.toString()).toBe(`over ${scheme}`);
    }
    // Without ?insecure the ephemeral certificate is not trusted: the hop is named.
    const r = await runCli(['connect', `127.0.0.1:${echo.port}`, '--via', `https://localhost:${port}`], { stdin: '' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^sockcat: \\d\\d:\\d\\d:\\d\\d\\.\\d{3} hop 1 \\(localhost:${port}\\): .*certificate`));
  });

  it('proxy --via sends every upstream through the chain', async () => {
    const web = await webServer();
    const far = await startProxy([]);
    const near = await startProxy(['--via', `socks5h://127.0.0.1:${far.port}`, '--map', `app.test=127.0.0.1:${web}`]);
    if (!has('curl') && !process.env.CI) return;
    const r = await run('curl', ['-sS', '--max-time', '10', '-x', `http://127.0.0.1:${near.port}`, 'http://app.test/v']);
    expect(r.stdout.toString()).toContain('GET /v');
    await waitFor(() => /\(socks5\) → 127\.0\.0\.1:\d+/.test(far.proc.stderr()), 3000, 'the far hop to carry it');
  });
});

describe.skipIf(peer('microsocks'))('microsocks as a foreign hop', () => {
  it('forward --via microsocks relays a client both ways', async () => {
    const echo = await tcpServer((s) => s.pipe(s));
    cleanups.push(echo.close);
    const msPort = await freePort();
    const ms: ChildProcess = spawn('microsocks', ['-i', '127.0.0.1', '-p', String(msPort)], { stdio: 'ignore' });
    cleanups.push(() => {
      ms.kill('SIGKILL');
    });
    await waitForPort(msPort);
    const fwd = start(['forward', '-v', '127.0.0.1:0', `127.0.0.1:${echo.port}`, '--via', `socks5://127.0.0.1:${msPort}`]);
    const port = await fwd.listeningPort();
    const payload = randomBytes(200_000);
    const s = net.connect({ port, host: '127.0.0.1' });
    const got: Buffer[] = [];
    s.on('data', (c) => got.push(c));
    s.write(payload);
    // microsocks ends both directions at the first EOF: read the echo before closing.
    await waitFor(() => Buffer.concat(got).length >= payload.length, 10_000, 'the echo through microsocks');
    s.destroy();
    expect(sha256(Buffer.concat(got))).toBe(sha256(payload));
  });
});

describe('CLI checks', () => {
  it('refuses an open proxy on a non-loopback address (exit 2, one line with the ways out)', async () => {
    const r = await runCli(['proxy', '0.0.0.0:0']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/refusing to run an open proxy on 0\.0\.0\.0:0.*--auth.*--allow.*--open/);
  });

  it.each([
    [['proxy', '--map', 'nonsense'], /--map: 'nonsense' is not NAME=HOST:PORT/],
    [['proxy', '--auth-file', '/no/such/file'], /--auth-file: \/no\/such\/file: no such file/],
    [['forward', 'udp:0', 'udp:127.0.0.1:53', '--via', 'socks5://127.0.0.1:1'], /--via reaches TCP targets/],
  ])('%j is a usage error', async (args, re) => {
    const r = await runCli(args as string[]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(re);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

async function freePort(): Promise<number> {
  const s = await tcpServer(() => {});
  await s.close();
  return s.port;
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ port, host: '127.0.0.1' }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on ${port}`);
}
