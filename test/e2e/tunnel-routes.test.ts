/**
 * The relay's public side: names on shared ports (--http by Host, --https by SNI), Basic auth,
 * the forwarding headers, TLS on public ports, and access control. Real curl and gnutls-cli.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import net from 'node:net';
import { generate } from 'selfsigned';
import { cliStartedPerTest } from '../helpers/cli';
import { connect, tcpServer } from '../helpers/net';
import { startAgent, startRelay } from '../helpers/tunnel';

const start = cliStartedPerTest();
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
let dir: string;
let cert: string;
let key: string;
let headersServer: { port: number; close(): Promise<void> };

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockcat-routes-'));
  const pems = await generate([{ name: 'commonName', value: 'tun.test' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: '*.tun.test' }, { type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] }],
  });
  cert = path.join(dir, 'cert.pem');
  key = path.join(dir, 'key.pem');
  fs.writeFileSync(cert, pems.cert);
  fs.writeFileSync(key, pems.private);
  // LOCAL: answers every request with the headers it received, as JSON.
  const server = http.createServer((req, res) => res.end(JSON.stringify({ url: req.url, headers: req.headers })));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  headersServer = { port: (server.address() as net.AddressInfo).port, close: () => new Promise((r) => server.close(() => r())) };
});
afterAll(async () => {
  await headersServer.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Runs a peer without blocking this process (LOCAL runs in it). */
function run(cmd: string, args: string[], timeoutMs = 15_000): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: unknown }).code as number) : 0;
      resolve({ status: typeof code === 'number' ? code : 1, stdout, stderr });
    });
  });
}
const curl = (...args: string[]) => run('curl', ['-sS', '--max-time', '10', ...args]);

describe.skipIf(!has('curl'))('named tunnels', () => {
  it('--http routes by Host; an unknown name gets 404; --http-auth asks for Basic credentials; the relay adds X-Forwarded-For, X-Real-IP and Forwarded', async () => {
    const relay = await startRelay(start, ['--http', '127.0.0.1:0', '--domain', 'tun.test']);
    const httpPort = Number((await relay.cli.waitForStderr(/named tunnels on http:\/\/\*\.tun\.test:(\d+)\//))[1]);
    const agent = await startAgent(start, headersServer.port, relay, ['--name', 'youpi', '--http-auth', 'me:s3cret']);
    await agent.cli.waitForStderr(new RegExp(`public: http://youpi\\.tun\\.test:${httpPort}/`));
    const url = `http://youpi.tun.test:${httpPort}/hello`;
    const resolve = ['--resolve', `youpi.tun.test:${httpPort}:127.0.0.1`, '--resolve', `nobody.tun.test:${httpPort}:127.0.0.1`];

    const ok = await curl(...resolve, '-u', 'me:s3cret', '-H', 'X-Forwarded-For: 192.0.2.1', url);
    expect(ok.status).toBe(0);
    const seen = JSON.parse(ok.stdout);
    expect(seen.url).toBe('/hello');
    expect(seen.headers['x-forwarded-for']).toBe('192.0.2.1, 127.0.0.1');
    expect(seen.headers['x-real-ip']).toBe('127.0.0.1');
    expect(seen.headers.forwarded).toBe(`for=127.0.0.1;proto=http;host="youpi.tun.test:${httpPort}"`);

    const noAuth = await curl(...resolve, '-o', '/dev/null', '-D', '-', url);
    expect(noAuth.stdout).toMatch(/^HTTP\/1\.1 401/);
    expect(noAuth.stdout).toMatch(/WWW-Authenticate: Basic realm="youpi"/i);
    expect((await curl(...resolve, '-o', '/dev/null', '-w', '%{http_code}', '-u', 'me:wrong', url)).stdout).toBe('401');
    const unknown = await curl(...resolve, '-w', '\n%{http_code}', `http://nobody.tun.test:${httpPort}/`);
    expect(unknown.stdout).toMatch(/no tunnel named nobody\.tun\.test.*\n404$/s);
    // The agent's access log names the real client of the routed request.
    await agent.cli.waitForStderr(/closed 127\.0\.0\.1:\d+ → 127\.0\.0\.1:\d+: \d+ bytes in, \d+ bytes out/);
    // With -v the relay says who half-closed a routed connection first, as on a tunnel's own port.
    await relay.cli.waitForStderr(/127\.0\.0\.1:\d+ closed its side\n/);
    // Its access log counts the request head it read to route (it said 0 bytes in), and the answers it gave itself.
    await relay.cli.waitForStderr(/\(tunnel \S+\): [1-9]\d* bytes in, [1-9]\d* bytes out/);
    await relay.cli.waitForStderr(/: [1-9]\d* bytes in, [1-9]\d* bytes out, [^\n]*\(unknown name/);
  });

  it('fuzz: 300 random byte sequences on the --http port get a 400/404 or a close, and names still route', async () => {
    const relay = await startRelay(start, ['--http', '127.0.0.1:0', '--domain', 'tun.test']);
    const httpPort = Number((await relay.cli.waitForStderr(/named tunnels on http:\/\/\*\.tun\.test:(\d+)\//))[1]);
    await startAgent(start, headersServer.port, relay, ['--name', 'fuzzed']);
    const { randomBytes } = await import('node:crypto');
    for (let i = 0; i < 300; i++) {
      await new Promise<void>((resolve) => {
        const s = net.connect({ port: httpPort, host: '127.0.0.1' }, () => {
          const junk = i % 2 ? randomBytes(1 + (i % 500)) : Buffer.from(`GET / HTTP/1.1\r\nHost: ${randomBytes(8).toString('latin1')}\r\n${'X: y\r\n'.repeat(i)}\r\n`, 'latin1');
          s.end(junk);
        });
        s.on('error', () => {});
        s.on('data', () => {});
        s.on('close', () => resolve());
        s.setTimeout(12_000, () => s.destroy());
      });
    }
    expect(relay.cli.child.exitCode).toBe(null);
    const ok = await curl('--resolve', `fuzzed.tun.test:${httpPort}:127.0.0.1`, `http://fuzzed.tun.test:${httpPort}/after`);
    expect(JSON.parse(ok.stdout).url).toBe('/after');
  }, 60_000);

  it('an agent without --name gets a word-word-NNNN name, and the same one after it reconnects', async () => {
    const relay = await startRelay(start, ['--http', '127.0.0.1:0', '--domain', 'tun.test']);
    const first = await startAgent(start, headersServer.port, relay);
    const name = (await first.cli.waitForStderr(/public: http:\/\/([a-z]+-[a-z]+-\d{4})\.tun\.test:\d+\//))[1];
    first.cli.kill('SIGKILL');
    await first.cli.exited;
    await relay.cli.waitForStderr(/gone after/);
    const second = await startAgent(start, headersServer.port, relay);
    expect((await second.cli.waitForStderr(/public: http:\/\/([a-z0-9-]+)\.tun\.test/))[1]).toBe(name);
    expect(second.publicPort).toBe(first.publicPort);
  });

  it('--https terminates TLS and routes by SNI (curl --resolve); an unknown name fails the handshake', async () => {
    const relay = await startRelay(start, ['--https', '127.0.0.1:0', '--domain', 'tun.test', '--cert', cert, '--key', key]);
    const httpsPort = Number((await relay.cli.waitForStderr(/named tunnels on https:\/\/\*\.tun\.test:(\d+)\//))[1]);
    const agent = await startAgent(start, headersServer.port, relay, ['--name', 'secure']);
    await agent.cli.waitForStderr(new RegExp(`public: https://secure\\.tun\\.test:${httpsPort}/`));
    const ok = await curl('--cacert', cert, '--resolve', `secure.tun.test:${httpsPort}:127.0.0.1`, `https://secure.tun.test:${httpsPort}/s`);
    expect(ok.status).toBe(0);
    const seen = JSON.parse(ok.stdout);
    expect(seen.headers['x-forwarded-proto']).toBe('https');
    expect(seen.headers.forwarded).toMatch(/^for=127\.0\.0\.1;proto=https/);
    const unknown = await curl('--cacert', cert, '--resolve', `other.tun.test:${httpsPort}:127.0.0.1`, `https://other.tun.test:${httpsPort}/`);
    expect(unknown.status).toBe(35); // SSL connect error: the relay answered with an alert
  });
});

describe('public side of port tunnels', () => {
  it.skipIf(!has('gnutls-cli'))('--public-tls: gnutls-cli reaches LOCAL over TLS terminated at the relay', async () => {
    const echo = await tcpServer((s) => s.pipe(s));
    const relay = await startRelay(start, ['--cert', cert, '--key', key, '--public-tls']);
    const agent = await startAgent(start, echo.port, relay);
    const r = await run('sh', ['-c', `(printf 'hello gnutls\\n'; sleep 1) | gnutls-cli --x509cafile ${cert} -p ${agent.publicPort} localhost`]);
    expect(r.stdout).toContain('hello gnutls');
    await echo.close();
  });

  /** Resolves with how a client's connection ended: ECONNRESET, 'end' or 'closed'. */
  const ending = (sock: net.Socket) =>
    new Promise<string>((resolve) => {
      sock.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      sock.on('end', () => resolve('end'));
      sock.on('close', () => resolve('closed'));
    });

  it('expose --allow narrows who may use the tunnel: others are reset', async () => {
    const echo = await tcpServer((s) => s.pipe(s));
    const relay = await startRelay(start);
    const agent = await startAgent(start, echo.port, relay, ['--allow', '10.0.0.0/8']);
    // The reset may come before the client even sees its connect complete: watch from the start.
    expect(await ending(net.connect({ port: agent.publicPort, host: '127.0.0.1' }))).toBe('ECONNRESET');
    await echo.close();
  });

  it('relay --max-conns counts public clients: past it, a new one is refused', async () => {
    const echo = await tcpServer((s) => s.pipe(s));
    const relay = await startRelay(start, ['--max-conns', '1']);
    const agent = await startAgent(start, echo.port, relay);
    const first = await connect(agent.publicPort);
    first.on('error', () => {});
    first.write('one');
    await new Promise((r) => first.once('data', r));
    const second = await connect(agent.publicPort);
    expect(['ECONNRESET', 'closed', 'end']).toContain(await ending(second));
    await relay.cli.waitForStderr(/--max-conns/);
    first.destroy();
    await echo.close();
  });

  it('relay --deny keeps a client out of every tunnel', async () => {
    const echo = await tcpServer((s) => s.pipe(s));
    const relay = await startRelay(start, ['--deny', '127.0.0.0/8']);
    const agent = await startAgent(start, echo.port, relay);
    const sock = await connect(agent.publicPort).catch(() => undefined);
    if (sock) expect(['ECONNRESET', 'closed', 'end']).toContain(await ending(sock));
    await relay.cli.waitForStderr(/refused 127\.0\.0\.1:\d+/);
    await echo.close();
  });

  it('a second agent with the same token waits for the first instead of taking its tunnel', async () => {
    const echo = await tcpServer((s) => s.pipe(s));
    const relay = await startRelay(start);
    const first = await startAgent(start, echo.port, relay);
    const second = await startAgent(start, echo.port, relay, [], false);
    await second.cli.waitForStderr(/already connected .*retrying/);
    await second.cli.waitForStderr(/reconnecting to/);
    expect(first.cli.stderr()).not.toMatch(/lost the relay/);
    first.cli.kill('SIGKILL');
    const m = await second.cli.waitForStderr(/public: 127\.0\.0\.1:(\d+)/, 20_000);
    expect(Number(m[1])).toBe(first.publicPort);
    await echo.close();
  });
});

