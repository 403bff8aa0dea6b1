/**
 * TLS through the real CLI: verification by default and its failures in one line, --ca,
 * --insecure, --servername, mutual TLS, a stalled handshake that blocks nobody, and interop
 * with openssl, gnutls-cli and curl.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { spawn } from 'node:child_process';
import { startCli, runCli, untimed, type RunningCli } from '../helpers/cli';
import { makeTestCerts, type TestCerts } from '../helpers/tls';
import { readAll, sleep, waitFor } from '../helpers/net';

let certs: TestCerts;
const running: RunningCli[] = [];

beforeAll(async () => {
  certs = await makeTestCerts();
});
afterAll(async () => {
  for (const r of running) r.kill();
  await Promise.all(running.map((r) => r.exited));
  fs.rmSync(certs.dir, { recursive: true, force: true });
});

/** A `sockcat listen --tls --echo` server; returns its port. */
async function tlsEcho(...args: string[]): Promise<{ server: RunningCli; port: number }> {
  const server = startCli(['listen', '--tls', '--echo', '-v', ...args, '0']);
  running.push(server);
  return { server, port: await server.listeningPort() };
}

const oneLine = (stderr: string) => stderr.trim().split('\n');

/** Runs an outside tool (openssl, curl…) with a time limit; resolves with its output. */
function runTool(cmd: string, args: string[], stdin: string | null, timeoutMs = 10_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c));
    child.stderr.on('data', (c: Buffer) => (stderr += c));
    child.stdin.on('error', () => {});
    if (stdin !== null) child.stdin.end(stdin);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('TLS verification', () => {
  it('refuses a self-signed certificate by default: exit 1, one line naming the reason and the way out', async () => {
    const { port } = await tlsEcho();
    const r = await runCli(['connect', `tls:127.0.0.1:${port}`], { stdin: 'secret\n' });
    expect(r.code).toBe(1);
    expect(r.stdout.length).toBe(0);
    expect(oneLine(untimed(r.stderr))).toEqual([`sockcat: certificate of tls:127.0.0.1:${port} is self-signed — pass --ca FILE to trust it or --insecure`]);
  });

  it('--insecure connects, warns on stderr, and shows the fingerprint the server logged', async () => {
    const { server, port } = await tlsEcho();
    const fingerprint = (await server.waitForStderr(/SHA-256 fingerprint ([0-9A-F:]{95})/))[1];
    const r = await runCli(['connect', '-v', '--insecure', `tls:127.0.0.1:${port}`], { stdin: 'hello\n' });
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toBe('hello\n');
    expect(r.stderr).toMatch(/--insecure: not verifying the certificate of tls:127\.0\.0\.1:\d+/);
    expect(r.stderr).toContain(fingerprint);
  });

  it('--ca trusts the self-signed certificate; --tls on connect is the same as tls:', async () => {
    const { port } = await tlsEcho('--cert', certs.cert, '--key', certs.key);
    const r = await runCli(['connect', '--tls', '--ca', certs.cert, 'localhost', String(port)], { stdin: 'verified\n' });
    expect(r.stderr).toBe('');
    expect(r.stdout.toString()).toBe('verified\n');
    expect(r.code).toBe(0);
  });

  it('refuses a certificate for another name, and says which names it is for', async () => {
    const { port } = await tlsEcho('--cert', certs.cert, '--key', certs.key);
    const r = await runCli(['connect', '--ca', certs.cert, '--servername', 'example.com', `tls:127.0.0.1:${port}`], { stdin: 'x' });
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(/does not match the name 'example\.com' \(it is for DNS:localhost/);
  });

  it('refuses an expired certificate', async () => {
    const { port } = await tlsEcho('--cert', certs.expiredCert, '--key', certs.expiredKey);
    const r = await runCli(['connect', '--ca', certs.expiredCert, `tls:localhost:${port}`], { stdin: 'x' });
    expect(r.code).toBe(1);
    expect(oneLine(untimed(r.stderr))).toEqual([`sockcat: certificate of tls:localhost:${port} has expired — the server must renew it (--insecure skips the check)`]);
  });

  it('says so when the server does not speak TLS', async () => {
    const plain = startCli(['listen', '-v', '0'], { stdin: '220 plain text service\r\n' });
    running.push(plain);
    const port = await plain.listeningPort();
    const r = await runCli(['connect', '--insecure', `tls:127.0.0.1:${port}`], { stdin: 'x' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/does not speak TLS|closed the connection during the TLS handshake/);
  });

  it('bad certificate files are usage errors (exit 2, one line)', async () => {
    const missing = await runCli(['listen', '--tls', '--cert', '/nonexistent/cert.pem', '--key', certs.key, '0']);
    expect(missing.code).toBe(2);
    expect(oneLine(missing.stderr)).toEqual(["sockcat: --cert /nonexistent/cert.pem: no such file (see 'sockcat --help')"]);
    const mismatch = await runCli(['listen', '--tls', '--cert', certs.cert, '--key', certs.clientKey, '0']);
    expect(mismatch.code).toBe(2);
    expect(mismatch.stderr).toMatch(/the key does not belong to the certificate/);
    const notPem = await runCli(['connect', '--ca', '/etc/hostname', 'tls:localhost:443']);
    expect(notPem.code).toBe(2);
    expect(notPem.stderr).toMatch(/not a PEM file/);
    const noCa = await runCli(['listen', '--tls', '--require-client-cert', '0']);
    expect(noCa.code).toBe(2);
    expect(noCa.stderr).toMatch(/--require-client-cert needs --ca FILE/);
  });
});

describe('mutual TLS', () => {
  const server = () => tlsEcho('--cert', certs.cert, '--key', certs.key, '--require-client-cert', '--ca', certs.ca);

  it('lets in a client whose certificate the CA signed', async () => {
    const { port } = await server();
    const r = await runCli(['connect', '--ca', certs.cert, '--client-cert', certs.clientCert, '--client-key', certs.clientKey, `tls:localhost:${port}`], {
      stdin: 'with my certificate\n',
    });
    expect(r.stdout.toString()).toBe('with my certificate\n');
    expect(r.code).toBe(0);
  });

  it('refuses a client without a certificate, with a line that says what is missing', async () => {
    const { server: srv, port } = await server();
    const r = await runCli(['connect', '--ca', certs.cert, `tls:localhost:${port}`], { stdin: 'no certificate\n' });
    expect(r.code).toBe(1);
    expect(r.stdout.length).toBe(0);
    expect(r.stderr).toMatch(/requires a client certificate — pass --client-cert FILE --client-key FILE/);
    // The server's log names the client that came without one, not a server that wants one.
    await srv.waitForStderr(/refused client 127\.0\.0\.1:\d+: it sent no client certificate \(--require-client-cert\)/);
  });

  it.each([
    ['typing a line', 'stranger\n'],
    ['typing nothing', ''],
  ])('refuses a client certificate signed by someone else (%s): connect exits 1 and says so, and the server log says why', async (_what, typed) => {
    // Node's TLS server closes without an alert here (TLS 1.3: after our handshake is over), so
    // the client tells the refusal by the door shut before a single byte came back. (With stdin
    // already at EOF, our own FIN may go first: then a silent refusal looks like an empty exchange.)
    const { server: srv, port } = await server();
    const cli = startCli(['connect', '--ca', certs.cert, '--client-cert', certs.strangerCert, '--client-key', certs.strangerKey, `tls:localhost:${port}`]);
    cli.child.stdin!.write(typed);
    const r = await cli.exited;
    expect(r.stdout.length).toBe(0);
    expect(r.stderr).toMatch(/^sockcat: \d\d:\d\d:\d\d\.\d{3} tls:localhost:\d+: the server rejected our client certificate/m);
    expect(r.code).toBe(1);
    await srv.waitForStderr(/refused 127\.0\.0\.1:\d+: its client certificate is not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT\)/);
  });

  it.each([
    ['stdin at EOF (</dev/null)', ''],
    ['one line then EOF (echo hi |)', 'hi\n'],
  ])('refuses a client certificate signed by someone else, %s: exit 1 every time, never a clean-looking end (issue 16 #9)', async (_what, stdin) => {
    // Before: our EOF crossed the server's close, and the refusal read as an empty exchange (exit 0).
    const { port } = await server();
    for (let i = 0; i < 4; i++) {
      const r = await runCli(['connect', '--ca', certs.cert, '--client-cert', certs.strangerCert, '--client-key', certs.strangerKey, `tls:localhost:${port}`], { stdin });
      expect(r.stderr).toMatch(/^sockcat: \d\d:\d\d:\d\d\.\d{3} tls:localhost:\d+: the server rejected our client certificate/m);
      expect(r.code).toBe(1);
    }
  });

  it.each([
    ['TLSv1.3', 'a reset', /ECONNRESET/],
    ['TLSv1.2', 'an unknown_ca alert', /ALERT_UNKNOWN_CA/],
  ] as const)('the listener refuses an untrusted client certificate under %s with %s, never a clean close', async (version, _how, expected) => {
    const { port } = await server();
    for (const endAtOnce of [true, false]) {
      const outcome = await new Promise<string>((resolve) => {
        const c = tls.connect({
          port,
          host: '127.0.0.1',
          servername: 'localhost',
          ca: fs.readFileSync(certs.cert),
          cert: fs.readFileSync(certs.strangerCert),
          key: fs.readFileSync(certs.strangerKey),
          maxVersion: version,
          allowHalfOpen: true,
        } as tls.ConnectionOptions);
        const seen: string[] = [];
        c.on('secureConnect', () => endAtOnce && c.end());
        c.on('data', () => seen.push('data'));
        c.on('end', () => seen.push('end'));
        c.on('error', (e: NodeJS.ErrnoException) => seen.push(`error ${e.code}`));
        c.on('close', () => resolve(seen.join(',')));
      });
      expect(outcome).not.toMatch(/end|data/);
      expect(outcome).toMatch(expected);
    }
  });

  it('refuses a client certificate with an alert (an OpenSSL server), stdin at EOF: connect exits 1', async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (probe.address() as net.AddressInfo).port;
        probe.close(() => resolve(p));
      });
    });
    const server = spawn('openssl', ['s_server', '-accept', `127.0.0.1:${port}`, '-cert', certs.cert, '-key', certs.key, '-Verify', '1', '-CAfile', certs.ca, '-verify_return_error', '-quiet'], { stdio: ['pipe', 'ignore', 'ignore'] });
    try {
      let r: Awaited<ReturnType<typeof runCli>> | undefined;
      for (let attempt = 0; attempt < 40; attempt++) {
        r = await runCli(['connect', '--ca', certs.cert, '--client-cert', certs.strangerCert, '--client-key', certs.strangerKey, `tls:localhost:${port}`], { stdin: '' });
        if (!/connection refused/.test(r.stderr)) break;
        await new Promise((res) => setTimeout(res, 250));
      }
      expect(r!.stderr).toMatch(/^sockcat: \d\d:\d\d:\d\d\.\d{3} .*the server rejected our client certificate/m);
      expect(r!.code).toBe(1);
    } finally {
      server.kill();
    }
  });

  it('refuses a client certificate with an alert (an OpenSSL server): connect exits 1 and says the server rejected it', async () => {
    // A free port for openssl s_server: bind port 0, note it, let it go.
    const port = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (probe.address() as net.AddressInfo).port;
        probe.close(() => resolve(p));
      });
    });
    const server = spawn('openssl', ['s_server', '-accept', `127.0.0.1:${port}`, '-cert', certs.cert, '-key', certs.key, '-Verify', '1', '-CAfile', certs.ca, '-verify_return_error', '-quiet'], { stdio: ['pipe', 'ignore', 'ignore'] });
    try {
      let r: Awaited<ReturnType<typeof runCli>> | undefined;
      for (let attempt = 0; attempt < 40; attempt++) {
        r = await runCli(['connect', '--ca', certs.cert, '--client-cert', certs.strangerCert, '--client-key', certs.strangerKey, `tls:localhost:${port}`], { stdin: 'hello\n' });
        if (!/connection refused/.test(r.stderr)) break;
        await new Promise((res) => setTimeout(res, 250));
      }
      expect(r!.code).toBe(1);
      expect(r!.stderr).toMatch(/^sockcat: \d\d:\d\d:\d\d\.\d{3} .*the server rejected our client certificate/m);
    } finally {
      server.kill();
    }
  });
});

describe('TLS listener robustness', () => {
  it('a stalled handshake and a plain-TCP client disturb no other client', async () => {
    const { server, port } = await tlsEcho('--cert', certs.cert, '--key', certs.key);
    // One client connects and never says a word; another speaks plain HTTP to the TLS port.
    const stalled = net.connect({ port, host: '127.0.0.1' });
    stalled.on('error', () => {});
    const plain = net.connect({ port, host: '127.0.0.1' });
    const plainGot = readAll(plain);
    plain.write('GET / HTTP/1.0\r\n\r\n');
    // The plain client is hung up on, the stalled one still waits, and a real client is served.
    expect((await plainGot).toString()).not.toContain('GET');
    const ok = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: fs.readFileSync(certs.cert) });
    const okGot = readAll(ok);
    ok.end('still served\n');
    expect((await okGot).toString()).toBe('still served\n');
    expect(stalled.destroyed).toBe(false);
    // The server's log speaks of its client, not of a server to reach by tcp: instead.
    await server.waitForStderr(/client 127\.0\.0\.1:\d+ sent plain HTTP to this TLS port/);
    stalled.destroy();
  });

  it('a client typing plain text is logged as a client that does not speak TLS', async () => {
    const { server, port } = await tlsEcho('--cert', certs.cert, '--key', certs.key);
    const plain = net.connect({ port, host: '127.0.0.1' });
    const got = readAll(plain);
    plain.write('hello there, this is not TLS\n');
    await got;
    await server.waitForStderr(/client 127\.0\.0\.1:\d+ does not speak TLS \(plain text sent to this TLS port\)/);
    expect(server.stderr()).not.toMatch(/use tcp: instead/);
  });
});

describe('TLS listener: nothing lost when the server half-closes at once', () => {
  it('listen -k --tls with stdin at EOF receives the bytes each client sends right after the handshake', async () => {
    // stdin is already at EOF, so every client's write side is shut down as soon as it is accepted;
    // Node drops the records that came with the handshake if end() runs inside 'secureConnection'.
    const server = startCli(['listen', '-k', '--tls', '--cert', certs.cert, '--key', certs.key, '-v', '0'], { stdin: '' });
    running.push(server);
    const port = await server.listeningPort();
    const clients = 10;
    for (let i = 0; i < clients; i++) {
      const c = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: fs.readFileSync(certs.cert), allowHalfOpen: true } as tls.ConnectionOptions, () => c.end(`client ${i}\n`));
      c.on('error', () => {});
      await readAll(c);
    }
    const lines = () => server.stdout().toString().split('\n').filter(Boolean).sort();
    // stdout and stderr are two pipes: the closed line may be read before the last bytes on stdout.
    await waitFor(() => (server.stderr().match(/ closed 127\.0\.0\.1:\d+: /g) ?? []).length === clients && lines().length >= clients, 10_000, 'every client closed and its line on stdout');
    expect(lines()).toEqual(Array.from({ length: clients }, (_, i) => `client ${i}`).sort());
  });
});

describe('TLS interop', () => {
  it('openssl s_client talks to sockcat listen --tls', async () => {
    const { port } = await tlsEcho('--cert', certs.cert, '--key', certs.key);
    const child = spawn('openssl', ['s_client', '-quiet', '-verify_return_error', '-CAfile', certs.cert, '-verify_hostname', 'localhost', '-connect', `127.0.0.1:${port}`], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c));
    child.stdin.write('hello openssl\n');
    await waitFor(() => out.includes('hello openssl\n'), 10_000, 'the echo through openssl');
    child.kill();
  });

  it('sockcat connect talks to openssl s_server, verifying its certificate', async () => {
    const child = spawn('openssl', ['s_server', '-accept', '127.0.0.1:0', '-cert', certs.cert, '-key', certs.key, '-naccept', '1'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c));
    child.stderr.on('data', (c: Buffer) => (err += c));
    await waitFor(() => /ACCEPT .*:(\d+)/.test(out + err), 10_000, 'openssl s_server ACCEPT');
    const port = Number(/ACCEPT .*:(\d+)/.exec(out + err)![1]);
    const client = startCli(['connect', '--ca', certs.cert, `tls:localhost:${port}`]);
    running.push(client);
    client.child.stdin!.write('from sockcat\n');
    await waitFor(() => out.includes('from sockcat\n'), 10_000, 'sockcat line at s_server');
    child.stdin.write('from openssl\n');
    await waitFor(() => client.stdout().toString().includes('from openssl\n'), 10_000, 'openssl line at sockcat');
    child.kill();
    client.kill();
  });

  it('gnutls-cli talks to sockcat listen --tls', async () => {
    const { port } = await tlsEcho('--cert', certs.cert, '--key', certs.key);
    const r = await runTool('gnutls-cli', ['--x509cafile', certs.cert, '--port', String(port), 'localhost'], 'hello gnutls\n');
    expect(r.stdout).toContain('hello gnutls\n');
  });

  it('curl https:// gets a reply from sockcat listen --tls', async () => {
    const body = 'hello over https\n';
    const server = startCli(['listen', '--tls', '--cert', certs.cert, '--key', certs.key, '-v', '0'], {
      stdin: `HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    });
    running.push(server);
    const port = await server.listeningPort();
    const r = await runTool('curl', ['-sS', '--cacert', certs.cert, `https://localhost:${port}/`], null);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(body);
    // curl may be done before the server's stdout has reached this process through its pipe.
    await waitFor(() => /^GET \/ HTTP\/1\.1\r\n/.test(server.stdout().toString()), 10_000, 'the request on the server\'s stdout');
  });
});

describe('TLS listener: access control and limits before any TLS work (issue 16 #5)', () => {
  /** A raw TCP client that sends a ClientHello; resolves with what the server sent back before closing. */
  async function helloAndWait(port: number): Promise<{ bytes: number; ms: number }> {
    const started = Date.now();
    const s = net.connect({ port, host: '127.0.0.1' });
    s.on('error', () => {});
    const got: Buffer[] = [];
    s.on('data', (c: Buffer) => got.push(c));
    const c = tls.connect({ socket: s, servername: 'localhost', rejectUnauthorized: false });
    c.on('error', () => {});
    await new Promise((resolve) => s.once('close', resolve));
    return { bytes: Buffer.concat(got).length, ms: Date.now() - started };
  }

  it('a denied client gets no handshake at all: closed before a single TLS byte, logged as denied', async () => {
    const { server, port } = await tlsEcho('--cert', certs.cert, '--key', certs.key, '--deny', '127.0.0.1');
    const r = await helloAndWait(port);
    expect(r.bytes).toBe(0);
    await server.waitForStderr(/refused 127\.0\.0\.1:\d+: denied by --deny 127\.0\.0\.1/);
    expect(server.stderr()).not.toMatch(/handshake/);
  });

  it('--max-conns counts clients still in their handshake: past it, no TLS work for newcomers', async () => {
    const { server, port } = await tlsEcho('--cert', certs.cert, '--key', certs.key, '--max-conns', '1');
    const silent = net.connect({ port, host: '127.0.0.1' });
    silent.on('error', () => {});
    await new Promise((resolve) => silent.once('connect', resolve));
    await server.waitForStderr(/listening/);
    const r = await helloAndWait(port);
    expect(r.bytes).toBe(0);
    await server.waitForStderr(/refused 127\.0\.0\.1:\d+: 1 connections already open \(--max-conns\)/);
    silent.destroy();
  });

  it("a client that sends a few bytes and FIN is dropped at its FIN, not after the handshake timeout", async () => {
    const { server, port } = await tlsEcho('--cert', certs.cert, '--key', certs.key);
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    s.on('error', () => {});
    s.on('data', () => {});
    await new Promise((resolve) => s.once('connect', resolve));
    s.end(Buffer.from([0x16, 0x03, 0x01]));
    await new Promise((resolve) => s.once('close', resolve));
    // Dropped because of the FIN, not because the 10 s handshake timeout ran out.
    await server.waitForStderr(/client 127\.0\.0\.1:\d+ closed the connection during the TLS handshake/);
    expect(server.stderr()).not.toMatch(/timed out/);
  });

  it('pending handshakes are bounded in all: 256 silent ones from 16 addresses, the next (from a 17th) is refused and logged', async () => {
    const { server, port } = await tlsEcho('--cert', certs.cert, '--key', certs.key);
    const silent: net.Socket[] = [];
    try {
      for (let source = 2; source < 18; source++) {
        await Promise.all(
          Array.from({ length: 16 }, () => new Promise<void>((resolve) => {
            const s = net.connect({ port, host: '127.0.0.1', localAddress: `127.0.0.${source}` });
            s.on('error', () => resolve());
            s.once('connect', () => resolve());
            silent.push(s);
          })),
        );
      }
      await sleep(200);
      const late = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.99' });
      late.on('error', () => {});
      late.on('data', () => {});
      await server.waitForStderr(/refused 127\.0\.0\.99:\d+: 256 TLS handshakes already in progress/);
      late.destroy();
    } finally {
      for (const s of silent) s.destroy();
    }
  });

  it('pending handshakes from one source are bounded: past 16 silent ones, the next is refused and logged', async () => {
    const { server, port } = await tlsEcho('--cert', certs.cert, '--key', certs.key);
    const silent: net.Socket[] = [];
    for (let i = 0; i < 16; i++) {
      const s = net.connect({ port, host: '127.0.0.1' });
      s.on('error', () => {});
      silent.push(s);
      await new Promise((resolve) => s.once('connect', resolve));
    }
    await waitFor(() => true, 100);
    const r = await helloAndWait(port);
    expect(r.bytes).toBe(0);
    await server.waitForStderr(/refused 127\.0\.0\.1:\d+: 16 TLS handshakes from 127\.0\.0\.1 already in progress/);
    for (const s of silent) s.destroy();
    // Once the server has seen them go, a real client is served again.
    await server.waitForStderr(/(closed the connection during the TLS handshake[^]*){16}/);
    const ok = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: fs.readFileSync(certs.cert) });
    const okGot = readAll(ok);
    ok.end('served\n');
    expect((await okGot).toString()).toBe('served\n');
  });
});
